"""Regression check: is a batch worse than a baseline batch of the same spec?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from wtb_domain.comparison import ResultRow, holm, paired_test, per_case_means


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
    deltas: list[CombinationDelta] = field(default_factory=list)

    @property
    def regressions(self) -> list[CombinationDelta]:
        return [d for d in self.deltas if d.worse]

    @property
    def worse_than_baseline(self) -> bool:
        return bool(self.regressions)

    def to_markdown(self) -> str:
        verdict = "WORSE than baseline" if self.worse_than_baseline else "not worse than baseline"
        lines = [
            f"## Regression check: `{self.batch_id}` vs baseline `{self.baseline_id}`: {verdict}",
            "",
            "| combination | baseline | current | delta | pairs | p (Holm) | worse |",
            "|---|---|---|---|---|---|---|",
        ]
        for d in self.deltas:
            lines.append(
                f"| {d.combination} | {d.baseline_mean:.3f} | {d.current_mean:.3f} | "
                f"{d.delta:+.3f} | {d.n_pairs} | {d.p_adjusted:.3f} | {'yes' if d.worse else ''} |"
            )
        return "\n".join(lines)


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
    """A combination is worse when its per-case mean score drops by more than ``tolerance``
    and a paired sign-flip test (Holm-corrected over combinations) says the drop is real."""
    now, before = per_case_means(current), per_case_means(baseline)
    combos = sorted(now.keys() & before.keys())
    raw: list[tuple[str, float, float, int, float]] = []
    for combo in combos:
        cases = sorted(now[combo].keys() & before[combo].keys())
        diffs = [now[combo][c] - before[combo][c] for c in cases]
        mean_now = sum(now[combo][c] for c in cases) / len(cases) if cases else 0.0
        mean_before = sum(before[combo][c] for c in cases) / len(cases) if cases else 0.0
        p = paired_test(diffs, seed=seed) if cases else 1.0
        raw.append((combo, mean_before, mean_now, len(cases), p))
    adjusted = holm([r[4] for r in raw])
    report = RegressionReport(batch_id, baseline_id)
    for (combo, mean_before, mean_now, n, _), p_adj in zip(raw, adjusted, strict=True):
        worse = (mean_now - mean_before) < -tolerance and p_adj < alpha
        report.deltas.append(CombinationDelta(combo, mean_before, mean_now, n, p_adj, worse))
    return report
