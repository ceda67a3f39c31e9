"""The pure-Python statistics as they were before vectorising (commit b9d75cd), frozen.

``tests/test_stats_reference.py`` checks the numpy implementation in
``wtb_domain.comparison`` against these on generated inputs (exact equality), in addition to
the outputs recorded in ``tests/data/stats_reference.json``. Do not "fix" or speed up this
file: it is the definition the fast code must reproduce.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence


def percentile(values: Iterable[float], q: float) -> float:
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bootstrap_ci(
    values: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    sample = [float(v) for v in values]
    if not sample:
        raise ValueError("bootstrap_ci of no values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if len(sample) == 1 or min(sample) == max(sample):
        return sample[0], sample[0]
    rng = random.Random(seed)
    size = len(sample)
    means = [math.fsum(rng.choices(sample, k=size)) / size for _ in range(resamples)]
    tail = (1 - confidence) / 2 * 100
    return percentile(means, tail), percentile(means, 100 - tail)


def _signed_sums(values: Sequence[float]) -> list[float]:
    sums = [0.0]
    for value in values:
        sums = [s + value for s in sums] + [s - value for s in sums]
    return sums


def paired_test(
    diffs: Sequence[float], seed: int = 0, draws: int = 10_000, exact_max: int = 16
) -> float:
    values = [float(d) for d in diffs]
    if not values:
        return 1.0
    tolerance = 1e-9 * (1.0 + math.fsum(abs(v) for v in values))
    threshold = abs(math.fsum(values)) - tolerance
    if len(values) <= exact_max:
        sums = _signed_sums(values)
        return sum(1 for s in sums if abs(s) >= threshold) / len(sums)
    return _monte_carlo(values, threshold, draws, seed)


def _monte_carlo(values: Sequence[float], threshold: float, draws: int, seed: int) -> float:
    rng = random.Random(seed)
    tables = [_signed_sums(values[i : i + 8]) for i in range(0, len(values), 8)]
    widths = [len(table).bit_length() - 1 for table in tables]
    hits = 0
    for _ in range(draws):
        total = math.fsum(t[rng.getrandbits(w)] for t, w in zip(tables, widths, strict=True))
        hits += abs(total) >= threshold
    return (hits + 1) / (draws + 1)
