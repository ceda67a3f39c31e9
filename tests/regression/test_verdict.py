"""The verdict over hand-made result rows: what a CI gate on it relies on."""

from __future__ import annotations

import json
from collections.abc import Callable
from xml.etree import ElementTree as ET

import pytest

from wtb_domain import SpecError
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.comparison import ResultRow
from wtb_domain.regression import RegressionPolicy, Verdict, judge

Cases = list[str]
CASES = [f"q{i:02d}" for i in range(20)]


def rows(
    combination: str = "a=x",
    *,
    score: Callable[[int, int], float] = lambda case, repeat: 1.0,
    passed: Callable[[int, int], bool] | None = None,
    ms: float = 100.0,
    cost: float | None = 0.01,
    cases: Cases = CASES,
    repeats: int = 1,
) -> list[ResultRow]:
    out = []
    for i, case in enumerate(cases):
        for r in range(repeats):
            s = score(i, r)
            ok = passed(i, r) if passed else s >= 0.5
            out.append(
                ResultRow(
                    combination_name=combination,
                    case_id=case,
                    repeat=r,
                    success=True,
                    overall_score=s,
                    duration_ms=ms,
                    metrics={} if cost is None else {"cost_usd": cost},
                    passed=ok,
                )
            )
    return out


def verdict_of(current: list[ResultRow], baseline: list[ResultRow], **policy: object) -> Verdict:
    return judge(
        current, baseline, RegressionPolicy.parse(policy), batch_id="now", baseline_id="base"
    )


def outcome(v: Verdict, metric: str, combination: str = "a=x") -> str:
    (j,) = [j for j in v.judgements if j.metric == metric and j.combination == combination]
    return j.outcome


def test_no_change_is_not_worse_and_every_metric_is_unchanged() -> None:
    v = verdict_of(rows(), rows())
    assert v.status == "not_worse" and v.passed and v.exit_code == 0
    assert [(j.metric, j.outcome) for j in v.judgements] == [
        ("score", "unchanged"),
        ("pass_rate", "unchanged"),
        ("p95_ms", "unchanged"),
        ("cost", "unchanged"),
    ]
    assert v.worst_cases == ()


def test_an_improvement_is_reported_and_not_worse() -> None:
    v = verdict_of(rows(score=lambda c, r: 1.0), rows(score=lambda c, r: 0.2))
    assert v.status == "not_worse"
    assert outcome(v, "score") == "improved" and outcome(v, "pass_rate") == "improved"


def test_a_real_drop_regresses_with_the_worst_cases_first() -> None:
    worse = rows(score=lambda c, r: 0.1 if c < 12 else 1.0)
    v = verdict_of(worse, rows())
    assert v.status == "regressed" and v.exit_code == 1 and not v.passed
    assert outcome(v, "score") == "regressed" and outcome(v, "pass_rate") == "regressed"
    score = next(j for j in v.judgements if j.metric == "score")
    assert score.baseline == 1.0 and score.current == pytest.approx(0.46)
    assert score.p_adjusted is not None and score.p_adjusted < 0.05
    assert [w.case_id for w in v.worst_cases] == CASES[:5]  # policy.worst_cases = 5
    assert all(w.delta == pytest.approx(-0.9) for w in v.worst_cases)
    assert "a=x score" in v.reason


def test_a_significant_drop_within_the_threshold_is_unchanged() -> None:
    slightly = rows(score=lambda c, r: 0.99)
    assert outcome(verdict_of(slightly, rows()), "score") == "regressed"  # default max_drop 0
    v = verdict_of(slightly, rows(), score={"max_drop": 0.02})
    assert v.status == "not_worse" and outcome(v, "score") == "unchanged"


def test_a_drop_on_too_few_cases_is_not_significant() -> None:
    # 2 shared cases: the sign-flip test cannot reach p < 0.05 (smallest p is 0.5).
    few = ["q1", "q2"]
    v = verdict_of(rows(score=lambda c, r: 0.0, cases=few), rows(cases=few))
    assert outcome(v, "score") == "unchanged" and v.status == "not_worse"


