"""In-memory adapters: a shared store plus units of work that stage writes until commit."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from wtb_domain.adapters.memory_calls import CallData, MemoryCalls, MemoryNodeCache
from wtb_domain.audit import describe
from wtb_domain.claims import Claim, ExecutionClaimed, ExecutionConflict
from wtb_domain.comparison import (
    CombinationTotals,
    ComparisonMatrix,
    build_matrix,
    combination_totals,
    result_rows,
)
from wtb_domain.deltas import load_values
from wtb_domain.errors import ExecutionError, ExecutionExists, NotFoundError, StoreError
from wtb_domain.events import Event
from wtb_domain.ids import new_id
from wtb_domain.model import (
    AuditEntry,
    Baseline,
    BatchProgress,
    BatchResult,
    BatchStatus,
    BatchTest,
    Checkpoint,
    Execution,
    OutboxRecord,
    Severity,
    Status,
    utcnow,
)


class MemoryStore:
    """Committed data shared by every unit of work created from it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.executions: dict[str, Execution] = {}
        self.checkpoints: dict[str, Checkpoint] = {}
        self.by_execution: dict[str, list[str]] = {}
        self.blobs: dict[str, str] = {}
        self.audit: list[AuditEntry] = []
        self.batches: dict[str, BatchTest] = {}
        self.results: dict[tuple[str, str, str, int], BatchResult] = {}
        self.baselines: list[Baseline] = []
        self.claims: dict[str, tuple[str, float]] = {}
        """Execution id -> (owner, lease end on the monotonic clock)."""
        self.outbox: dict[str, OutboxRecord] = {}
        """Event id -> its outbox record (insertion order is the outbox's order)."""
        self.processed: set[tuple[str, str]] = set()
        self.cases: dict[str, dict[str, dict[str, Any]]] = {}
        self.calls = CallData()

    def unit_of_work(self, record_events: bool = True) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self, record_events)


class _Staged:
    def __init__(self) -> None:
        self.executions: dict[str, Execution] = {}
        self.checkpoints: list[tuple[Checkpoint, dict[str, str]]] = []
        self.audit: list[AuditEntry] = []
        self.batches: dict[str, BatchTest] = {}
        self.results: list[BatchResult] = []
        self.baselines: list[Baseline] = []
        self.events: list[Event] = []
        self.published: list[str] = []
        self.processed: list[tuple[str, str]] = []
        self.cases: dict[str, dict[str, dict[str, Any]]] = {}
        self.calls = CallData()


def _result_key(r: BatchResult) -> tuple[str, str, str, int]:
    return (r.batch_test_id, r.combination_name, r.case_id, r.repeat)


def _copy_execution(execution: Execution) -> Execution:
    clone = copy.deepcopy(replace(execution, events=[], head=None))
    return clone


class MemoryExecutions:
    def __init__(self, store: MemoryStore, staged: _Staged) -> None:
        self._store, self._staged = store, staged

    def add(self, execution: Execution) -> None:
        if execution.id in self._staged.executions or execution.id in self._store.executions:
            raise ExecutionExists(f"execution {execution.id!r} already exists; use another id")
        self._staged.executions[execution.id] = _copy_execution(execution)

    def update(self, execution: Execution) -> None:
        self.get(execution.id)
        self._staged.executions[execution.id] = _copy_execution(execution)

    def get(self, execution_id: str) -> Execution:
        found = self._staged.executions.get(execution_id) or self._store.executions.get(
            execution_id
        )
        if found is None:
            raise NotFoundError(f"no execution {execution_id!r}")
        return _copy_execution(found)

    def recent(self, *, status: Status | None = None, limit: int = 50) -> list[Execution]:
        merged = {**self._store.executions, **self._staged.executions}
        rows = [e for e in merged.values() if status is None or e.status == status]
        rows.sort(key=lambda e: e.id, reverse=True)
        return [_copy_execution(e) for e in rows[:limit]]


