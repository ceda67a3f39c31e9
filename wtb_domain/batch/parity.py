"""ParityChecker: do two runs of the same deterministic batch give the same results?"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wtb_domain.engine import LATENCY_METRIC
from wtb_domain.model import BatchResult

# Timing differs between any two runs; everything else must match for deterministic nodes.
TIMING_METRICS = frozenset({LATENCY_METRIC, "latency"})


@dataclass(frozen=True)
class Difference:
    key: str
    field: str
    left: object
    right: object


@dataclass
class ParityReport:
    left: str
    right: str
    compared: int = 0
    differences: list[Difference] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences and not self.missing


def _close(a: object, b: object) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def compare_results(
    left_name: str,
    left: Sequence[BatchResult],
    right_name: str,
    right: Sequence[BatchResult],
    ignore_metrics: Iterable[str] = TIMING_METRICS,
) -> ParityReport:
    """Compare results leaf by leaf (combination, case, repeat), ignoring timing."""
    ignored = set(ignore_metrics)
    report = ParityReport(left_name, right_name)
    lhs = {(r.combination_name, r.case_id, r.repeat): r for r in left}
    rhs = {(r.combination_name, r.case_id, r.repeat): r for r in right}
    for key in sorted(lhs.keys() ^ rhs.keys()):
        side = left_name if key in lhs else right_name
        report.missing.append(f"{key[0]} / {key[1]} #{key[2]} only in {side}")
    for key in sorted(lhs.keys() & rhs.keys()):
        a, b = lhs[key], rhs[key]
        report.compared += 1
        label = f"{key[0]} / {key[1]} #{key[2]}"
        for name in ("success", "passed", "overall_score", "error"):
            if not _close(getattr(a, name), getattr(b, name)):
                report.differences.append(
                    Difference(label, name, getattr(a, name), getattr(b, name))
                )
        for metric in sorted((a.metrics.keys() | b.metrics.keys()) - ignored):
            if not _close(a.metrics.get(metric), b.metrics.get(metric)):
                report.differences.append(
                    Difference(
                        label, f"metrics.{metric}", a.metrics.get(metric), b.metrics.get(metric)
                    )
                )
    return report
