"""BatchService: what the Prefect tasks and flow call (the seed's IBatchTestRunner roles)."""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from wtb_domain.adapters.sql.database import absolute_url
from wtb_domain.batch.calls_spec import run_labels
from wtb_domain.batch.credentials import DatabaseRef
from wtb_domain.batch.lifecycle import final_events
from wtb_domain.batch.plan import ResolvedBatch, TaskGroup, plan_groups, resolve
from wtb_domain.batch.reads import batch_matrix, batch_progress, batch_status
from wtb_domain.batch.spec import BatchSpec, Case
from wtb_domain.batch.stored import (
    live_overlay,
    remember_overlay,
    spec_from_stored,
    spec_hash,
    stored_spec,
)
from wtb_domain.batch.tree import Finished, VariantTree, derived_id
from wtb_domain.batch.warm import resolved_batch
from wtb_domain.bootstrap import App
from wtb_domain.comparison import ComparisonMatrix, ResultRow, result_rows
from wtb_domain.engine import LATENCY_METRIC
from wtb_domain.errors import SpecError
from wtb_domain.evaluation import RunInfo, score_execution
from wtb_domain.events import BatchProgressed, BatchStarted, Event
from wtb_domain.ids import new_id
from wtb_domain.model import BatchProgress, BatchResult, BatchStatus, BatchTest, Status, utcnow

CANCEL_POLL_S = 0.5


@dataclass(frozen=True)
class Registration:
    """A registered batch: what the flow receives (ids and a database reference only)."""

    batch_id: str
    spec_hash: str
    total: int
    database: DatabaseRef | None

    @property
    def payload(self) -> dict[str, Any]:
        """The flow's and every task's reference to the batch (small whatever its size)."""
        return {
            "batch_id": self.batch_id,
            "spec_hash": self.spec_hash,
            "database": self.database.to_param() if self.database else None,
        }


@dataclass(frozen=True)
class PreparedBatch:
    """A registered batch and its task plan; ``payload`` is what every task receives.

    ``spec`` has its secret literals (in memory only); ``secrets`` is the overlay the tasks
    need to restore them in the stored spec (passed as an in-memory argument).
    """

    batch_id: str
    spec_hash: str
    spec: BatchSpec
    groups: list[TaskGroup]
    payload: dict[str, Any]
    total: int
    secrets: dict[str, Any] = field(default_factory=dict)
    case_ids: list[str] = field(default_factory=list)


@dataclass
class GroupOutcome:
    case_id: str
    recorded: int = 0
    skipped: int = 0
    failed: int = 0
    executions: int = 0
    node_executions: int = 0
    cache_hits: int = 0
    cancelled: bool = False
    worker_id: str = ""


