"""The comparison matrix of a batch and its JSON, CSV and Markdown renderings."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wtb_domain.comparison.model import (
    BETTER,
    CSV_COLUMNS,
    DEFAULT_ALPHA,
    NO_DIFFERENCE,
    WORSE,
    CombinationStats,
    PairedComparison,
)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


@dataclass(frozen=True)
class ComparisonMatrix:
    """The comparison of all combinations of a batch.

    Attributes:
        batch_id: The batch compared.
        stats: Per-combination statistics, ordered by rank.
        vs_best: Each other combination against the rank-1 combination, in rank order.
        vs_baseline: Each other combination against ``baseline``; empty without a baseline.
        baseline: The baseline combination, if any.
        alpha: Significance level used for the verdicts.
    """

    batch_id: str
    stats: list[CombinationStats]
    vs_best: list[PairedComparison]
    vs_baseline: list[PairedComparison]
    baseline: str | None = None
    alpha: float = DEFAULT_ALPHA

    @property
    def best(self) -> str | None:
        """The rank-1 combination, or ``None`` for an empty batch."""
        return self.stats[0].name if self.stats else None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (non-finite numbers become ``None``)."""
        data = {
            "batch_id": self.batch_id,
            "baseline": self.baseline,
            "alpha": self.alpha,
            "best": self.best,
            "stats": [dataclasses.asdict(s) for s in self.stats],
            "vs_best": [dataclasses.asdict(c) for c in self.vs_best],
            "vs_baseline": [dataclasses.asdict(c) for c in self.vs_baseline],
        }
        safe: dict[str, Any] = _json_safe(data)
        return safe

    def to_json(self, indent: int | None = 2) -> str:
        """Return :meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_csv(self) -> str:
        """One row per combination (see :data:`CSV_COLUMNS`), numbers at full precision.

        The adjusted p-value columns are empty for the reference itself and, without a
        baseline, for ``p_vs_baseline_adj``.
        """
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        best, baseline = _p_by_name(self.vs_best), _p_by_name(self.vs_baseline)
        for s in self.stats:
            writer.writerow(
                [
                    *(s.name, s.rank, s.n, s.mean_score, s.std_score, s.ci_low, s.ci_high),
                    *(s.pass_rate, s.p50_ms, s.p95_ms, s.total_cost),
                    *(_blank(best.get(s.name)), _blank(baseline.get(s.name))),
                ]
            )
        return buffer.getvalue()

    def to_markdown(self) -> str:
        """A ranked table plus a short section on significant differences from the baseline."""
        lines = [f"## Comparison of batch `{self.batch_id}`", ""]
        if not self.stats:
            return "\n".join([*lines, "No results.", ""])
        lines += [*self._table(), "", *self._baseline_section()]
        return "\n".join(lines) + "\n"

    def _table(self) -> list[str]:
        header = (
            "| rank | combination | n | failed | mean | 95% CI | pass rate | p50 ms | p95 ms "
            "| cost | p vs best (adj) |"
        )
        lines = [header, "|" + "---|" * 11]
        best = _p_by_name(self.vs_best)
        for s in self.stats:
            lines.append(
                f"| {s.rank} | {_cell(s.name)} | {s.n} | {s.n_failed} | {s.mean_score:.3f} "
                f"| [{s.ci_low:.3f}, {s.ci_high:.3f}] | {s.pass_rate:.1%} | {s.p50_ms:.1f} "
                f"| {s.p95_ms:.1f} | {s.total_cost:.4f} | {_fmt_p(best.get(s.name))} |"
            )
        return lines

    def _baseline_section(self) -> list[str]:
        if self.baseline is None:
            return ["No baseline set; pass `baseline=<combination>` to compare against one."]
        lines = [f"### vs baseline `{self.baseline}` (Holm-adjusted, alpha = {self.alpha:g})", ""]
        for verdict, label in ((BETTER, "Significantly better"), (WORSE, "Significantly worse")):
            found = [c for c in self.vs_baseline if c.verdict == verdict]
            lines.append(f"- {label}: " + (", ".join(map(_describe, found)) or "none"))
        same = [c.combination for c in self.vs_baseline if c.verdict == NO_DIFFERENCE]
        lines.append("- No significant difference: " + (", ".join(same) or "none"))
        return lines


def _describe(comparison: PairedComparison) -> str:
    return (
        f"{comparison.combination} (Δ {comparison.mean_diff:+.3f}, "
        f"p_adj {_fmt_p(comparison.p_adjusted)})"
    )


def _p_by_name(comparisons: Sequence[PairedComparison]) -> dict[str, float]:
    return {c.combination: c.p_adjusted for c in comparisons}


def _blank(value: float | None) -> str | float:
    return "" if value is None else value