def test_flaky_repeats_are_reported_and_not_a_regression() -> None:
    # Every case passes 2 of 3 repeats now, and 3 of 3 before on only 1 case: flaky, no drop.
    flaky = rows(repeats=3, passed=lambda c, r: r != 1, score=lambda c, r: 0.0 if r == 1 else 1)
    before = rows(repeats=3, passed=lambda c, r: r != 1, score=lambda c, r: 0.0 if r == 1 else 1)
    v = verdict_of(flaky, before)
    assert v.status == "not_worse"
    (summary,) = v.combinations
    assert summary.flaky_current == tuple(CASES)
    assert summary.pass_all_current == 0.0  # pass^3: no case passed every repeat
    assert summary.pass_any_current == 1.0  # pass@3: every case passed at least once
    assert "flaky" in v.to_markdown()


def test_flaky_repeats_whose_pass_rate_drops_significantly_regress() -> None:
    before = rows(repeats=3)
    now = rows(repeats=3, passed=lambda c, r: r == 0, score=lambda c, r: 1.0 if r == 0 else 0.0)
    v = verdict_of(now, before)
    assert v.combinations[0].flaky_current == tuple(CASES)
    assert outcome(v, "pass_rate") == "regressed" and v.status == "regressed"


def test_no_shared_combination_is_incomparable_never_a_pass() -> None:
    v = verdict_of(rows("a=y"), rows("a=x"))
    assert v.status == "incomparable" and v.exit_code == 2 and not v.passed
    assert "no combination in common" in v.reason and "a=y" in v.reason
    assert v.only_current == ("a=y",) and v.only_baseline == ("a=x",)
    assert v.judgements == ()


def test_no_shared_case_is_incomparable() -> None:
    v = verdict_of(rows(cases=["new1", "new2"]), rows(cases=["old1"]))
    assert v.status == "incomparable" and "no case in common" in v.reason


def test_only_shared_cases_are_compared() -> None:
    # The current batch fails on a case the baseline never ran: not part of the comparison.
    now = rows(cases=[*CASES, "extra"], score=lambda c, r: 0.0 if c == len(CASES) else 1.0)
    v = verdict_of(now, rows())
    assert v.status == "not_worse"
    assert v.combinations[0].shared_cases == len(CASES) and v.combinations[0].only_current == 1


def test_a_combination_the_baseline_did_not_run_is_listed_not_judged() -> None:
    v = verdict_of(rows("a=x") + rows("a=new", score=lambda c, r: 0.0), rows("a=x"))
    assert v.status == "not_worse" and v.only_current == ("a=new",)
    assert {j.combination for j in v.judgements} == {"a=x"}


def test_p95_latency_regression_by_relative_change() -> None:
    v = verdict_of(rows(ms=130.0), rows(ms=100.0))
    assert outcome(v, "p95_ms") == "regressed" and v.status == "regressed"
    assert outcome(verdict_of(rows(ms=115.0), rows(ms=100.0)), "p95_ms") == "unchanged"
    assert outcome(verdict_of(rows(ms=70.0), rows(ms=100.0)), "p95_ms") == "improved"
    relaxed = verdict_of(rows(ms=130.0), rows(ms=100.0), p95_ms={"max_increase_pct": 50})
    assert outcome(relaxed, "p95_ms") == "unchanged"
    off = verdict_of(rows(ms=130.0), rows(ms=100.0), p95_ms={"max_increase_pct": None})
    assert outcome(off, "p95_ms") == "not_measured" and off.status == "not_worse"


def test_tiny_latencies_do_not_regress_below_the_absolute_floor() -> None:
    # 0.4 ms -> 0.6 ms is +50 %, but under the default 5 ms floor.
    assert outcome(verdict_of(rows(ms=0.6), rows(ms=0.4)), "p95_ms") == "unchanged"


