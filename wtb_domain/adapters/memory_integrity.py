"""The integrity checks' questions over a :class:`MemoryStore` (it keeps no rollups)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from wtb_domain.adapters.memory import MemoryStore
from wtb_domain.deltas import delta_base, is_delta, referenced_bases
from wtb_domain.integrity.checks import INTERRUPTED, INTERRUPTED_MESSAGE
from wtb_domain.integrity.model import Problem
from wtb_domain.model import Status, utcnow


class MemoryIntegrityView:
    """:class:`~wtb_domain.integrity.IntegrityView` over a memory store's committed data."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def missing_parents(self) -> list[Problem]:
        with self.store.lock:
            cps = list(self.store.checkpoints.values())
            return [
                Problem(cp.id, f"parent {cp.parent_id} missing (execution {cp.execution_id})")
                for cp in sorted(cps, key=lambda c: c.id)
                if cp.parent_id is not None and cp.parent_id not in self.store.checkpoints
            ]

    def misplaced_heads(self) -> list[Problem]:
        problems = []
        with self.store.lock:
            for e in sorted(self.store.executions.values(), key=lambda e: e.id):
                if e.head_checkpoint_id is None:
                    continue
                head = self.store.checkpoints.get(e.head_checkpoint_id)
                if head is None:
                    problems.append(Problem(e.id, f"head {e.head_checkpoint_id} missing"))
                elif head.execution_id != e.id:
                    problems.append(
                        Problem(e.id, f"head {head.id} belongs to execution {head.execution_id}")
                    )
        return problems

    def missing_blobs(self) -> list[Problem]:
        with self.store.lock:
            return [
                Problem(cp.id, f"value of {key!r} (blob {digest}) missing")
                for cp in sorted(self.store.checkpoints.values(), key=lambda c: c.id)
                for key, digest in sorted(cp.manifest.items())
                if digest not in self.store.blobs
            ] + [
                Problem(h, f"delta value: its base blob {delta_base(data)} is missing")
                for h, data in sorted(self.store.blobs.items())
                if is_delta(data) and delta_base(data) not in self.store.blobs
            ]

    def orphan_blobs(self) -> list[Problem]:
        with self.store.lock:
            used = {h for cp in self.store.checkpoints.values() for h in cp.manifest.values()}
            used |= referenced_bases(self.store.blobs)  # the bases of delta values
            return [
                Problem(h, f"{len(data)} bytes, no checkpoint refers to it")
                for h, data in sorted(self.store.blobs.items())
                if h not in used
            ]

    def dangling_results(self) -> list[Problem]:
        with self.store.lock:
            return [
                Problem(
                    r.batch_test_id,
                    f"{r.combination_name} / {r.case_id} #{r.repeat}: "
                    f"execution {r.execution_id} missing",
                )
                for _, r in sorted(self.store.results.items())
                if r.execution_id not in self.store.executions
            ]

    def stale_rollups(self) -> None:
        return None

    def rebuild_rollups(self, batch_ids: Sequence[str]) -> int:
        return 0

    def undrained_outbox(self, older_than_s: float) -> list[Problem]:
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        with self.store.lock:
            return [
                Problem(str(r.id), f"{type(r.event).__name__} written {r.created_at} not published")
                for r in self.store.outbox.values()
                if r.published_at is None and r.created_at < cutoff
            ]

    def _stuck_ids(self) -> list[str]:
        now = time.monotonic()
        return sorted(
            e.id
            for e in self.store.executions.values()
            if e.status is Status.RUNNING
            and (e.id not in self.store.claims or self.store.claims[e.id][1] < now)
        )

    def stuck_running(self) -> list[Problem]:
        with self.store.lock:
            return [
                Problem(
                    i,
                    "running without a claim"
                    if i not in self.store.claims
                    else f"running, claim of {self.store.claims[i][0]} expired",
                )
                for i in self._stuck_ids()
            ]

    def interrupt(self, execution_ids: Sequence[str]) -> int:
        with self.store.lock:
            stuck = set(self._stuck_ids()) & set(execution_ids)
            for i in stuck:
                self.store.executions[i] = replace(
                    self.store.executions[i],
                    status=Status.FAILED,
                    error_type=INTERRUPTED,
                    error_message=INTERRUPTED_MESSAGE,
                    updated_at=max(utcnow(), self.store.executions[i].updated_at),
                )
                self.store.claims.pop(i, None)
            return len(stuck)