class MemoryCheckpoints:
    def __init__(self, store: MemoryStore, staged: _Staged) -> None:
        self._store, self._staged = store, staged

    def add(self, checkpoint: Checkpoint, new_blobs: Mapping[str, str]) -> None:
        self._staged.checkpoints.append((replace(checkpoint, state=None), dict(new_blobs)))

    def _find(self, checkpoint_id: str) -> Checkpoint:
        for cp, _ in self._staged.checkpoints:
            if cp.id == checkpoint_id:
                return cp
        try:
            return self._store.checkpoints[checkpoint_id]
        except KeyError:
            raise NotFoundError(f"no checkpoint {checkpoint_id!r}") from None

    def get(self, checkpoint_id: str) -> Checkpoint:
        cp = self._find(checkpoint_id)
        values = self.load_values(list(cp.manifest.values()))
        return replace(cp, state={k: values[h] for k, h in cp.manifest.items()})

    def history(self, execution_id: str) -> list[Checkpoint]:
        ids = list(self._store.by_execution.get(execution_id, []))
        staged = [cp for cp, _ in self._staged.checkpoints if cp.execution_id == execution_id]
        return [self._store.checkpoints[i] for i in ids] + staged

    def load_values(self, hashes: Sequence[str]) -> dict[str, Any]:
        staged_blobs: dict[str, str] = {}
        for _, blobs in self._staged.checkpoints:
            staged_blobs.update(blobs)

        def fetch(wanted: Sequence[str]) -> dict[str, str]:
            found = {h: staged_blobs.get(h) or self._store.blobs.get(h) for h in wanted}
            return {h: text for h, text in found.items() if text is not None}

        return load_values(hashes, fetch)