def test_cost_regression_by_mean_cost_per_run() -> None:
    v = verdict_of(rows(cost=0.02), rows(cost=0.01))
    assert outcome(v, "cost") == "regressed" and v.status == "regressed"
    cost = next(j for j in v.judgements if j.metric == "cost")
    assert cost.change_pct == pytest.approx(100.0)
    assert outcome(verdict_of(rows(cost=0.0105), rows(cost=0.01)), "cost") == "unchanged"
    assert outcome(verdict_of(rows(cost=None), rows(cost=None)), "cost") == "not_measured"


def test_holm_corrects_over_the_family_of_combinations() -> None:
    # a=x drops on all 7 cases: exact p = 2/2^7. Alone (2 tests: score, pass rate) that is
    # significant; beside two unchanged combinations (6 tests) Holm makes it not significant.
    cases = CASES[:7]

    def batch(combos: tuple[str, ...], drop: bool) -> list[ResultRow]:
        out: list[ResultRow] = []
        for combo in combos:
            hit = drop and combo == "a=x"
            out += rows(combo, cases=cases, score=lambda c, r, hit=hit: 0.0 if hit else 1.0)
        return out

    alone = verdict_of(batch(("a=x",), True), batch(("a=x",), False))
    assert outcome(alone, "score") == "regressed"
    family = ("a=x", "a=y", "a=z")
    v = verdict_of(batch(family, True), batch(family, False))
    score = next(j for j in v.judgements if j.metric == "score" and j.combination == "a=x")
    assert score.p_value == pytest.approx(2 / 128)
    assert score.p_adjusted == pytest.approx(6 * 2 / 128)
    assert score.outcome == "unchanged"


def test_markdown_junit_and_dict_tell_the_same_story() -> None:
    v = verdict_of(rows(score=lambda c, r: 0.1 if c < 12 else 1.0), rows())
    md = v.to_markdown()
    assert "REGRESSED" in md and "| a=x | score |" in md and "### Worst cases" in md
    suite = ET.fromstring(v.to_junit()).find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == 4 and suite.get("tests") == "4"
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["score", "pass_rate"] and suite.get("failures") == "2"
    data = json.loads(json.dumps(v.to_dict(), allow_nan=False))
    assert data["status"] == "regressed"
    assert [j["outcome"] for j in data["judgements"]][:2] == ["regressed", "regressed"]


def test_incomparable_junit_is_one_failure_with_the_reason() -> None:
    v = verdict_of(rows("a=y"), rows("a=x"))
    suite = ET.fromstring(v.to_junit()).find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    assert failure is not None and "no combination in common" in (failure.get("message") or "")
    assert "INCOMPARABLE" in v.to_markdown()


def test_the_spec_carries_the_policy_with_field_paths_in_errors() -> None:
    spec = BatchSpec.parse(
        {
            "workflow": "m:w",
            "regression": {
                "score": {"max_drop": 0.02},
                "pass_rate": {"max_drop": 0.05},
                "p95_ms": {"max_increase_pct": 20},
                "cost": {"max_increase_pct": 10},
                "alpha": 0.05,
            },
        }
    )
    assert spec.regression.score.max_drop == 0.02 and spec.regression.cost.max_increase_pct == 10
    assert BatchSpec.parse({"workflow": "m:w"}).regression == RegressionPolicy()
    with pytest.raises(SpecError, match=r"regression\.score\.max_drop: .*greater than or equal"):
        BatchSpec.parse({"workflow": "m:w", "regression": {"score": {"max_drop": -1}}})
    with pytest.raises(SpecError, match=r"regression\.alpha"):
        RegressionPolicy.parse({"alpha": 2})
    with pytest.raises(SpecError, match=r"regression\.latency"):
        RegressionPolicy.parse({"latency": {}})
