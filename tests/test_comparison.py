"""The comparison matrix: statistics per combination and paired tests between them."""

from __future__ import annotations

import csv
import io
import json
import random
import statistics

import pytest

from wtb_domain.comparison import (
    ComparisonMatrix,
    ResultRow,
    bootstrap_ci,
    build_matrix,
    holm,
    paired_comparisons,
    paired_test,
    per_case_means,
    percentile,
)
from wtb_domain.errors import SpecError


def make_rows(
    name: str,
    scores: dict[str, list[float]],
    duration_ms: float = 100.0,
    cost: float | None = None,
    failed: frozenset[tuple[str, int]] = frozenset(),
) -> list[ResultRow]:
    rows = []
    for case, repeats in scores.items():
        for repeat, value in enumerate(repeats):
            ok = (case, repeat) not in failed
            rows.append(
                ResultRow(
                    combination_name=name,
                    case_id=case,
                    repeat=repeat,
                    success=ok,
                    overall_score=value,
                    duration_ms=duration_ms + repeat,
                    metrics={"tokens": 10.0} | ({} if cost is None else {"cost_usd": cost}),
                    passed=ok and value >= 0.5,
                )
            )
    return rows


def case_scores(seed: int, shift: float, n_cases: int = 30) -> dict[str, list[float]]:
    rng = random.Random(seed)
    return {
        f"case-{i:02d}": [min(1.0, max(0.0, 0.4 + shift + rng.gauss(0, 0.05))) for _ in range(2)]
        for i in range(n_cases)
    }


def jitter(scores: dict[str, list[float]], size: float) -> dict[str, list[float]]:
    """The same scores, nudged up on even cases and down on odd ones (no net difference)."""
    return {
        case: [v + (size if i % 2 == 0 else -size) for v in values]
        for i, (case, values) in enumerate(scores.items())
    }


@pytest.fixture
def three_way() -> list[ResultRow]:
    base = case_scores(1, 0.0)
    return (
        make_rows("baseline", base, duration_ms=200, cost=0.01)
        + make_rows("better", case_scores(2, 0.3), duration_ms=300, cost=0.03)
        + make_rows("same", jitter(base, 0.02), duration_ms=100, cost=0.01)
    )


def test_percentile_interpolates_linearly() -> None:
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([7], 95) == 7
    with pytest.raises(ValueError):
        percentile([], 50)


def test_bootstrap_ci_contains_the_mean_and_is_deterministic_for_a_seed() -> None:
    rng = random.Random(5)
    values = [rng.random() for _ in range(40)]
    low, high = bootstrap_ci(values, seed=7)
    assert low < statistics.fmean(values) < high
    assert bootstrap_ci(values, seed=7) == (low, high)
    narrower = bootstrap_ci(values, confidence=0.5, seed=7)
    assert low < narrower[0] < narrower[1] < high
    assert bootstrap_ci([0.3]) == (0.3, 0.3)


def test_paired_test_exact_and_monte_carlo() -> None:
    assert paired_test([]) == 1.0
    assert paired_test([0.0] * 10) == 1.0
    assert paired_test([0.2] * 5) == pytest.approx(2 / 2**5)
    assert paired_test([0.1, -0.1, 0.2, -0.2]) == 1.0
    clearly_better = [0.3 + 0.01 * (i % 5) for i in range(30)]
    assert paired_test(clearly_better, seed=1) < 0.01
    rng = random.Random(9)
    noise = [rng.gauss(0, 0.1) for _ in range(40)]
    assert paired_test(noise, seed=3) == paired_test(noise, seed=3)


def test_holm_adjustment_known_values_monotone_and_not_below_raw() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    rng = random.Random(2)
    raw = [rng.random() ** 3 for _ in range(12)]
    adjusted = holm(raw)
    assert all(a >= p for a, p in zip(adjusted, raw, strict=True))
    assert all(a <= 1.0 for a in adjusted)
    order = sorted(range(len(raw)), key=raw.__getitem__)
    assert [adjusted[i] for i in order] == sorted(adjusted)
    assert holm([]) == []


def test_per_case_means_average_repeats_and_failures_score_zero() -> None:
    rows = make_rows("a", {"c1": [0.8, 0.6], "c2": [1.0, 1.0]}, failed=frozenset({("c2", 1)}))
    assert per_case_means(rows) == {"a": {"c1": pytest.approx(0.7), "c2": 0.5}}


def test_matrix_ranks_the_better_combination_first_and_flags_it(
    three_way: list[ResultRow],
) -> None:
    matrix = build_matrix(three_way, "batch-1", baseline="baseline")
    assert matrix.stats[0].name == matrix.best == "better"
    assert [s.rank for s in matrix.stats] == [1, 2, 3]
    verdicts = {c.combination: c for c in matrix.vs_baseline}
    assert verdicts["better"].verdict == "better"
    assert verdicts["better"].p_value < 0.01
    assert verdicts["better"].mean_diff == pytest.approx(0.3, abs=0.05)
    assert verdicts["same"].verdict == "no difference"
    assert [c.combination for c in matrix.vs_best] == [s.name for s in matrix.stats[1:]]
    assert all(c.verdict == "worse" for c in matrix.vs_best)


def test_identical_combinations_get_p_one() -> None:
    scores = case_scores(4, 0.0)
    rows = make_rows("a", scores) + make_rows("b", scores)
    matrix = build_matrix(rows, "batch", baseline="a")
    (comparison,) = matrix.vs_baseline
    assert comparison.p_value == pytest.approx(1.0)
    assert comparison.verdict == "no difference"


