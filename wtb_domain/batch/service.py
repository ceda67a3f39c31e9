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

from wtb_domain.batch.plan import ResolvedBatch, TaskGroup, plan_groups, resolve
from wtb_domain.batch.spec import BatchSpec, Case
from wtb_domain.batch.tree import Finished, VariantTree, derived_id
from wtb_domain.bootstrap import App
from wtb_domain.comparison import ComparisonMatrix, ResultRow, result_rows
from wtb_domain.engine import LATENCY_METRIC
from wtb_domain.errors import SpecError
from wtb_domain.evaluation import RunInfo, score_execution
from wtb_domain.events import (
    BatchCancelled,
    BatchCompleted,
    BatchProgressed,
    BatchStarted,
    CombinationCompleted,
    Event,
)
from wtb_domain.ids import new_id
from wtb_domain.model import BatchProgress, BatchResult, BatchStatus, BatchTest, Status, utcnow

CANCEL_POLL_S = 0.5


@dataclass(frozen=True)
class PreparedBatch:
    """A registered batch and its task plan; ``payload`` is what every task receives."""

    batch_id: str
    groups: list[TaskGroup]
    cases: dict[str, dict[str, Any]]
    payload: dict[str, Any]
    total: int


@dataclass
class GroupOutcome:
    case_id: str
    recorded: int = 0
    skipped: int = 0
    failed: int = 0
    executions: int = 0
    node_executions: int = 0
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

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "status": self.status.value}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"


@lru_cache(maxsize=16)
def _resolve_cached(payload_json: str) -> ResolvedBatch:
    return resolve(BatchSpec.parse(json.loads(payload_json)))


