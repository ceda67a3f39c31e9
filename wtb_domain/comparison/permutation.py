"""The paired sign-flip permutation test and the Holm-Bonferroni adjustment, vectorised.

The definition (kept as plain Python in ``tests/stats_pure.py``): up to ``exact_max`` pairs,
the share of all ``2**n`` sign assignments whose ``|sum|`` reaches the observed one; beyond,
``draws`` random assignments, each the ``math.fsum`` of one entry per table of the signed
sums of 8 consecutive differences, picked by ``rng.getrandbits(width)``. This module gives the
same p-values, bit for bit: the tables are built by the same float operations (elementwise),
the picks are the same draws (:mod:`wtb_domain.comparison.stream`), and each draw's sum is
taken in numpy with a proven error bound; only a draw whose sum lies within that bound of the
threshold (practically never: the threshold sits 1e-9 relative below the observed sum) is
summed again with ``math.fsum`` to decide it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from wtb_domain.comparison.model import EXACT_TEST_MAX_PAIRS, MONTE_CARLO_DRAWS
from wtb_domain.comparison.stream import TABLE_STRIDE, FloatArray, flip_indices

TABLE_VALUES = 8  # differences per sign table
EPSILON = 2.0**-52
TINY = 2.0**-1074


def signed_sums(values: Sequence[float]) -> FloatArray:
    """All ``2**n`` signed sums, in the order (and with the rounding) of the definition.

    Entry ``i`` subtracts value ``j`` when bit ``j`` of ``i`` is set.
    """
    sums = np.zeros(1)
    for value in values:
        sums = np.concatenate((sums + value, sums - value))
    return sums


def paired_test(
    diffs: Sequence[float],
    seed: int = 0,
    draws: int = MONTE_CARLO_DRAWS,
    exact_max: int = EXACT_TEST_MAX_PAIRS,
) -> float:
    """Two-sided paired sign-flip permutation test of "mean difference = 0".

    The statistic is ``|sum(diffs)|``. Zero differences are kept (they cannot change the
    statistic but count in n).

    Args:
        diffs: Per-case differences (combination - reference).
        seed: Seed of the Monte-Carlo draws.
        draws: Number of random sign assignments when ``len(diffs) > exact_max``.
        exact_max: Up to this many pairs, all ``2**n`` sign assignments are enumerated.

    Returns:
        The exact p-value (share of assignments at least as extreme, the observed one
        included), or for larger n the Monte-Carlo estimate ``(hits + 1) / (draws + 1)``.
        1.0 when there are no pairs.
    """
    values = [float(d) for d in diffs]
    if not values:
        return 1.0
    tolerance = 1e-9 * (1.0 + math.fsum(map(abs, values)))
    threshold = abs(math.fsum(values)) - tolerance
    if len(values) <= exact_max:
        sums = signed_sums(values)
        return int(np.count_nonzero(np.abs(sums) >= threshold)) / len(sums)
    return _monte_carlo(values, threshold, draws, seed)


def _monte_carlo(values: list[float], threshold: float, draws: int, seed: int) -> float:
    widths = [min(TABLE_VALUES, len(values) - i) for i in range(0, len(values), TABLE_VALUES)]
    tables = _tables(values, len(widths))
    entries = tables.ravel()
    # Every |picked sum| is at most `largest`; any order of summing n terms errs by at most
    # (n - 1) * 2**-53 * sum(|term|) (below `error`), and fsum rounds the exact sum once more
    # (half an ulp). The margin covers both, and the rounding of the bounds, with room to spare.
    largest = float(np.abs(tables).max(axis=1).sum())
    error = len(widths) * EPSILON * largest
    margin = 2 * error + 8 * EPSILON * largest + TINY
    surely, maybe = threshold + margin, threshold - margin
    hits = 0
    for picks in flip_indices(seed, tuple(widths), draws):
        picked = np.take(entries, picks)
        approx = np.abs(picked.sum(axis=1))
        hits += int(np.count_nonzero(approx >= surely))
        unsure = np.flatnonzero((approx >= maybe) & (approx < surely))
        hits += sum(abs(math.fsum(picked[row].tolist())) >= threshold for row in unsure)
    return (hits + 1) / (draws + 1)


def _tables(values: list[float], count: int) -> FloatArray:
    """``(count, TABLE_STRIDE)``: row ``t`` the signed sums of values ``8t .. 8t + 7``."""
    full = len(values) // TABLE_VALUES
    columns = np.array(values[: full * TABLE_VALUES]).reshape(full, TABLE_VALUES)
    sums = np.zeros((full, 1))
    for column in columns.T:
        value = column[:, None]
        sums = np.concatenate((sums + value, sums - value), axis=1)
    tables = np.zeros((count, TABLE_STRIDE))
    tables[:full] = sums
    if count > full:
        rest = signed_sums(values[full * TABLE_VALUES :])
        tables[full, : len(rest)] = rest
    return tables


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjustment.

    Args:
        p_values: Raw p-values of one family of tests.

    Returns:
        Adjusted p-values in the input order; each is >= its raw value, at most 1, and the
        adjustment preserves the order of the raw p-values.

    Raises:
        ValueError: A p-value outside [0, 1].
    """
    if any(not 0 <= p <= 1 for p in p_values):
        raise ValueError(f"p-values must be in [0, 1], got {list(p_values)}")
    count = len(p_values)
    adjusted = [0.0] * count
    running = 0.0
    for position, index in enumerate(sorted(range(count), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (count - position) * p_values[index]))
        adjusted[index] = running
    return adjusted
