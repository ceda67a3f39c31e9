"""The numpy statistics give the same numbers as the pure-Python ones did, bit for bit.

Two references: ``tests/data/stats_reference.json``, recorded from the pure-Python code
before it was vectorised (whole matrices and direct calls, see ``tests/stats_cases.py``),
and that code itself, frozen in ``tests/stats_pure.py``, compared on generated inputs.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import stats_cases, stats_pure
from wtb_domain.adapters.sql.aggregates import build_matrix_from_inputs, inputs_from_rows
from wtb_domain.comparison import (
    blas,
    bootstrap_ci,
    bootstrap_cis,
    build_matrix,
    paired_comparisons,
    paired_test,
    paired_tests,
    permutation,
    stream,
)
from wtb_domain.comparison import resampling as bootstrap_module

REFERENCE: dict[str, Any] = json.loads(stats_cases.REFERENCE_FILE.read_text())
CASES = {case["name"]: case for case in stats_cases.MATRIX_CASES}


@pytest.fixture(autouse=True)
def _fresh_draws() -> None:
    """Each test makes its own draws (a cached array from another test proves nothing)."""
    stream._cached_counts.cache_clear()
    stream._cached_flips.cache_clear()


def _matrix(case: dict[str, Any]) -> dict[str, Any]:
    return build_matrix(
        stats_cases.matrix_rows(case),
        case["name"],
        baseline=stats_cases.baseline_of(case),
        seed=case.get("matrix_seed", 0),
        resamples=case.get("resamples", 2000),
    ).to_dict()


@pytest.mark.parametrize("name", list(CASES))
def test_matrix_equals_the_recorded_pure_python_matrix(name: str) -> None:
    assert _matrix(CASES[name]) == REFERENCE["matrices"][name]


@pytest.mark.parametrize("name", ["mc-17", "uneven-100", "wide-range-33", "ties-20x500"])
def test_matrix_from_sql_aggregates_has_the_recorded_intervals_and_p_values(name: str) -> None:
    case = CASES[name]
    inputs = inputs_from_rows(name, stats_cases.matrix_rows(case))
    got = build_matrix_from_inputs(
        inputs,
        baseline=stats_cases.baseline_of(case),
        seed=case.get("matrix_seed", 0),
        resamples=case.get("resamples", 2000),
    ).to_dict()
    want = REFERENCE["matrices"][name]
    keys = ("name", "rank", "ci_low", "ci_high")
    assert [[s[k] for k in keys] for s in got["stats"]] == [
        [s[k] for k in keys] for s in want["stats"]
    ]
    for family in ("vs_best", "vs_baseline"):
        assert got[family] == want[family]


def test_bootstrap_ci_equals_the_recorded_calls() -> None:
    for seed, size, kind, call_seed, resamples, confidence, expected in REFERENCE["bootstrap_ci"]:
        sample = stats_cases.sample(seed, size, kind)
        got = bootstrap_ci(sample, confidence, resamples, call_seed)
        assert list(got) == expected, (seed, size, kind, call_seed, resamples, confidence)


def test_paired_test_equals_the_recorded_calls() -> None:
    for seed, size, kind, call_seed, draws, expected in REFERENCE["paired_test"]:
        got = paired_test(stats_cases.sample(seed, size, kind), seed=call_seed, draws=draws)
        assert got == expected, (seed, size, kind, call_seed, draws)


# Finite floats of every kind the statistics may meet: scores, tiny and huge magnitudes,
# subnormals, signed zeros, and repeated values (ties).
FLOATS = st.one_of(
    st.floats(-2.0, 2.0, allow_nan=False),
    st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0, 1e-300, 5e-324, -3e-310, 2.0**-60]),
)
SAMPLES = st.lists(FLOATS, min_size=1, max_size=40)
SEEDS = st.integers(-(2**70), 2**70)
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(SAMPLES, st.integers(1, 40), SEEDS, st.floats(0.01, 0.99))
def test_bootstrap_ci_equals_the_pure_python_definition(
    sample: list[float], resamples: int, seed: int, confidence: float
) -> None:
    try:
        want = stats_pure.bootstrap_ci(sample, confidence, resamples, seed)
    except OverflowError:  # fsum of sums past the float range: the definition fails too
        with pytest.raises(OverflowError):
            bootstrap_ci(sample, confidence, resamples, seed)
        return
    assert bootstrap_ci(sample, confidence, resamples, seed) == want


@SLOW
@given(st.lists(st.floats(-2.0, 2.0, allow_nan=False), max_size=40), SEEDS, st.integers(0, 300))
def test_paired_test_equals_the_pure_python_definition(
    diffs: list[float], seed: int, draws: int
) -> None:
    for exact_max in (0, 5, 16):
        want = stats_pure.paired_test(diffs, seed, draws, exact_max)
        assert paired_test(diffs, seed, draws, exact_max) == want


@SLOW
@given(st.lists(st.sampled_from([-0.5, -0.25, 0.0, 0.25, 0.5]), min_size=9, max_size=40), SEEDS)
def test_paired_test_on_ties_equals_the_pure_python_definition(
    diffs: list[float], seed: int
) -> None:
    """Discrete differences: many draws reach the observed sum exactly (the threshold's edge)."""
    assert paired_test(diffs, seed, 300, 0) == stats_pure.paired_test(diffs, seed, 300, 0)


def test_draws_streamed_in_blocks_equal_the_cached_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shapes too big for the cache are drawn block by block: same stream, same results."""
    sample = stats_cases.sample(3, 37, "cont")
    want_ci = stats_pure.bootstrap_ci(sample, 0.9, 50, 11)
    want_p = stats_pure.paired_test(sample, 11, 500)
    monkeypatch.setattr(stream, "BLOCK_ELEMENTS", 100)
    assert bootstrap_ci(sample, 0.9, 50, 11) == want_ci
    assert paired_test(sample, 11, 500) == want_p
    assert not stream._cached_counts.cache_info().currsize
    assert not stream._cached_flips.cache_info().currsize


def test_draws_near_the_threshold_are_decided_by_fsum(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a huge error margin every draw is 'unsure' and summed exactly: same p-value."""
    decided: list[int] = []
    real_fsum = math.fsum

    def counting_fsum(values: Any) -> float:
        decided.append(1)
        return real_fsum(values)

    diffs = stats_cases.sample(5, 60, "steps")
    want = stats_pure.paired_test(diffs, 2, 400)
    monkeypatch.setattr(permutation, "EPSILON", 1.0)
    monkeypatch.setattr(permutation.math, "fsum", counting_fsum)
    assert paired_test(diffs, 2, 400) == want
    assert len(decided) >= 400


@pytest.mark.parametrize(
    "sample",
    [
        [1e300, 1.0, -2.5],  # past MAX_EXPONENT: limbs made in Python
        [1.0, 1e-20, 0.3, 7e-15],  # a dynamic range needing 3+ limbs
        [0.1, 0.2, 0.30000000000000004, 0.1],  # two limbs, rounding-sensitive sums
        [5e-324, -5e-324, 1e-310, 0.0],  # subnormals
    ],
)
def test_bootstrap_limb_paths_equal_the_definition(sample: list[float]) -> None:
    assert bootstrap_ci(sample, 0.95, 300, 4) == stats_pure.bootstrap_ci(sample, 0.95, 300, 4)


def test_limb_paths_are_the_ones_named() -> None:
    bits = 53 - (4).bit_length()
    assert bootstrap_module._split([0.1, 0.2, 0.3, 0.7], bits).fast
    assert bootstrap_module._split([0.1, 0.2, 0.3, 0.7], bits).limbs.shape[1] == 2
    assert bootstrap_module._split([1.0, 1e-20, 0.3, 7e-15], bits).limbs.shape[1] >= 3
    assert not bootstrap_module._split([1e300, 1.0, -2.5], bits).fast


def test_bootstrap_cis_equal_one_call_per_sample() -> None:
    samples = [stats_cases.sample(s, size, "cont") for s, size in enumerate([30, 1, 30, 7, 30])]
    samples.append([0.4] * 9)
    assert bootstrap_cis(samples, 0.9, 200, 3) == [bootstrap_ci(s, 0.9, 200, 3) for s in samples]


def test_paired_comparisons_equal_the_definition_for_uneven_cases() -> None:
    means = {
        "a": {f"c{i}": 0.5 + 0.01 * (i % 7) for i in range(40)},
        "b": {f"c{i}": 0.52 + 0.01 * (i % 5) for i in range(0, 40, 2)},
        "ref": {f"c{i}": 0.5 for i in range(35)},
    }
    got = {c.combination: c.p_value for c in paired_comparisons(means, "ref", seed=9)}
    for name in ("a", "b"):
        common = sorted(means[name].keys() & means["ref"].keys())
        diffs = [means[name][k] - means["ref"][k] for k in common]
        assert got[name] == stats_pure.paired_test(diffs, seed=9)


def _family(size: int, count: int, kind: str) -> list[list[float]]:
    return [stats_cases.sample(100 + i, size, kind) for i in range(count)]


@pytest.mark.parametrize(("size", "kind"), [(17, "cont"), (64, "steps"), (203, "binary")])
def test_paired_tests_in_one_product_equal_the_definition(size: int, kind: str) -> None:
    """From BATCH_MIN tests of one length on, the sums come from a matrix product."""
    diff_lists = [*_family(size, permutation.BATCH_MIN + 2, kind), [], [0.1] * 5]
    want = [stats_pure.paired_test(d, 6, 700) for d in diff_lists]
    assert paired_tests(diff_lists, seed=6, draws=700) == want


def test_paired_tests_decide_near_draws_by_fsum(monkeypatch: pytest.MonkeyPatch) -> None:
    diff_lists = _family(40, permutation.BATCH_MIN, "steps")
    want = [stats_pure.paired_test(d, 1, 300) for d in diff_lists]
    monkeypatch.setattr(permutation, "EPSILON", 1.0)
    monkeypatch.setattr(permutation, "BATCH_ELEMENTS", 40 * 7)
    monkeypatch.setattr(stream, "BLOCK_ELEMENTS", 5 * 50)
    assert paired_tests(diff_lists, seed=1, draws=300) == want


@SLOW
@given(
    st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=17, max_size=30),
    st.integers(4, 6),
    SEEDS,
)
def test_paired_tests_equal_the_definition_on_generated_families(
    base: list[float], count: int, seed: int
) -> None:
    diff_lists = [[v * (1 + k) - 0.01 * k for v in base] for k in range(count)]
    want = [stats_pure.paired_test(d, seed, 200) for d in diff_lists]
    assert paired_tests(diff_lists, seed=seed, draws=200) == want


def test_one_blas_thread_is_restored_after_the_block() -> None:
    setter = blas._set_local_threads()
    if setter is None:  # numpy without its bundled OpenBLAS: nothing to set
        with blas.one_thread():
            pass
        return
    before = setter(3)
    with blas.one_thread():
        assert setter(1) == 1
    assert setter(before) == 3