class BatchService:
    """Registers batches, runs task groups, reports status/progress, cancels, summarises."""

    def __init__(self, app: App) -> None:
        self.app = app

    def prepare(
        self, spec: BatchSpec, base_dir: Path | None = None, workers: int = 4
    ) -> PreparedBatch:
        """Validate the spec, register the batch (or find it, to resume) and plan its tasks."""
        resolved = resolve(spec)
        cases = spec.load_cases(base_dir)
        if not cases:
            raise SpecError("cases: the batch has no cases")
        batch_id = spec.batch_id or f"batch-{new_id()[:20]}"
        payload = spec.model_dump(mode="json", exclude={"cases", "cases_file"})
        payload["batch_id"] = batch_id
        total = len(resolved.leaves) * len(cases)
        with self.app.uow() as uow:
            existing = uow.batches.find(batch_id)
            new = BatchTest(batch_id, spec.workflow, payload, total, spec.name)
            if existing is None and not uow.batches.add_if_absent(new):
                existing = uow.batches.get(batch_id)  # another runner registered it just now
            if existing is not None:
                self._check_same(existing, payload, total)
                existing.status = BatchStatus.RUNNING
                existing.cancel_requested = False
                existing.updated_at = utcnow()
                uow.batches.update(existing)
            started = [BatchStarted(batch_id, spec.name, total, resumed=existing is not None)]
            uow.record(started)
            uow.commit()
        self.app.publish(started)
        groups = plan_groups(resolved, cases, workers)
        case_map = {c.id: c.model_dump(mode="json") for c in cases}
        return PreparedBatch(batch_id, groups, case_map, payload, total)

    @staticmethod
    def _check_same(existing: BatchTest, payload: dict[str, Any], total: int) -> None:
        keys = ("workflow", "variants", "combinations", "repeats", "evaluators")
        changed = [k for k in keys if existing.spec.get(k) != payload.get(k)]
        if changed or existing.total != total:
            raise SpecError(
                f"batch_id: {existing.id!r} already exists with a different "
                f"{', '.join(changed) or 'set of cases'}; use a new batch_id to run this spec"
            )

    def run_group(
        self, payload: dict[str, Any], case: dict[str, Any], leaf_keys: Sequence[str]
    ) -> GroupOutcome:
        """Run one task group: the pending leaves of one case, as a shared-prefix tree."""
        resolved = _resolve_cached(json.dumps(payload, sort_keys=True))
        spec = resolved.spec
        batch_id = payload["batch_id"]
        the_case = Case.model_validate(case)
        outcome = GroupOutcome(the_case.id, worker_id=worker_id())
        with self.app.uow() as uow:
            done = uow.results.done_keys(batch_id, the_case.id)
        pending = [resolved.leaf(k) for k in leaf_keys if k not in done]
        outcome.skipped = len(leaf_keys) - len(pending)
        if not pending:
            return outcome
        tree = VariantTree(
            self.app.controller,
            resolved.workflow,
            nondeterministic=resolved.nondeterministic,
            prefix_sharing=spec.prefix_sharing,
            cancelled=self._cancel_probe(batch_id),
        )
        group_key = derived_id(*sorted(leaf_keys))
        for finished in tree.run(batch_id, the_case.id, the_case.input, pending, group_key):
            results = self._score(resolved, batch_id, the_case, finished, outcome.worker_id)
            outcome.recorded += self.app.retry(functools.partial(self._record, results))
            outcome.executions += 1
            outcome.failed += sum(1 for r in results if not r.success)
        outcome.node_executions = tree.nodes_run
        outcome.cancelled = self._cancel_probe(batch_id, poll_s=0)()
        self.app.flush()
        return outcome

    def _record(self, results: Sequence[BatchResult]) -> int:
        """One transaction of results and their audit entry / outbox event; idempotent
        (leaves already stored are skipped, and then no event is written)."""
        events: list[Event] = []
        with self.app.uow() as uow:
            recorded = uow.results.add_many(results)
            if recorded and results:
                failed = sum(1 for r in results if not r.success)
                first = results[0]
                events.append(BatchProgressed(first.batch_test_id, first.case_id, recorded, failed))
                uow.record(events)
            uow.commit()
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

    def _cancel_probe(self, batch_id: str, poll_s: float = CANCEL_POLL_S) -> Any:
        last = [0.0, False]

        def cancelled() -> bool:
            now = time.monotonic()
            if now - float(last[0]) >= poll_s:
                with self.app.uow() as uow:
                    last[1] = uow.batches.get(batch_id).cancel_requested
                last[0] = now
            return bool(last[1])

        return cancelled

    def progress(self, batch_id: str) -> BatchProgress:
        with self.app.uow() as uow:
            batch = uow.batches.get(batch_id)
            return uow.results.progress(batch_id, batch.total)

    def status(self, batch_id: str) -> BatchTest:
        with self.app.uow() as uow:
            return uow.batches.get(batch_id)

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
        self, batch_id: str, errors: Sequence[str] = (), node_executions: int = 0
    ) -> BatchSummary:
        """Set the batch's final status from its results and return a summary."""
        with self.app.uow() as uow:
            batch = uow.batches.get(batch_id)
            progress = uow.results.progress(batch_id, batch.total)
            if batch.cancel_requested and progress.pending:
                batch.status = BatchStatus.CANCELLED
            elif errors or progress.pending:
                batch.status = BatchStatus.FAILED
            elif progress.failed:
                batch.status = BatchStatus.COMPLETED_WITH_FAILURES
            else:
                batch.status = BatchStatus.COMPLETED
            batch.updated_at = utcnow()
            uow.batches.update(batch)
            events = self._final_events(uow, batch, progress)
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
        )

    @staticmethod
    def _final_events(uow: Any, batch: BatchTest, progress: BatchProgress) -> list[Event]:
        """The batch's end, and one event per combination whose results are all in."""
        if batch.status is BatchStatus.CANCELLED:
            return [BatchCancelled(batch.id, progress.total, progress.done)]
        events: list[Event] = []
        resolved = _resolve_cached(json.dumps(batch.spec, sort_keys=True))
        names = {leaf.combination.name for leaf in resolved.leaves}
        per_combination = batch.total // max(len(names), 1)
        if progress.done:
            for stats in uow.results.comparison(batch.id, None).stats:
                if stats.name in names and stats.n >= per_combination:
                    events.append(
                        CombinationCompleted(
                            batch.id, stats.name, stats.n, stats.n_failed, stats.mean_score
                        )
                    )
        events.append(
            BatchCompleted(
                batch.id, batch.status.value, progress.total, progress.done, progress.failed
            )
        )
        return events

    def rows(self, batch_id: str) -> list[ResultRow]:
        """The batch's results as comparison rows."""
        with self.app.uow() as uow:
            return result_rows(uow.results.for_batch(batch_id))

    def matrix(self, batch_id: str, baseline: str | None = None) -> ComparisonMatrix:
        """The comparison matrix, aggregated by the store (one SQL query on PostgreSQL)."""
        batch = self.status(batch_id)
        with self.app.uow() as uow:
            return uow.results.comparison(batch_id, baseline or batch.spec.get("baseline"))