class MemoryAudit:
    def __init__(self, store: MemoryStore, staged: _Staged) -> None:
        self._store, self._staged = store, staged

    def add(self, entry: AuditEntry) -> None:
        self._staged.audit.append(entry)

    def entries(
        self,
        execution_id: str | None = None,
        limit: int = 200,
        *,
        batch_id: str | None = None,
        min_severity: Severity | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        levels = set(min_severity.and_above()) if min_severity is not None else None
        rows = [
            r
            for r in self._store.audit + self._staged.audit
            if (execution_id is None or r.execution_id == execution_id)
            and (batch_id is None or r.batch_id == batch_id)
            and (levels is None or r.severity in levels)
            and (since is None or r.created_at >= since)
        ]
        return rows[-limit:] if limit > 0 else []


class MemoryOutbox:
    def __init__(self, store: MemoryStore, staged: _Staged) -> None:
        self._store, self._staged = store, staged

    def pending(self, limit: int = 500) -> list[OutboxRecord]:
        with self._store.lock:
            rows = [r for r in self._store.outbox.values() if r.published_at is None]
        return rows[:limit]

    def mark_published(self, event_ids: Sequence[str]) -> None:
        self._staged.published.extend(event_ids)

    def unpublished_count(self) -> int:
        return len(self.pending(limit=1 << 62))


class MemoryProcessed:
    def __init__(self, store: MemoryStore, staged: _Staged) -> None:
        self._store, self._staged = store, staged

    def first_time(self, consumer: str, event_id: str) -> bool:
        key = (consumer, event_id)
        if key in self._store.processed or key in self._staged.processed:
            return False
        self._staged.processed.append(key)
        return True


class MemoryBatches:
    def __init__(self, store: MemoryStore, staged: _Staged) -> None:
        self._store, self._staged = store, staged

    def add(self, batch: BatchTest) -> None:
        self._staged.batches[batch.id] = copy.deepcopy(batch)

    def add_if_absent(self, batch: BatchTest) -> bool:
        if batch.id in self._staged.batches or batch.id in self._store.batches:
            return False
        self.add(batch)
        return True

    def update(self, batch: BatchTest) -> None:
        self.get(batch.id)
        self._staged.batches[batch.id] = copy.deepcopy(batch)

    def find(self, batch_id: str) -> BatchTest | None:
        found = self._staged.batches.get(batch_id) or self._store.batches.get(batch_id)
        return copy.deepcopy(found)

    def latest(self, name: str, *, exclude: str | None = None) -> BatchTest | None:
        merged = {**self._store.batches, **self._staged.batches}
        rows = [
            b
            for b in merged.values()
            if b.name == name and b.id != exclude and b.status is not BatchStatus.RUNNING
        ]
        return copy.deepcopy(max(rows, key=lambda b: b.created_at)) if rows else None

    def get(self, batch_id: str) -> BatchTest:
        found = self.find(batch_id)
        if found is None:
            raise NotFoundError(f"no batch test {batch_id!r}")
        return found


class MemoryResults:
    def __init__(self, store: MemoryStore, staged: _Staged) -> None:
        self._store, self._staged = store, staged

    def _all(self) -> list[BatchResult]:
        return [*self._store.results.values(), *self._staged.results]

    def add_many(self, results: Sequence[BatchResult]) -> int:
        seen = {_result_key(r) for r in self._all()}
        added = 0
        for r in results:
            if _result_key(r) not in seen:
                seen.add(_result_key(r))
                self._staged.results.append(r)
                added += 1
        return added

    def done_keys(self, batch_id: str, case_id: str) -> set[str]:
        return {
            r.leaf_key for r in self._all() if r.batch_test_id == batch_id and r.case_id == case_id
        }

    def progress(self, batch_id: str, total: int) -> BatchProgress:
        rows = self.for_batch(batch_id)
        return BatchProgress(total, len(rows), sum(1 for r in rows if not r.success))

    def for_batch(self, batch_id: str) -> list[BatchResult]:
        return [r for r in self._all() if r.batch_test_id == batch_id]

    def comparison(self, batch_id: str, baseline: str | None) -> ComparisonMatrix:
        return build_matrix(result_rows(self.for_batch(batch_id)), batch_id, baseline=baseline)

    def combination_totals(self, batch_id: str) -> list[CombinationTotals]:
        return combination_totals(result_rows(self.for_batch(batch_id)))


class MemoryBaselines:
    def __init__(self, store: MemoryStore, staged: _Staged) -> None:
        self._store, self._staged = store, staged

    def add(self, baseline: Baseline) -> None:
        known = baseline.batch_test_id in self._store.batches
        if not known and baseline.batch_test_id not in self._staged.batches:
            raise NotFoundError(
                f"no batch test {baseline.batch_test_id!r} to bless as baseline "
                f"{baseline.name!r}; list batches with `wtb batch status ID`"
            )
        self._staged.baselines.append(replace(baseline, id=baseline.id or new_id()))

    def history(self, name: str) -> list[Baseline]:
        rows = [b for b in [*self._store.baselines, *self._staged.baselines] if b.name == name]
        return sorted(rows, key=lambda b: (b.blessed_at, b.id), reverse=True)

    def current(self, name: str) -> Baseline | None:
        rows = self.history(name)
        return rows[0] if rows else None


class MemoryCases:
    def __init__(self, store: MemoryStore, staged: _Staged) -> None:
        self._store, self._staged = store, staged

    def add_many(self, batch_id: str, cases: Sequence[Mapping[str, Any]]) -> None:
        staged = self._staged.cases.setdefault(batch_id, {})
        existing = self._store.cases.get(batch_id, {})
        for case in cases:
            if case["id"] in staged or case["id"] in existing:
                raise ExecutionError(f"batch {batch_id!r} has case {case['id']!r} already")
            staged[case["id"]] = copy.deepcopy(
                {"id": case["id"], "input": case["input"], "expected": case.get("expected")}
            )

    def _merged(self, batch_id: str) -> dict[str, dict[str, Any]]:
        return {**self._store.cases.get(batch_id, {}), **self._staged.cases.get(batch_id, {})}

    def get(self, batch_id: str, case_id: str) -> dict[str, Any]:
        found = self._merged(batch_id).get(case_id)
        if found is None:
            raise NotFoundError(f"batch {batch_id!r} has no case {case_id!r}")
        return copy.deepcopy(found)

    def ids(self, batch_id: str) -> list[str]:
        return list(self._merged(batch_id))

    def count(self, batch_id: str) -> int:
        return len(self._merged(batch_id))


class MemoryUnitOfWork:
    """Stages writes; :meth:`commit` applies them atomically to the shared store."""

    def __init__(self, store: MemoryStore, record_events: bool = True) -> None:
        self._store = store
        self._record_events = record_events
        self._staged = _Staged()
        self.outbox = MemoryOutbox(store, self._staged)
        self.processed = MemoryProcessed(store, self._staged)
        self.executions = MemoryExecutions(store, self._staged)
        self.checkpoints = MemoryCheckpoints(store, self._staged)
        self.audit = MemoryAudit(store, self._staged)
        self.batches = MemoryBatches(store, self._staged)
        self.results = MemoryResults(store, self._staged)
        self.baselines = MemoryBaselines(store, self._staged)
        self.cases = MemoryCases(store, self._staged)
        self.calls = MemoryCalls(store.calls, self._staged.calls)
        self.node_cache = MemoryNodeCache(store.calls, self._staged.calls)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()

    def record(self, events: Sequence[Event]) -> None:
        if self._record_events:
            self._staged.events.extend(events)

    def add_results(
        self, results: Sequence[BatchResult], events_for: Callable[[int], Sequence[Event]]
    ) -> tuple[int, list[Event]]:
        recorded = self.results.add_many(results)
        events = list(events_for(recorded)) if recorded else []
        self.record(events)
        self.commit()
        return recorded, events

    def commit(self) -> None:
        staged, store = self._staged, self._store
        with store.lock:
            # A processed id already recorded by a concurrent unit of work: this one's
            # duplicate is dropped (the first one's effect stands), like a key conflict.
            if any(key in store.processed for key in staged.processed):
                self.rollback()
                raise StoreError("event already processed by this consumer (a concurrent consumer)")
            store.processed.update(staged.processed)
            now = utcnow()
            for event in staged.events:
                if event.event_id not in store.outbox:
                    store.outbox[event.event_id] = OutboxRecord(len(store.outbox) + 1, event, now)
                    store.audit.append(describe(event))
            for event_id in staged.published:
                rec = store.outbox.get(event_id)
                if rec is not None and rec.published_at is None:
                    store.outbox[event_id] = replace(rec, published_at=now)
            store.executions.update(staged.executions)
            for cp, blobs in staged.checkpoints:
                store.blobs.update(blobs)
                if cp.id in store.checkpoints:  # a retried write: stored already, as in SQL
                    continue
                store.checkpoints[cp.id] = cp
                store.by_execution.setdefault(cp.execution_id, []).append(cp.id)
            store.audit.extend(staged.audit)
            store.batches.update(staged.batches)
            for r in staged.results:
                store.results.setdefault(_result_key(r), r)
            store.baselines.extend(staged.baselines)
            for batch_id, cases in staged.cases.items():
                store.cases.setdefault(batch_id, {}).update(cases)
            store.calls.apply(staged.calls)
        self.rollback()

    def start_execution(
        self,
        execution: Execution,
        checkpoint: Checkpoint,
        new_blobs: Mapping[str, str],
        claim: Claim | None = None,
    ) -> None:
        with self._store.lock:
            self.executions.add(execution)
            self.checkpoints.add(checkpoint, new_blobs)
            self._set_claim(execution.id, claim)
            self.commit()

    def save_node(
        self,
        checkpoint: Checkpoint,
        new_blobs: Mapping[str, str],
        execution: Execution,
        claim: Claim | None = None,
        *,
        release: bool = False,
    ) -> None:
        with self._store.lock:
            self._guard(execution, checkpoint.parent_id, claim)
            self.executions.update(execution)
            self.checkpoints.add(checkpoint, new_blobs)
            self._set_claim(execution.id, None if release else claim)
            self.commit()

    def claim_execution(
        self, execution: Execution, claim: Claim, takeover_from: str | None = None
    ) -> None:
        with self._store.lock:
            holder = self._store.claims.get(execution.id)
            if takeover_from is not None and holder is not None and holder[0] == takeover_from:
                del self._store.claims[execution.id]
            self._guarded_commit(execution, execution.head_checkpoint_id, claim, hold=True)

    def release_execution(self, execution: Execution, claim: Claim) -> None:
        self._guarded_commit(execution, execution.head_checkpoint_id, claim, hold=False)

    def move_head(self, execution: Execution, expected_head: str | None) -> None:
        self._guarded_commit(execution, expected_head, None, hold=False)

    def renew_claim(self, execution_id: str, claim: Claim) -> bool:
        with self._store.lock:
            holder = self._store.claims.get(execution_id)
            if holder is None or holder[0] != claim.owner:
                return False
            self._set_claim(execution_id, claim)
            return True

    def drop_claim(self, execution_id: str, claim: Claim) -> None:
        with self._store.lock:
            holder = self._store.claims.get(execution_id)
            if holder is not None and holder[0] == claim.owner:
                del self._store.claims[execution_id]

    def _guarded_commit(
        self, execution: Execution, expected_head: str | None, claim: Claim | None, *, hold: bool
    ) -> None:
        with self._store.lock:
            self._guard(execution, expected_head, claim)
            self.executions.update(execution)
            self._set_claim(execution.id, claim if hold else None)
            self.commit()

    def _guard(self, execution: Execution, expected_head: str | None, claim: Claim | None) -> None:
        """Under the store's lock: refuse (rolling back what is staged) unless the head is
        ``expected_head`` (or already the new one: a retry) and the claim is free or ours."""
        try:
            stored = self.executions.get(execution.id)
            holder = self._store.claims.get(execution.id)
            if holder is not None and (claim is None or holder[0] != claim.owner):
                left = holder[1] - time.monotonic()
                if left > 0:
                    raise ExecutionClaimed(execution.id, holder[0], left)
            if stored.head_checkpoint_id not in (expected_head, execution.head_checkpoint_id):
                raise ExecutionConflict(execution.id)
        except BaseException:
            self.rollback()
            raise

    def _set_claim(self, execution_id: str, claim: Claim | None) -> None:
        if claim is None:
            self._store.claims.pop(execution_id, None)
        else:
            self._store.claims[execution_id] = (claim.owner, time.monotonic() + claim.lease_s)

    def rollback(self) -> None:
        self._staged.executions.clear()
        self._staged.checkpoints.clear()
        self._staged.audit.clear()
        self._staged.batches.clear()
        self._staged.results.clear()
        self._staged.baselines.clear()
        self._staged.events.clear()
        self._staged.published.clear()
        self._staged.processed.clear()
        self._staged.cases.clear()
        self._staged.calls.clear()