@dataclass
class BatchSummary:
    batch_id: str
    status: BatchStatus
    total: int
    done: int
    failed: int
    node_executions: int = 0
    errors: list[str] = field(default_factory=list)
    cache_hits: int = 0
    """Of ``node_executions``, the node runs served from the node result cache."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "status": self.status.value}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


def _outcome(result: BatchResult) -> str:
    """``wtb_batch_results_total``'s outcome: error (the run or an evaluator failed), passed
    or failed (scored below the pass threshold)."""
    if not result.success:
        return "error"
    return "passed" if result.passed else "failed"


@lru_cache(maxsize=16)
def _resolve_cached(spec_json: str) -> ResolvedBatch:
    return resolve(BatchSpec.parse(json.loads(spec_json)))


def _resolved(spec: BatchSpec) -> ResolvedBatch:
    return _resolve_cached(json.dumps(spec.model_dump(mode="json"), sort_keys=True))


class BatchService:
    """Registers batches, runs task groups, reports status/progress, cancels, summarises."""

    def __init__(self, app: App, cancel_poll_s: float = CANCEL_POLL_S) -> None:
        self.app = app
        self.cancel_poll_s = cancel_poll_s  # how stale a running group's cancel flag may be

    def database_ref(self, password_secret: str | None = None) -> DatabaseRef | None:
        """How workers find this service's store: the URL with its password masked."""
        if self.app.database is None:
            return None
        return DatabaseRef.for_url(absolute_url(self.app.database.url), password_secret)

    def register(self, spec: BatchSpec, base_dir: Path | None = None) -> Registration:
        """Validate the spec, store the batch and its cases (or find it, to resume).

        The stored spec has no cases and no secret literals; the cases go to their own
        table in multi-row inserts. This process remembers the secret literals (in memory)
        for the flow it starts.
        """
        resolved = resolve(spec)
        cases = [c.model_dump(mode="json") for c in spec.load_cases(base_dir)]
        if not cases:
            raise SpecError("cases: the batch has no cases")
        batch_id = spec.batch_id or f"batch-{new_id()[:20]}"
        stored, overlay = stored_spec(spec, batch_id, cases)
        total = len(resolved.leaves) * len(cases)
        with self.app.uow() as uow:
            existing = uow.batches.find(batch_id)
            new = BatchTest(batch_id, spec.workflow, stored, total, spec.name)
            if existing is None:
                if uow.batches.add_if_absent(new):
                    uow.cases.add_many(batch_id, cases)
                else:
                    existing = uow.batches.get(batch_id)  # another runner registered it now
            if existing is not None:
                self._check_same(existing, stored, total)
                if uow.cases.count(batch_id) == 0:  # registered before cases were stored
                    uow.cases.add_many(batch_id, cases)
                existing.spec = stored  # settings that may change on resume (runner, ...)
                existing.status = BatchStatus.RUNNING
                existing.cancel_requested = False
                existing.updated_at = utcnow()
                uow.batches.update(existing)
            started = [BatchStarted(batch_id, spec.name, total, resumed=existing is not None)]
            uow.record(started)
            uow.commit()
        self.app.publish(started)
        hash_ = spec_hash(stored)
        remember_overlay(batch_id, hash_, overlay)
        return Registration(
            batch_id, hash_, total, self.database_ref(spec.database_password_secret)
        )

    def load(self, batch_id: str, hash_: str, secrets: dict[str, Any] | None = None) -> BatchSpec:
        """The spec of a registered batch, its secrets restored (``secrets`` or this
        process's memory); StateError if the batch was registered again with another spec."""
        return self._load(batch_id, hash_, secrets)[0]

    def _load(
        self, batch_id: str, hash_: str, secrets: dict[str, Any] | None
    ) -> tuple[BatchSpec, bool]:
        """:meth:`load`, and the batch's cancel flag as read."""
        with self.app.uow() as uow:
            batch = uow.batches.get(batch_id)
        if spec_hash(batch.spec) != hash_:
            raise SpecError(
                f"batch {batch_id!r} was registered again with other settings while this run "
                "started; rerun it"
            )
        overlay = secrets if secrets is not None else live_overlay(batch_id, hash_)
        return spec_from_stored(batch.spec, overlay), batch.cancel_requested

    def resolved(
        self, batch_id: str, hash_: str, secrets: dict[str, Any] | None = None
    ) -> ResolvedBatch:
        """The resolved batch; built once per process for a stored-spec hash (warm workers),
        after the store's spec was checked to still have that hash."""
        return self._resolved_and_flag(batch_id, hash_, secrets)[0]

    def _resolved_and_flag(
        self, batch_id: str, hash_: str, secrets: dict[str, Any] | None
    ) -> tuple[ResolvedBatch, bool]:
        """:meth:`resolved`, and the batch's cancel flag from the same read."""
        overlay = secrets if secrets is not None else live_overlay(batch_id, hash_)
        with self.app.uow() as uow:
            batch = uow.batches.get(batch_id)
        stored = batch.spec
        if spec_hash(stored) != hash_:
            return _resolved(self.load(batch_id, hash_, overlay)), batch.cancel_requested  # raises
        resolved = resolved_batch(
            hash_, overlay, lambda: _resolved(spec_from_stored(stored, overlay))
        )
        return resolved, batch.cancel_requested

    def plan(
        self, registration: Registration, workers: int = 4, secrets: dict[str, Any] | None = None
    ) -> PreparedBatch:
        """The task groups of a registered batch (case ids from the store, not the cases)."""
        batch_id, hash_ = registration.batch_id, registration.spec_hash
        overlay = secrets if secrets is not None else live_overlay(batch_id, hash_)
        spec = self.load(batch_id, hash_, overlay)
        resolved = _resolved(spec)
        with self.app.uow() as uow:
            ids = uow.cases.ids(batch_id)
        stubs = [Case.model_construct(id=i, input={}, expected=None) for i in ids]
        groups = plan_groups(resolved, stubs, workers)
        total = len(resolved.leaves) * len(ids)
        return PreparedBatch(
            batch_id, hash_, spec, groups, registration.payload, total, overlay, ids
        )

    def prepare(
        self, spec: BatchSpec, base_dir: Path | None = None, workers: int = 4
    ) -> PreparedBatch:
        """:meth:`register` then :meth:`plan` (the domain path, without Prefect)."""
        return self.plan(self.register(spec, base_dir), workers)

    @staticmethod
    def _check_same(existing: BatchTest, stored: dict[str, Any], total: int) -> None:
        keys = ("workflow", "variants", "combinations", "repeats", "evaluators")
        changed = [k for k in keys if existing.spec.get(k) != stored.get(k)]
        digest = existing.spec.get("cases_digest")
        same_cases = existing.total == total and digest in (None, stored["cases_digest"])
        if changed or not same_cases:
            raise SpecError(
                f"batch_id: {existing.id!r} already exists with a different "
                f"{', '.join(changed) or 'set of cases'}; use a new batch_id to run this spec"
            )

    def run_group(
        self,
        payload: dict[str, Any],
        case_id: str,
        leaf_keys: Sequence[str],
        secrets: dict[str, Any] | None = None,
    ) -> GroupOutcome:
        """Run one task group: the pending leaves of one case, as a shared-prefix tree.

        ``payload`` is the batch reference (:attr:`Registration.payload`); the spec and the
        case are read from the store, ``secrets`` restores the stored spec's secret literals.
        """
        with self.app.metrics.batch_task():
            return self._run_group(payload, case_id, leaf_keys, secrets)

    def _run_group(
        self,
        payload: dict[str, Any],
        case_id: str,
        leaf_keys: Sequence[str],
        secrets: dict[str, Any] | None,
    ) -> GroupOutcome:
        batch_id = payload["batch_id"]
        resolved, cancel_flag = self._resolved_and_flag(batch_id, payload["spec_hash"], secrets)
        loaded_at = time.monotonic()
        spec = resolved.spec
        with self.app.uow() as uow:
            the_case = Case.model_validate(uow.cases.get(batch_id, case_id))
            done = uow.results.done_keys(batch_id, the_case.id)
        outcome = GroupOutcome(the_case.id, worker_id=worker_id())
        pending = [resolved.leaf(k) for k in leaf_keys if k not in done]
        outcome.skipped = len(leaf_keys) - len(pending)
        if not pending:
            return outcome
        tree = VariantTree(
            self.app.controller,
            resolved.workflow,
            nondeterministic=resolved.nondeterministic,
            prefix_sharing=spec.prefix_sharing,
            # The batch was read just now (``load``): the probe's first read is not due yet.
            cancelled=self._cancel_probe(batch_id, seen=(loaded_at, cancel_flag)),
            labels=run_labels(spec.llm, spec.cache),
        )
        group_key = derived_id(*sorted(leaf_keys))
        for finished in tree.run(batch_id, the_case.id, the_case.input, pending, group_key):
            results = self._score(resolved, batch_id, the_case, finished, outcome.worker_id)
            recorded = self.app.retry(functools.partial(self._record, results))
            if recorded == len(results):  # a retried write whose first commit landed: 0
                self.app.metrics.results_stored(batch_id, [_outcome(r) for r in results])
            outcome.recorded += recorded
            outcome.executions += 1
            outcome.failed += sum(1 for r in results if not r.success)
        outcome.node_executions = tree.nodes_run
        outcome.cache_hits = tree.cache_hits
        outcome.cancelled = self._cancel_probe(batch_id, poll_s=0)()
        self.app.flush()
        return outcome

    def _record(self, results: Sequence[BatchResult]) -> int:
        """One transaction of results and their audit entry / outbox event; idempotent
        (leaves already stored are skipped, and then no event is written)."""
        if not results:
            return 0
        first = results[0]
        failed = sum(1 for r in results if not r.success)

        def progressed(recorded: int) -> list[Event]:
            return [BatchProgressed(first.batch_test_id, first.case_id, recorded, failed)]

        with self.app.uow() as uow:
            recorded, events = uow.add_results(results, progressed)
        self.app.publish(events)
        return recorded

    def _score(
        self,
        resolved: ResolvedBatch,
        batch_id: str,
        case: Case,
        finished: Finished,
        worker: str,
    ) -> list[BatchResult]:
        execution = finished.execution
        head = execution.head  # the final state as this run left it: not read back
        if head is not None and head.id == execution.head_checkpoint_id and head.state is not None:
            state = dict(head.state)
        else:
            state = self.app.controller.state(execution.id)
        error = None
        if execution.status is Status.FAILED:
            error = f"{execution.error_type}: {execution.error_message}"
        latency = float(execution.metrics.get(LATENCY_METRIC, 0.0))
        card = score_execution(
            resolved.evaluators,
            state,
            case.expected,
            RunInfo(latency, dict(execution.metrics), error),
            pass_threshold=resolved.spec.pass_threshold,
        )
        # An evaluator that timed out or raised fails this result (with its reason), not the batch.
        error = error or card.error
        return [
            BatchResult(
                batch_test_id=batch_id,
                execution_id=execution.id,
                combination_name=leaf.combination.name,
                variant_config=leaf.combination.selection,
                case_id=case.id,
                repeat=leaf.repeat,
                success=error is None,
                passed=card.passed,
                overall_score=card.overall,
                duration_ms=latency,
                metrics=dict(card.metrics),
                worker_id=worker,
                error=error,
            )
            for leaf in finished.leaves
        ]

    def _cancel_probe(
        self,
        batch_id: str,
        poll_s: float | None = None,
        seen: tuple[float, bool] = (float("-inf"), False),
    ) -> Any:
        """A probe reading the batch's cancel flag at most every ``poll_s`` seconds;
        ``seen``: when it was last read, and its value then."""
        last: list[Any] = [seen[0], seen[1]]
        every = self.cancel_poll_s if poll_s is None else poll_s

        def cancelled() -> bool:
            now = time.monotonic()
            if now - float(last[0]) >= every:
                with self.app.uow() as uow:
                    last[1] = uow.batches.get(batch_id).cancel_requested
                last[0] = now
            return bool(last[1])

        return cancelled

    def progress(self, batch_id: str) -> BatchProgress:
        return batch_progress(self.app, batch_id)

    def status(self, batch_id: str) -> BatchTest:
        return batch_status(self.app, batch_id)

    def cancel(self, batch_id: str) -> bool:
        """Ask running tasks to stop after their current execution; True if it was running."""
        with self.app.uow() as uow:
            batch = uow.batches.get(batch_id)
            was_running = batch.status is BatchStatus.RUNNING
            batch.cancel_requested = True
            batch.updated_at = utcnow()
            uow.batches.update(batch)
            uow.commit()
        return was_running

    def finish(
        self,
        batch_id: str,
        errors: Sequence[str] = (),
        node_executions: int = 0,
        cache_hits: int = 0,
    ) -> BatchSummary:
        """Set the batch's final status from its results and return a summary.

        Two runners of one batch id both end it: the second finds the status the first set
        (the row is locked while read) and, when it is the same, writes nothing and emits no
        second end event.
        """
        with self.app.uow() as uow:
            batch = uow.batches.get_for_update(batch_id)
            progress = uow.results.progress(batch_id, batch.total)
            before = batch.status
            if batch.cancel_requested and progress.pending:
                batch.status = BatchStatus.CANCELLED
            elif errors or progress.pending:
                batch.status = BatchStatus.FAILED
            elif progress.failed:
                batch.status = BatchStatus.COMPLETED_WITH_FAILURES
            else:
                batch.status = BatchStatus.COMPLETED
            events: list[Event] = []
            if batch.status is not before:  # a second runner of the batch ending with the
                batch.updated_at = utcnow()  # same outcome after it: the batch ended once
                uow.batches.update(batch)
                events = final_events(uow, batch, progress)
                uow.record(events)
            uow.commit()
        self.app.publish(events)
        self.app.flush()
        return BatchSummary(
            batch_id,
            batch.status,
            progress.total,
            progress.done,
            progress.failed,
            node_executions,
            list(errors),
            cache_hits,
        )

    def rows(self, batch_id: str) -> list[ResultRow]:
        """The batch's results as comparison rows."""
        with self.app.uow() as uow:
            return result_rows(uow.results.for_batch(batch_id))

    def matrix(self, batch_id: str, baseline: str | None = None) -> ComparisonMatrix:
        """The comparison matrix, aggregated by the store (from the rollups, see
        :mod:`wtb_domain.batch.reads`)."""
        return batch_matrix(self.app, batch_id, baseline)
