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

from wtb_domain.comparison.blas import one_thread
from wtb_domain.comparison.model import EXACT_TEST_MAX_PAIRS, MONTE_CARLO_DRAWS
from wtb_domain.comparison.stream import TABLE_STRIDE, FloatArray, flip_indices

TABLE_VALUES = 8  # differences per sign table
EPSILON = 2.0**-52
TINY = 2.0**-1074
BATCH_MIN = 4  # Monte-Carlo tests of one length from which a matrix product beats lookups
BATCH_ELEMENTS = 2**19  # flips (draws x pairs) per matrix product


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
    threshold = _threshold(values)
    if len(values) <= exact_max:
        sums = signed_sums(values)
        return int(np.count_nonzero(np.abs(sums) >= threshold)) / len(sums)
    return _monte_carlo(values, threshold, draws, seed)


def paired_tests(
    diff_lists: Sequence[Sequence[float]],
    seed: int = 0,
    draws: int = MONTE_CARLO_DRAWS,
    exact_max: int = EXACT_TEST_MAX_PAIRS,
) -> list[float]:
    """:func:`paired_test` of each list of differences (same seed for each), together.

    Lists of the same length share their draws; from :data:`BATCH_MIN` Monte-Carlo tests of
    one length on, their draws' sums come from one matrix product (signs times differences)
    instead of table lookups, with the same exact decisions.
    """
    values = [[float(d) for d in diffs] for diffs in diff_lists]
    p_values: dict[int, float] = {}
    by_size: dict[int, list[int]] = {}
    for index, diffs in enumerate(values):
        if len(diffs) <= exact_max or draws < 1:
            p_values[index] = paired_test(diffs, seed, draws, exact_max)
        else:
            by_size.setdefault(len(diffs), []).append(index)
    for members in by_size.values():
        if len(members) < BATCH_MIN:
            p_values.update((i, paired_test(values[i], seed, draws, exact_max)) for i in members)
        else:
            batch = _monte_carlo_batch([values[i] for i in members], draws, seed)
            p_values.update(zip(members, batch, strict=True))
    return [p_values[index] for index in range(len(values))]


def _threshold(values: list[float]) -> float:
    tolerance = 1e-9 * (1.0 + math.fsum(map(abs, values)))
    return abs(math.fsum(values)) - tolerance


def _monte_carlo_batch(rows: list[list[float]], draws: int, seed: int) -> list[float]:
    """Monte-Carlo p-values of several equally long lists, via one product per block of draws.

    A draw's signed sum is ``sum(d) - 2 * (flipped . d)``; computed so (``n`` terms, any
    order) it is within ``(2n + 11) * 2**-53 * sum(|d|)`` of the exact sum of the definition's
    table entries (which carry their own ``8 * 2**-53 * sum(|d|)``), and fsum rounds that
    once more; ``margin`` is twice that. Draws inside the margin are decided by ``fsum``.
    """
    size = len(rows[0])
    widths = tuple(min(TABLE_VALUES, size - i) for i in range(0, size, TABLE_VALUES))
    offsets = np.arange(len(widths), dtype=np.intp) * TABLE_STRIDE
    diffs = np.array(rows)
    totals = np.array([math.fsum(row) for row in rows])[:, None]
    thresholds = np.array([_threshold(row) for row in rows])[:, None]
    scales = np.array([math.fsum(map(abs, row)) for row in rows])[:, None]
    margins = (2 * size + 16) * EPSILON * scales + TINY
    surely, maybe = thresholds + margins, thresholds - margins
    hits = np.zeros(len(rows), dtype=np.int64)
    entries: dict[int, FloatArray] = {}
    step = max(1, BATCH_ELEMENTS // size)
    for block in flip_indices(seed, widths, draws):
        for start in range(0, len(block), step):
            picks = block[start : start + step]
            flips = np.unpackbits((picks - offsets).astype(np.uint8), axis=1, bitorder="little")
            with one_thread():
                flipped = diffs @ flips[:, :size].T.astype(np.float64)
            signed = np.abs(totals - 2.0 * flipped)
            hits += np.count_nonzero(signed >= surely, axis=1)
            for test, draw in zip(*np.nonzero((signed >= maybe) & (signed < surely)), strict=True):
                if test not in entries:
                    entries[test] = _tables(rows[test], len(widths)).ravel()
                picked = entries[test][picks[draw]].tolist()
                hits[test] += abs(math.fsum(picked)) >= thresholds[test, 0]
    return [(int(h) + 1) / (draws + 1) for h in hits]


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
