"""The comparison matrix's statistics: numpy implementation against the pure-Python definition.

Run from the repository root::

    python bench/stats.py            # writes the "stats" section of bench/results.md
    python bench/stats.py --quick    # fewer repeats, no results.md

"The statistics" are what ``wtb matrix`` computes after the SQL aggregates: the bootstrap
confidence interval of every combination (2,000 resamples of its per-case means) and the
paired sign-flip tests of every other combination against the best one and, with a
baseline, against the baseline (10,000 Monte-Carlo draws each, Holm-adjusted). Measured on
per-case means shaped like a batch (combinations x cases), for:

* ``numpy, cold``: the first call in a fresh process (``wtb matrix`` is one): the random
  draws are made, then cached (``wtb_domain.comparison.stream``);
* ``numpy, warm``: later calls (a long-lived process, or the regression gate after a matrix);
* ``pure Python``: the definition kept in ``tests/stats_pure.py`` (the code before numpy),
  once, up to 500 cases; the run checks that both give the same numbers, bit for bit.

Also ``build_matrix_from_inputs`` (statistics plus assembling the matrix) [info].
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import (  # noqa: E402
    fmt_ms,
    machine_info,
    machine_line,
    markdown_table,
    print_table,
    update_results_section,
    verdict,
)
from tests import stats_pure  # noqa: E402
from wtb_domain.adapters.sql.aggregates import (  # noqa: E402
    CombinationAggregate,
    MatrixInputs,
    build_matrix_from_inputs,
)
from wtb_domain.comparison import bootstrap_cis, holm, paired_tests  # noqa: E402
from wtb_domain.comparison.stream import _cached_counts, _cached_flips  # noqa: E402

SECTION, TITLE = "stats", "Comparison statistics (bootstrap CIs, paired tests)"
TARGET_S = 0.100  # 20 combinations x 500 cases
PURE_MAX_CASES = 500  # the pure-Python definition takes minutes beyond
Means = dict[str, dict[str, float]]

# combinations, cases, score kind, with a baseline
SHAPES = [
    (20, 500, "continuous", True),
    (20, 500, "continuous", False),
    (20, 500, "ties (steps of 0.25)", True),
    (5, 100, "continuous", True),
    (20, 2000, "continuous", True),
]


def case_means(combos: int, cases: int, kind: str, seed: int = 1) -> Means:
    rng = random.Random(seed)
    out: Means = {}
    for c in range(combos):
        shift = 0.005 * c
        values = [min(1.0, max(0.0, 0.4 + shift + 0.3 * rng.random())) for _ in range(cases)]
        if kind.startswith("ties"):
            values = [round(v * 4) / 4 for v in values]
        out[f"combo-{c:02d}"] = {f"case-{i:04d}": v for i, v in enumerate(values)}
    return out


def workload(
    means: Means,
    baseline: str | None,
    cis: Callable[[list[list[float]]], list[tuple[float, float]]],
    tests: Callable[[list[list[float]]], list[float]],
) -> tuple[list[tuple[float, float]], list[list[float]]]:
    """CIs of every combination, then Holm-adjusted p-values vs the best and vs the baseline."""
    intervals = cis([list(cases.values()) for cases in means.values()])
    best = max(means, key=lambda name: statistics.fmean(means[name].values()))
    references = [best] + ([baseline] if baseline and baseline != best else [])
    families = [
        [
            [cases[k] - means[reference][k] for k in sorted(means[reference])]
            for name, cases in means.items()
            if name != reference
        ]
        for reference in references
    ]
    p_values = tests([diffs for family in families for diffs in family])
    adjusted = []
    for family in families:
        adjusted.append(holm(p_values[: len(family)]))
        p_values = p_values[len(family) :]
    return intervals, adjusted


def fast(means: Means, baseline: str | None) -> object:
    return workload(means, baseline, bootstrap_cis, paired_tests)


def pure(means: Means, baseline: str | None) -> object:
    return workload(
        means,
        baseline,
        lambda samples: [stats_pure.bootstrap_ci(s) for s in samples],
        lambda diff_lists: [stats_pure.paired_test(d) for d in diff_lists],
    )


def clear_caches() -> None:
    _cached_counts.cache_clear()
    _cached_flips.cache_clear()


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call; CPU time is this process's, whatever the load."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _append(out: list[object], fn: Callable[[], object]) -> None:
    out.append(fn())


def median_of(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)


def inputs_of(means: Mapping[str, Mapping[str, float]]) -> MatrixInputs:
    combos = {
        name: CombinationAggregate(
            name=name,
            n=len(cases),
            n_failed=0,
            n_passed=len(cases),
            mean_run_score=statistics.fmean(cases.values()),
            std_score=statistics.stdev(cases.values()),
            p50_ms=100.0,
            p95_ms=200.0,
            total_cost=0.0,
            metric_means={},
        )
        for name, cases in means.items()
    }
    return MatrixInputs("bench", combos, {k: dict(v) for k, v in means.items()})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats; no results.md")
    args = ap.parse_args(argv)
    repeats = 3 if args.quick else 15
    info = machine_info(["numpy"])
    fast(case_means(3, 20, "continuous"), None)  # imports and first calls, not the draws timed
    rows: list[list[str]] = []
    headline = (0.0, 0.0)
    for combos, cases, kind, with_baseline in SHAPES:
        means = case_means(combos, cases, kind)
        baseline = "combo-03" if with_baseline else None
        clear_caches()
        cold, cold_cpu = timed(partial(fast, means, baseline))
        warm, warm_cpu = median_of([timed(partial(fast, means, baseline)) for _ in range(repeats)])
        expected: list[object] = []
        slow, slow_cpu = (math.nan, math.nan)
        if cases <= PURE_MAX_CASES:
            slow, slow_cpu = timed(partial(_append, expected, partial(pure, means, baseline)))
            if fast(means, baseline) != expected[0]:
                raise SystemExit(f"numpy and pure-Python statistics differ on {combos}x{cases}")
        build = partial(build_matrix_from_inputs, inputs_of(means), baseline=baseline)
        matrix, _ = median_of([timed(build) for _ in range(repeats)])
        tests = (combos - 1) * (2 if with_baseline else 1)
        is_target = (combos, cases, with_baseline, kind) == (20, 500, True, "continuous")
        if is_target:
            headline = (cold, cold_cpu)
        rows.append(
            [
                f"{combos} x {cases}",
                kind,
                f"{combos} CIs + {tests} tests",
                f"{fmt_ms(cold, 1)} / {fmt_ms(cold_cpu, 1)}",
                f"{fmt_ms(warm, 1)} / {fmt_ms(warm_cpu, 1)}",
                "-" if math.isnan(slow) else f"{fmt_ms(slow, 0)} / {fmt_ms(slow_cpu, 0)}",
                "-" if math.isnan(slow) else f"{slow_cpu / cold_cpu:.0f}x",
                fmt_ms(matrix, 1),
                verdict(cold_cpu < TARGET_S) if is_target else "",
            ]
        )
        print(f"  {combos}x{cases} {kind}: cold {cold * 1e3:.1f} ms wall, {cold_cpu * 1e3:.1f} CPU")
    headers = [
        "combinations x cases",
        "scores",
        "statistics",
        "numpy, cold: wall / CPU ms",
        "numpy, warm: wall / CPU ms",
        "pure Python: wall / CPU ms",
        "speed-up (CPU, cold)",
        "build_matrix_from_inputs, warm wall ms [info]",
        f"target: cold CPU < {TARGET_S * 1e3:.0f} ms",
    ]
    print_table(TITLE, headers, rows)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    body = "\n\n".join(
        [
            f"Machine: {machine_line(info)}; load average at the end: {load}.",
            markdown_table(headers, rows),
            "Same numbers bit for bit in every row (checked by the run, and by "
            "`tests/test_stats_reference.py`). Cold = first call in the process (the draws are "
            "made, then cached); warm = median of later calls. The draws depend only on "
            "(seed, cases, resamples / draws), so one matrix makes them once for all its "
            "combinations and comparisons. The machine is shared by other jobs: wall time "
            "includes waiting for a CPU, so the target is judged on this process's CPU time "
            "(wall time on an idle machine is about the CPU time); the pure-Python column, "
            "measured in the same run, shows how loaded the machine was (2.2 s when idle).",
        ]
    )
    if not args.quick:
        print(f"wrote {update_results_section(SECTION, TITLE, body)}")
    wall, cpu = headline
    print(f"20 x 500 with baseline, cold: {wall * 1e3:.1f} ms wall, {cpu * 1e3:.1f} ms CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
