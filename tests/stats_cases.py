"""Fixed inputs for the statistics tests, and the recorder of ``tests/data/stats_reference.json``.

The reference file holds what the pure-Python statistics (before they were vectorised; commit
b9d75cd of ``wtb_domain/comparison.py``) returned for the inputs below: whole comparison
matrices (2..20 combinations, 1..500 cases, ties, all-equal scores, one case, failed runs,
uneven case sets, negative scores and a wide dynamic range) and direct calls of
``bootstrap_ci`` and ``paired_test``. ``tests/test_stats_reference.py`` checks that the
current code returns exactly the same numbers.

Inputs are built from ``random.Random(seed).random()`` only, whose sequence Python guarantees
across versions. Recording again (``python -m tests.stats_cases``) overwrites the file with
what the *current* code returns: do it only to add a case, from an implementation verified
against the old file.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from wtb_domain.comparison import ResultRow

REFERENCE_FILE = Path(__file__).resolve().parent / "data" / "stats_reference.json"

# name, combinations, cases, repeats, score kind, seed, baseline index (or None), resamples
MATRIX_CASES: list[dict[str, Any]] = [
    {"name": "one-case", "combos": 2, "cases": 1, "repeats": 1, "kind": "cont", "seed": 1},
    {"name": "two-cases", "combos": 2, "cases": 2, "repeats": 2, "kind": "cont", "seed": 2},
    {"name": "ties-5", "combos": 3, "cases": 5, "repeats": 2, "kind": "steps", "seed": 3},
    {"name": "all-equal", "combos": 3, "cases": 12, "repeats": 2, "kind": "const", "seed": 4},
    {"name": "exact-16", "combos": 4, "cases": 16, "repeats": 1, "kind": "cont", "seed": 5},
    {"name": "mc-17", "combos": 5, "cases": 17, "repeats": 3, "kind": "cont", "seed": 6},
    {"name": "mc-24", "combos": 3, "cases": 24, "repeats": 1, "kind": "binary", "seed": 7},
    {
        "name": "uneven-100",
        "combos": 10,
        "cases": 100,
        "repeats": 2,
        "kind": "cont",
        "seed": 8,
        "drop": True,
        "baseline": 3,
    },
    {"name": "negative-40", "combos": 4, "cases": 40, "repeats": 1, "kind": "neg", "seed": 9},
    {"name": "wide-range-33", "combos": 3, "cases": 33, "repeats": 1, "kind": "wide", "seed": 10},
    {
        "name": "ties-20x500",
        "combos": 20,
        "cases": 500,
        "repeats": 1,
        "kind": "steps",
        "seed": 11,
        "baseline": 7,
    },
    {
        "name": "cont-20x500",
        "combos": 20,
        "cases": 500,
        "repeats": 1,
        "kind": "cont",
        "seed": 12,
        "baseline": 0,
        "matrix_seed": 42,
    },
    {
        "name": "small-resamples",
        "combos": 6,
        "cases": 30,
        "repeats": 2,
        "kind": "cont",
        "seed": 13,
        "resamples": 3,
    },
]


def _score(kind: str, rng: random.Random, combo: int) -> float:
    u = rng.random()
    if kind == "cont":
        return min(1.0, max(0.0, 0.3 + 0.02 * combo + 0.4 * u))
    if kind == "steps":
        return round(u * 4 + 0.01 * combo) / 4
    if kind == "binary":
        return 1.0 if u < 0.3 + 0.1 * combo else 0.0
    if kind == "const":
        return 0.7
    if kind == "neg":
        return (u - 0.5) * 3 - 0.1 * combo
    if kind == "wide":
        return u * 10.0 ** -(int(u * 1000) % 15) + 1e-3 * combo
    raise ValueError(kind)


def matrix_rows(case: dict[str, Any]) -> list[ResultRow]:
    """The result rows of one entry of :data:`MATRIX_CASES`."""
    rng = random.Random(case["seed"])
    rows = []
    for c in range(case["combos"]):
        for i in range(case["cases"]):
            if case.get("drop") and rng.random() < 0.1:
                continue
            for r in range(case["repeats"]):
                score = _score(case["kind"], rng, c)
                failed = rng.random() < 0.03
                rows.append(
                    ResultRow(
                        combination_name=f"combo-{c:02d}",
                        case_id=f"case-{i:03d}",
                        repeat=r,
                        success=not failed,
                        overall_score=score,
                        duration_ms=round(100 + 900 * rng.random(), 3),
                        metrics={"cost_usd": round(rng.random() / 100, 6)},
                        passed=score >= 0.5,
                    )
                )
    return rows


def baseline_of(case: dict[str, Any]) -> str | None:
    index = case.get("baseline")
    return None if index is None else f"combo-{index:02d}"


def sample(seed: int, size: int, kind: str) -> list[float]:
    rng = random.Random(seed)
    return [_score(kind, rng, 0) - (0.5 if kind != "neg" else 0.0) for _ in range(size)]


# Direct calls: (seed of the sample, size, kind, call seed, resamples or draws, confidence)
BOOTSTRAP_CALLS = [
    (s, size, kind, call_seed, resamples, confidence)
    for s, (size, kind) in enumerate(
        [
            *[(1, "cont"), (2, "cont"), (3, "steps"), (10, "binary"), (50, "cont")],
            *[(500, "steps"), (7, "const"), (64, "neg"), (120, "wide"), (333, "cont")],
        ]
    )
    for call_seed, resamples, confidence in [(0, 2000, 0.95), (7, 999, 0.9), (123456789, 5, 0.5)]
]
PAIRED_CALLS = [
    (s, size, kind, call_seed, draws)
    for s, (size, kind) in enumerate(
        [
            *[(0, "cont"), (1, "cont"), (5, "steps"), (16, "cont"), (17, "cont"), (23, "binary")],
            *[(24, "steps"), (100, "neg"), (500, "cont"), (500, "steps"), (64, "wide")],
            (9, "const"),
        ]
    )
    for call_seed, draws in [(0, 10_000), (3, 777), (2**40 + 5, 1)]
]


def record() -> dict[str, Any]:
    from wtb_domain.comparison import bootstrap_ci, build_matrix, paired_test

    matrices = {}
    for case in MATRIX_CASES:
        matrix = build_matrix(
            matrix_rows(case),
            case["name"],
            baseline=baseline_of(case),
            seed=case.get("matrix_seed", 0),
            resamples=case.get("resamples", 2000),
        )
        matrices[case["name"]] = matrix.to_dict()
    bootstraps = [
        [*call, list(bootstrap_ci(sample(s, size, kind), confidence, resamples, call_seed))]
        for call in BOOTSTRAP_CALLS
        for s, size, kind, call_seed, resamples, confidence in [call]
    ]
    paired = [
        [*call, paired_test(sample(s, size, kind), seed=call_seed, draws=draws)]
        for call in PAIRED_CALLS
        for s, size, kind, call_seed, draws in [call]
    ]
    return {"matrices": matrices, "bootstrap_ci": bootstraps, "paired_test": paired}


if __name__ == "__main__":
    REFERENCE_FILE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE_FILE.write_text(json.dumps(record(), indent=1, allow_nan=False) + "\n")
    sys.stdout.write(f"wrote {REFERENCE_FILE}\n")
