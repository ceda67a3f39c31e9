"""Deprecated: the old regression check, now a thin view of :mod:`wtb_domain.regression`.

Kept only until ``flows/regression.py`` calls :class:`wtb_domain.regression.service.
RegressionService` (pinned baselines, a verdict per combination x metric); delete it then.
An incomparable verdict (no shared combination or case) counts as worse, never as a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from wtb_domain.comparison import ResultRow
from wtb_domain.regression import RegressionPolicy, Verdict, judge


@dataclass(frozen=True)
class CombinationDelta:
    combination: str
    baseline_mean: float
    current_mean: float
    n_pairs: int
    p_adjusted: float
    worse: bool

    @property
    def delta(self) -> float:
        return self.current_mean - self.baseline_mean


@dataclass
class RegressionReport:
    batch_id: str
    baseline_id: str
    verdict: Verdict
    deltas: list[CombinationDelta] = field(default_factory=list)

    @property
    def regressions(self) -> list[CombinationDelta]:
        return [d for d in self.deltas if d.worse]

    @property
    def worse_than_baseline(self) -> bool:
        return not self.verdict.passed

    def to_markdown(self) -> str:
        return self.verdict.to_markdown()


def check_regression(
    batch_id: str,
    current: Sequence[ResultRow],
    baseline_id: str,
    baseline: Sequence[ResultRow],
    *,
    tolerance: float = 0.0,
    alpha: float = 0.05,
    seed: int = 0,
) -> RegressionReport:
    """The verdict of :func:`wtb_domain.regression.judge` in the old report's shape."""
    policy = RegressionPolicy.parse(
        {"score": {"max_drop": tolerance}, "alpha": alpha, "seed": seed}
    )
    verdict = judge(current, baseline, policy, batch_id=batch_id, baseline_id=baseline_id)
    regressed = {j.combination for j in verdict.regressions}
    report = RegressionReport(batch_id, baseline_id, verdict)
    for j in verdict.judgements:
        if j.metric == "score":
            report.deltas.append(
                CombinationDelta(
                    j.combination,
                    j.baseline or 0.0,
                    j.current or 0.0,
                    j.n_cases,
                    1.0 if j.p_adjusted is None else j.p_adjusted,
                    j.combination in regressed,
                )
            )
    return report
