"""Running one task group: the pending leaves of one case as a shared-prefix tree, each
finished execution scored and its results recorded in one idempotent transaction."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

from wtb_domain.batch.calls_spec import run_labels
from wtb_domain.batch.plan import ResolvedBatch
from wtb_domain.batch.service.outcomes import GroupOutcome, worker_id
from wtb_domain.batch.service.registry import BatchRegistry
from wtb_domain.batch.spec import Case
from wtb_domain.batch.tree import Finished, VariantTree, derived_id
from wtb_domain.engine import LATENCY_METRIC
from wtb_domain.evaluation import RunInfo, score_execution
from wtb_domain.events import BatchProgressed, Event
from wtb_domain.model import BatchResult, Status


def _outcome(result: BatchResult) -> str:
    """``wtb_batch_results_total``'s outcome: error (the run or an evaluator failed), passed
    or failed (scored below the pass threshold)."""
    if not result.success:
        return "error"
    return "passed" if result.passed else "failed"


class GroupRunner(BatchRegistry):
    """Runs the task groups of a registered batch (what ``run_case_group`` calls)."""

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
        with self.app.uow(read_only=True) as uow:  # one snapshot, no write lock
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
                with self.app.uow(read_only=True) as uow:
                    last[1] = uow.batches.get(batch_id).cancel_requested
                last[0] = now
            return bool(last[1])

        return cancelled
