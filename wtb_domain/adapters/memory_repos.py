"""In-memory repositories: each reads the shared store merged with its unit of work's staged
writes, and writes only to the staged side (:class:`MemoryUnitOfWork` commits them)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wtb_domain.adapters.memory_calls import CallData
from wtb_domain.comparison import (
    CombinationTotals,
    ComparisonMatrix,
    build_matrix,
    combination_totals,
    result_rows,
)
from wtb_domain.deltas import load_values
from wtb_domain.errors import ExecutionError, ExecutionExists, NotFoundError
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
)

if TYPE_CHECKING:
    from wtb_domain.adapters.memory import MemoryStore


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

    def mark_published(self, events: Sequence[Event]) -> None:
        self._staged.published.extend(e.event_id for e in events)

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

    def get_for_update(self, batch_id: str) -> BatchTest:
        return self.get(batch_id)  # one process: the memory store has no concurrent writer


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
