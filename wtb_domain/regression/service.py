"""RegressionService: pinned baselines (bless, resolve) and verdicts of batches against them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from wtb_domain.bootstrap import App
from wtb_domain.comparison import result_rows
from wtb_domain.errors import NotFoundError, SpecError, StoreError, WtbError
from wtb_domain.events import RegressionVerdict
from wtb_domain.model import Baseline, BatchResult, BatchStatus, BatchTest
from wtb_domain.regression.model import Verdict, WorstCase, incomparable
from wtb_domain.regression.policy import RegressionPolicy
from wtb_domain.regression.verdict import judge

UNFINISHED = (BatchStatus.RUNNING,)
BROKEN = (BatchStatus.FAILED, BatchStatus.CANCELLED)
MAX_PARENT_HOPS = 64


def bless_hint(name: str) -> str:
    return f"bless a finished batch with `wtb baseline set {name} BATCH_ID`"


class RegressionService:
    """What `wtb baseline`, `wtb regress`, ``wtb.regress`` and the regression flow call."""

    def __init__(self, app: App) -> None:
        self.app = app

    # --- baselines ----------------------------------------------------------------------------

    def bless(
        self, name: str, batch_id: str, note: str | None = None, blessed_by: str | None = None
    ) -> Baseline:
        """Pin ``batch_id`` as the baseline of ``name`` (a new entry in its history).

        Raises:
            NotFoundError: No such batch.
            SpecError: An empty name, or a batch that is running, failed, cancelled or has
                no results (it cannot be a baseline).
        """
        if not name.strip():
            raise SpecError("NAME: a baseline needs a non-empty name (usually the spec's name)")
        with self.app.uow() as uow:
            batch = uow.batches.find(batch_id)
            if batch is None:
                raise NotFoundError(
                    f"BATCH_ID: no batch test {batch_id!r}; `wtb batch run` prints the ids"
                )
            if batch.status in UNFINISHED:
                raise SpecError(
                    f"BATCH_ID: batch {batch_id!r} is still running; bless it once it finished"
                )
            if batch.status in BROKEN:
                raise SpecError(
                    f"BATCH_ID: batch {batch_id!r} is {batch.status.value}; only a completed "
                    "batch can be a baseline (rerun it with `wtb batch run SPEC --batch-id ID`)"
                )
            if uow.results.progress(batch_id, batch.total).done == 0:
                raise SpecError(f"BATCH_ID: batch {batch_id!r} has no results to compare with")
            baseline = Baseline(name, batch_id, note=note, blessed_by=blessed_by)
            uow.baselines.add(baseline)
            uow.commit()
            current = uow.baselines.current(name)
        if current is None:
            raise StoreError(f"baseline {name!r} was written but cannot be read back")
        return current

    def bless_on_pass(
        self, name: str, verdict: Verdict, note: str | None = None, blessed_by: str | None = None
    ) -> Baseline | None:
        """Opt-in: pin the judged batch when its verdict is ``not_worse``; else pin nothing."""
        if not verdict.passed:
            return None
        return self.bless(name, verdict.batch_id, note or "blessed on pass", blessed_by)

    def current(self, name: str) -> Baseline | None:
        with self.app.uow() as uow:
            return uow.baselines.current(name)

    def history(self, name: str) -> list[Baseline]:
        with self.app.uow() as uow:
            return uow.baselines.history(name)

    def resolve_baseline(self, name_or_batch_id: str | None, spec_name: str | None) -> BatchTest:
        """The batch to compare with: the pinned baseline of a name, or a batch id.

        Without ``name_or_batch_id`` the spec's name is the baseline name. Never "the newest
        batch": only an explicit blessing (or an explicit batch id) makes a baseline.

        Raises:
            SpecError: Neither a baseline nor a spec name.
            NotFoundError: Nothing pinned under the name (the message says how to bless one).
        """
        name = name_or_batch_id or spec_name
        if not name:
            raise SpecError(
                "name: the spec has no name and no --baseline was given; name the spec "
                "(its name is the baseline name) or pass --baseline NAME|BATCH_ID"
            )
        with self.app.uow() as uow:
            pinned = uow.baselines.current(name)
            if pinned is not None:
                return uow.batches.get(pinned.batch_test_id)
            if name_or_batch_id is not None:
                batch = uow.batches.find(name_or_batch_id)
                if batch is not None:
                    return batch
        raise NotFoundError(
            f"no baseline pinned for {name!r}"
            + (" and no batch with that id" if name_or_batch_id else "")
            + f"; {bless_hint(name)}"
        )

    # --- verdicts -----------------------------------------------------------------------------

    def compare(
        self,
        batch_id: str,
        baseline: BatchTest | str,
        policy: RegressionPolicy | None = None,
    ) -> Verdict:
        """The verdict of ``batch_id`` against ``baseline`` (a batch or a batch id).

        The policy defaults to the batch spec's ``regression:`` section. A batch that is still
        running, failed or was cancelled is incomparable (its results are incomplete).
        """
        with self.app.uow() as uow:
            batch = uow.batches.get(batch_id)
            base = baseline if isinstance(baseline, BatchTest) else uow.batches.get(baseline)
            current = uow.results.for_batch(batch_id)
            before = uow.results.for_batch(base.id)
        if policy is None:
            policy = RegressionPolicy.parse(batch.spec.get("regression"))
        if base.id == batch.id:
            raise SpecError(f"--baseline: batch {batch_id!r} cannot be its own baseline")
        if batch.status in UNFINISHED or batch.status in BROKEN:
            return self._recorded(
                incomparable(
                    batch_id,
                    base.id,
                    f"batch {batch_id} is {batch.status.value}: its results are incomplete",
                    policy,
                )
            )
        verdict = judge(
            result_rows(current),
            result_rows(before),
            policy,
            batch_id=batch_id,
            baseline_id=base.id,
        )
        return self._recorded(self.with_case_details(verdict, current, before))

    def _recorded(self, verdict: Verdict) -> Verdict:
        """Write the verdict's event (audit entry + outbox) and publish it."""
        worse = [f"{j.combination}:{j.metric}" for j in verdict.regressions]
        event = RegressionVerdict(
            verdict.batch_id, verdict.baseline_id, verdict.status, worse, verdict.reason or None
        )
        with self.app.uow() as uow:
            uow.record([event])
            uow.commit()
        self.app.publish([event])
        return verdict

    def with_case_details(
        self, verdict: Verdict, current: Sequence[BatchResult], baseline: Sequence[BatchResult]
    ) -> Verdict:
        """The verdict with each worst case's input and both outputs read from its executions."""
        now, before = _first_executions(current), _first_executions(baseline)
        cases = []
        for case in verdict.worst_cases:
            cur_id = now.get((case.combination, case.case_id))
            base_id = before.get((case.combination, case.case_id))
            cases.append(self._detailed(case, cur_id, base_id))
        return verdict.with_worst_cases(cases)

    def _detailed(self, case: WorstCase, cur_id: str | None, base_id: str | None) -> WorstCase:
        given = self.case_input(cur_id) if cur_id else None
        if given is None and base_id:
            given = self.case_input(base_id)
        return replace(
            case,
            current_execution_id=cur_id,
            baseline_execution_id=base_id,
            input=given,
            current_output=self.case_output(cur_id, given) if cur_id else None,
            baseline_output=self.case_output(base_id, given) if base_id else None,
        )

    def case_input(self, execution_id: str) -> dict[str, Any] | None:
        """The state the case started from: the input checkpoint of the execution's root (a
        batch forks variants from shared prefixes); ``None`` when it is not stored."""
        controller = self.app.controller
        try:
            execution = controller.get(execution_id)
            for _ in range(MAX_PARENT_HOPS):
                if execution.parent_execution_id is None:
                    break
                execution = controller.get(execution.parent_execution_id)
            history = controller.history(execution.id)
            if not history:
                return None
            return dict(controller.checkpoint(history[0].id).state or {})
        except WtbError:
            return None

    def case_output(
        self, execution_id: str, given: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The execution's final state, without the input keys it left unchanged."""
        try:
            state = self.app.controller.state(execution_id)
        except WtbError:
            return None
        given = given or {}
        return {k: v for k, v in state.items() if k not in given or given[k] != v}


def _first_executions(results: Sequence[BatchResult]) -> dict[tuple[str, str], str]:
    """(combination, case) -> the execution of its lowest repeat."""
    out: dict[tuple[str, str], tuple[int, str]] = {}
    for r in results:
        key = (r.combination_name, r.case_id)
        if key not in out or r.repeat < out[key][0]:
            out[key] = (r.repeat, r.execution_id)
    return {key: execution for key, (_, execution) in out.items()}
