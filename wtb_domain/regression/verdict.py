"""The regression verdict: is a batch worse than its baseline batch?

Per combination x metric over the cases BOTH batches ran:

* ``score`` and ``pass_rate``: per-case values (mean over repeats; a failed run scores 0 and
  does not pass), paired sign-flip test of the differences, Holm over every test of the
  verdict. Regressed when the mean drop exceeds ``max_drop`` and the adjusted p < alpha;
  improved when the gain exceeds it and is significant; else unchanged.
* ``p95_ms`` and ``cost`` (mean ``cost_usd`` per run): relative change against
  ``max_increase_pct``, ignoring absolute changes up to ``min_increase``.

Repeats: per case pass^k (every repeat passed) and pass@k (any did); a case whose repeats
disagree is *flaky* and listed, and it fails the verdict only through a significant drop of
its pass rate. No shared combination, or no shared case -> ``incomparable``: never a pass.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from wtb_domain.comparison import COST_METRIC, ResultRow, holm, numeric_metrics, paired_test
from wtb_domain.comparison import percentile as _percentile
from wtb_domain.regression.model import (
    METRICS,
    CombinationSummary,
    Judgement,
    Outcome,
    Status,
    Verdict,
    WorstCase,
    incomparable,
)
from wtb_domain.regression.policy import DropRule, GrowthRule, RegressionPolicy

# --- per-case figures ------------------------------------------------------------------------


@dataclass
class _Case:
    scores: list[float] = field(default_factory=list)
    passes: list[bool] = field(default_factory=list)

    @property
    def score(self) -> float:
        return statistics.fmean(self.scores)

    @property
    def pass_rate(self) -> float:
        return sum(self.passes) / len(self.passes)

    @property
    def flaky(self) -> bool:
        return 0 < sum(self.passes) < len(self.passes)


def _case_score(case: _Case) -> float:
    return case.score


def _case_pass_rate(case: _Case) -> float:
    return case.pass_rate


def _by_case(rows: Iterable[ResultRow]) -> dict[str, dict[str, _Case]]:
    out: dict[str, dict[str, _Case]] = {}
    for row in rows:
        case = out.setdefault(row.combination_name, {}).setdefault(row.case_id, _Case())
        case.scores.append(row.score)
        case.passes.append(row.success and row.passed)
    return out


def _p95(rows: Sequence[ResultRow]) -> float | None:
    return _percentile([r.duration_ms for r in rows], 95) if rows else None


def _mean_cost(rows: Sequence[ResultRow]) -> float | None:
    costs = [v for r in rows for k, v in numeric_metrics(r.metrics) if k == COST_METRIC]
    return statistics.fmean(costs) if costs else None


# --- rules -----------------------------------------------------------------------------------


def _drop_outcome(rule: DropRule, mean_diff: float, p_adjusted: float, alpha: float) -> Outcome:
    if p_adjusted >= alpha or abs(mean_diff) <= rule.max_drop:
        return "unchanged"
    return "improved" if mean_diff > 0 else "regressed"


def _growth_outcome(rule: GrowthRule, before: float | None, now: float | None) -> Outcome:
    if before is None or now is None or rule.max_increase_pct is None:
        return "not_measured"
    change = now - before
    if abs(change) <= rule.min_increase or change == 0:
        return "unchanged"
    relative = math.inf if before == 0 else abs(change) / abs(before) * 100
    if relative <= rule.max_increase_pct:
        return "unchanged"
    return "regressed" if change > 0 else "improved"


def _growth_threshold(rule: GrowthRule, unit: str) -> str:
    if rule.max_increase_pct is None:
        return "not checked"
    floor = f", ignoring {rule.min_increase:g}{unit}" if rule.min_increase else ""
    return f"max +{rule.max_increase_pct:g}%{floor}"


# --- judge -----------------------------------------------------------------------------------


@dataclass
class _Paired:
    combination: str
    metric: str
    before: float
    now: float
    n: int
    p: float
    rule: DropRule


def judge(
    current_rows: Iterable[ResultRow],
    baseline_rows: Iterable[ResultRow],
    policy: RegressionPolicy | None = None,
    *,
    batch_id: str,
    baseline_id: str,
) -> Verdict:
    """Judge ``current_rows`` (batch ``batch_id``) against ``baseline_rows``.

    Deterministic for the same rows and ``policy.seed``.
    """
    policy = policy or RegressionPolicy()
    current, baseline = list(current_rows), list(baseline_rows)
    now, before = _by_case(current), _by_case(baseline)
    shared = sorted(now.keys() & before.keys())
    only_current = tuple(sorted(now.keys() - before.keys()))
    only_baseline = tuple(sorted(before.keys() - now.keys()))
    common = {combo: sorted(now[combo].keys() & before[combo].keys()) for combo in shared}
    comparable = [combo for combo in shared if common[combo]]
    if not comparable:
        reason = (
            f"no combination in common (this batch: {_names(only_current)}; "
            f"baseline: {_names(only_baseline)})"
            if not shared
            else f"no case in common in any shared combination ({_names(tuple(shared))})"
        )
        return replace(
            incomparable(batch_id, baseline_id, reason, policy),
            only_current=only_current,
            only_baseline=only_baseline,
        )
    paired: list[_Paired] = []
    summaries: list[CombinationSummary] = []
    worst: list[WorstCase] = []
    for combo in comparable:
        cases = common[combo]
        cur, base = now[combo], before[combo]
        for metric, rule, value in (
            ("score", policy.score, _case_score),
            ("pass_rate", policy.pass_rate, _case_pass_rate),
        ):
            diffs = [value(cur[c]) - value(base[c]) for c in cases]
            paired.append(
                _Paired(
                    combo,
                    metric,
                    statistics.fmean(value(base[c]) for c in cases),
                    statistics.fmean(value(cur[c]) for c in cases),
                    len(cases),
                    paired_test(diffs, seed=policy.seed),
                    rule,
                )
            )
        summaries.append(_summary(combo, cases, cur, base))
        worst.extend(
            WorstCase(combo, c, base[c].score, cur[c].score)
            for c in cases
            if cur[c].score < base[c].score
        )
    adjusted = holm([p.p for p in paired])
    judgements: list[Judgement] = []
    for item, p_adj in zip(paired, adjusted, strict=True):
        judgements.append(
            Judgement(
                item.combination,
                item.metric,
                _drop_outcome(item.rule, item.now - item.before, p_adj, policy.alpha),
                item.before,
                item.now,
                item.n,
                f"max drop {item.rule.max_drop:g}, alpha {policy.alpha:g}",
                item.p,
                p_adj,
            )
        )
    judgements.extend(_growth_judgements(current, baseline, common, comparable, policy))
    order = {m: i for i, m in enumerate(METRICS)}
    judgements.sort(key=lambda j: (comparable.index(j.combination), order[j.metric]))
    regressed = [j for j in judgements if j.outcome == "regressed"]
    status: Status = "regressed" if regressed else "not_worse"
    reason = (
        "regressed: " + ", ".join(f"{j.combination} {j.metric}" for j in regressed[:5])
        if regressed
        else f"not worse than {baseline_id} over {len(comparable)} combination(s)"
    )
    worst.sort(key=lambda w: (w.delta, w.combination, w.case_id))
    return Verdict(
        batch_id,
        baseline_id,
        status,
        reason,
        tuple(judgements),
        tuple(summaries),
        tuple(worst[: policy.worst_cases]),
        only_current,
        only_baseline,
        policy,
    )


def _growth_judgements(
    current: Sequence[ResultRow],
    baseline: Sequence[ResultRow],
    common: Mapping[str, Sequence[str]],
    comparable: Sequence[str],
    policy: RegressionPolicy,
) -> list[Judgement]:
    out = []
    for combo in comparable:
        cases = set(common[combo])
        cur = [r for r in current if r.combination_name == combo and r.case_id in cases]
        base = [r for r in baseline if r.combination_name == combo and r.case_id in cases]
        for metric, rule, figure, unit in (
            ("p95_ms", policy.p95_ms, _p95, " ms"),
            ("cost", policy.cost, _mean_cost, ""),
        ):
            before, now = figure(base), figure(cur)
            out.append(
                Judgement(
                    combo,
                    metric,
                    _growth_outcome(rule, before, now),
                    before,
                    now,
                    len(cases),
                    _growth_threshold(rule, unit),
                )
            )
    return out


def _summary(
    combo: str, cases: Sequence[str], cur: Mapping[str, _Case], base: Mapping[str, _Case]
) -> CombinationSummary:
    n = len(cases)
    return CombinationSummary(
        combination=combo,
        shared_cases=n,
        only_current=len(cur.keys() - base.keys()),
        only_baseline=len(base.keys() - cur.keys()),
        pass_all_current=sum(all(cur[c].passes) for c in cases) / n,
        pass_all_baseline=sum(all(base[c].passes) for c in cases) / n,
        pass_any_current=sum(any(cur[c].passes) for c in cases) / n,
        pass_any_baseline=sum(any(base[c].passes) for c in cases) / n,
        flaky_current=tuple(c for c in cases if cur[c].flaky),
        flaky_baseline=tuple(c for c in cases if base[c].flaky),
    )


def _names(names: Sequence[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "") or (
        "none"
    )
