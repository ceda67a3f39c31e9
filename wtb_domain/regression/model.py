"""The verdict records: judgements per combination x metric, coverage, worst cases."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from wtb_domain.regression.policy import RegressionPolicy

Outcome = Literal["improved", "unchanged", "regressed", "not_measured"]
Status = Literal["not_worse", "regressed", "incomparable"]
METRICS = ("score", "pass_rate", "p95_ms", "cost")


@dataclass(frozen=True)
class Judgement:
    """One combination x metric: baseline and current values over the shared cases."""

    combination: str
    metric: str
    outcome: Outcome
    baseline: float | None
    current: float | None
    n_cases: int
    threshold: str
    p_value: float | None = None
    p_adjusted: float | None = None

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def change_pct(self) -> float | None:
        """Relative change in percent (``inf`` from a zero baseline, ``None`` if unknown)."""
        if self.delta is None or self.baseline is None:
            return None
        if self.baseline == 0:
            return 0.0 if self.delta == 0 else math.copysign(math.inf, self.delta)
        return self.delta / abs(self.baseline) * 100


@dataclass(frozen=True)
class CombinationSummary:
    """Coverage and repeat behaviour of one combination in both batches."""

    combination: str
    shared_cases: int
    only_current: int
    only_baseline: int
    pass_all_current: float
    """pass^k: share of shared cases whose every repeat passed (current batch)."""
    pass_all_baseline: float
    pass_any_current: float
    """pass@k: share of shared cases with at least one passing repeat (current batch)."""
    pass_any_baseline: float
    flaky_current: tuple[str, ...] = ()
    """Shared cases whose repeats disagree (some pass, some not) in the current batch."""
    flaky_baseline: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorstCase:
    """A shared case that lost score; input and outputs are filled from the executions."""

    combination: str
    case_id: str
    baseline_score: float
    current_score: float
    baseline_execution_id: str | None = None
    current_execution_id: str | None = None
    input: Mapping[str, Any] | None = None
    baseline_output: Mapping[str, Any] | None = None
    current_output: Mapping[str, Any] | None = None

    @property
    def delta(self) -> float:
        return self.current_score - self.baseline_score


@dataclass(frozen=True)
class Verdict:
    """The verdict of one batch against its baseline batch."""

    batch_id: str
    baseline_id: str
    status: Status
    reason: str
    judgements: tuple[Judgement, ...] = ()
    combinations: tuple[CombinationSummary, ...] = ()
    worst_cases: tuple[WorstCase, ...] = ()
    only_current: tuple[str, ...] = ()
    """Combinations the baseline did not run (not judged)."""
    only_baseline: tuple[str, ...] = ()
    """Combinations of the baseline this batch did not run (not judged)."""
    policy: RegressionPolicy = field(default_factory=RegressionPolicy)

    @property
    def regressions(self) -> list[Judgement]:
        return [j for j in self.judgements if j.outcome == "regressed"]

    @property
    def improvements(self) -> list[Judgement]:
        return [j for j in self.judgements if j.outcome == "improved"]

    @property
    def passed(self) -> bool:
        """True only for ``not_worse`` (an incomparable verdict is a failure)."""
        return self.status == "not_worse"

    @property
    def exit_code(self) -> int:
        """What a CI gate exits with: 0 not worse, 1 regressed, 2 incomparable."""
        return {"not_worse": 0, "regressed": 1, "incomparable": 2}[self.status]

    def with_worst_cases(self, cases: Iterable[WorstCase]) -> Verdict:
        return replace(self, worst_cases=tuple(cases))

    def to_dict(self) -> dict[str, Any]:
        from wtb_domain.regression.report import verdict_dict

        return verdict_dict(self)

    def to_markdown(self) -> str:
        from wtb_domain.regression.report import verdict_markdown

        return verdict_markdown(self)

    def to_junit(self) -> str:
        from wtb_domain.regression.report import verdict_junit

        return verdict_junit(self)


def incomparable(
    batch_id: str, baseline_id: str, reason: str, policy: RegressionPolicy | None = None
) -> Verdict:
    return Verdict(
        batch_id, baseline_id, "incomparable", reason, policy=policy or RegressionPolicy()
    )