def test_stats_count_failures_costs_and_latency(three_way: list[ResultRow]) -> None:
    rows = make_rows(
        "flaky", {"c1": [1.0, 1.0], "c2": [1.0, 1.0]}, cost=0.5, failed=frozenset({("c1", 0)})
    )
    (stats,) = build_matrix(rows, "b").stats
    assert (stats.n, stats.n_failed) == (4, 1)
    assert stats.mean_score == pytest.approx(0.75)
    assert stats.pass_rate == pytest.approx(0.75)
    assert stats.total_cost == pytest.approx(2.0)
    assert stats.metric_means == {"cost_usd": 0.5, "tokens": 10.0}
    assert stats.p50_ms == 100.5
    assert stats.p95_ms == pytest.approx(101.0)
    assert stats.std_score == pytest.approx(0.5)


def test_ties_on_mean_are_broken_by_pass_rate_then_latency() -> None:
    rows = (
        make_rows("slow", {"c": [0.5]}, duration_ms=900)
        + make_rows("fast", {"c": [0.5]}, duration_ms=100)
        + make_rows("never_passes", {"c": [0.5]}, duration_ms=10)
    )
    rows = [r if r.combination_name != "never_passes" else _unpassed(r) for r in rows]
    assert [s.name for s in build_matrix(rows, "b").stats] == ["fast", "slow", "never_passes"]


def _unpassed(row: ResultRow) -> ResultRow:
    return ResultRow(**{**row.__dict__, "passed": False})


def test_single_combination_and_single_run() -> None:
    matrix = build_matrix(make_rows("only", {"c1": [0.4]}), "b", baseline="only")
    (stats,) = matrix.stats
    assert (stats.n, stats.std_score, stats.ci_low, stats.ci_high) == (1, 0.0, 0.4, 0.4)
    assert matrix.vs_best == [] and matrix.vs_baseline == []
    assert "No results" not in matrix.to_markdown()


def test_combinations_without_common_cases_show_no_difference() -> None:
    rows = make_rows("a", {"c1": [1.0], "c2": [1.0]}) + make_rows("b", {"c3": [0.0]})
    (comparison,) = build_matrix(rows, "b", baseline="b").vs_baseline
    assert (comparison.n_pairs, comparison.p_value, comparison.verdict) == (
        0,
        1.0,
        "no difference",
    )


def test_paired_comparisons_accept_pre_aggregated_case_means() -> None:
    means = {"ref": {f"c{i}": 0.2 for i in range(20)}, "new": {f"c{i}": 0.9 for i in range(20)}}
    (comparison,) = paired_comparisons(means, "ref", alpha=0.01)
    assert comparison.significant and comparison.verdict == "better"
    assert comparison.p_adjusted == comparison.p_value < 0.001


def test_unknown_baseline_is_a_spec_error_listing_known_names(
    three_way: list[ResultRow],
) -> None:
    with pytest.raises(SpecError, match="baseline: unknown combination 'basline'") as info:
        build_matrix(three_way, "b", baseline="basline")
    for name in ("baseline", "better", "same"):
        assert repr(name) in str(info.value)


def test_matrix_is_deterministic_for_a_seed(three_way: list[ResultRow]) -> None:
    first = build_matrix(three_way, "b", baseline="baseline", seed=11)
    again = build_matrix(list(reversed(three_way)), "b", baseline="baseline", seed=11)
    assert first == again


def _matrix(rows: list[ResultRow]) -> ComparisonMatrix:
    return build_matrix(rows, "batch-7", baseline="baseline")


def test_to_json_and_to_csv_round_trip_the_key_numbers(three_way: list[ResultRow]) -> None:
    matrix = _matrix(three_way)
    data = json.loads(matrix.to_json())
    assert data["batch_id"] == "batch-7" and data["best"] == "better"
    for stats, loaded in zip(matrix.stats, data["stats"], strict=True):
        assert (loaded["name"], loaded["rank"], loaded["mean_score"]) == (
            stats.name,
            stats.rank,
            stats.mean_score,
        )
    assert data["vs_baseline"][0]["p_adjusted"] == matrix.vs_baseline[0].p_adjusted
    table = list(csv.DictReader(io.StringIO(matrix.to_csv())))
    assert [row["name"] for row in table] == ["better", "same", "baseline"]
    for stats, row in zip(matrix.stats, table, strict=True):
        assert float(row["mean"]) == stats.mean_score
        assert float(row["ci_low"]) == stats.ci_low and float(row["ci_high"]) == stats.ci_high
        assert float(row["total_cost"]) == pytest.approx(stats.total_cost)
    assert table[0]["p_vs_best_adj"] == "" and table[2]["p_vs_baseline_adj"] == ""
    assert float(table[1]["p_vs_baseline_adj"]) == matrix.vs_baseline[1].p_adjusted


def test_to_markdown_has_table_and_baseline_verdicts(three_way: list[ResultRow]) -> None:
    text = _matrix(three_way).to_markdown()
    lines = text.splitlines()
    rows = [line for line in lines if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert rows[0].startswith("| 1 | better |")
    best = build_matrix(three_way, "b").stats[0]
    assert f"{best.mean_score:.3f}" in rows[0]
    assert any(line.startswith("- Significantly better: better (") for line in lines)
    assert "- Significantly worse: none" in lines
    assert "- No significant difference: same" in lines
