"""In-memory adapters: a shared store plus units of work that stage writes until commit.

The repositories a unit of work hands out live in :mod:`wtb_domain.adapters.memory_repos`
(re-exported here); recorded calls and the node cache in :mod:`~wtb_domain.adapters.memory_calls`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

from wtb_domain.adapters.memory_calls import CallData, MemoryCalls, MemoryNodeCache
from wtb_domain.adapters.memory_repos import (
    MemoryAudit,
    MemoryBaselines,
    MemoryBatches,
    MemoryCases,
    MemoryCheckpoints,
    MemoryExecutions,
    MemoryOutbox,
    MemoryProcessed,
    MemoryResults,
    _result_key,
    _Staged,
)
from wtb_domain.audit import describe
from wtb_domain.claims import Claim, ExecutionClaimed, ExecutionConflict
from wtb_domain.errors import StoreError
from wtb_domain.events import Event
from wtb_domain.model import (
    AuditEntry,
    Baseline,
    BatchResult,
    BatchTest,
    Checkpoint,
    Execution,
    OutboxRecord,
    utcnow,
)

__all__ = [
    "MemoryAudit",
    "MemoryBaselines",
    "MemoryBatches",
    "MemoryCases",
    "MemoryCheckpoints",
    "MemoryExecutions",
    "MemoryOutbox",
    "MemoryProcessed",
    "MemoryResults",
    "MemoryStore",
    "MemoryUnitOfWork",
]


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
