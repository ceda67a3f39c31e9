"""Percentiles and percentile-bootstrap confidence intervals of the mean, vectorised.

The definition (kept as plain Python in ``tests/stats_pure.py``): for each of ``resamples``
resamples ``rng.choices(sample, k=n)`` of ``rng = random.Random(seed)``, the mean
``math.fsum(resample) / n``; the interval is the type-7 percentiles of those means at
``(1 - confidence) / 2`` and its complement. This module gives the same numbers, bit for bit:

* the resamples are the same draws (:mod:`wtb_domain.comparison.stream`), as a matrix of how
  often each value is drawn per resample, shared by every sample of the same size;
* ``fsum`` is the correctly rounded exact sum, so each value is split into integer *limbs*
  (``value = sum(limb_k * 2**(E + k * bits))``, ``bits`` small enough that no partial sum of a
  limb column exceeds 2**53): the counts-times-limbs products (one matrix product for all
  samples) are then exact, and two limbs recombine with a single, correctly rounded float
  addition; more limbs (a dynamic range past ~2**88) recombine in Python integers, exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from wtb_domain.comparison.blas import one_thread
from wtb_domain.comparison.model import DEFAULT_RESAMPLES
from wtb_domain.comparison.stream import FloatArray, resample_counts

# Past this exponent (values up to 2**MAX_EXPONENT) limbs are made and combined in Python.
MAX_EXPONENT = 960


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (``q`` in 0..100) by linear interpolation between closest ranks.

    This is the common "type 7" definition (numpy's default): position ``(n - 1) * q / 100``
    in the sorted values.

    Raises:
        ValueError: No values, or ``q`` outside 0..100.
    """
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    return interpolate(ordered, q)


def interpolate(ordered: Sequence[float] | FloatArray, q: float) -> float:
    """:func:`percentile` of values already sorted (a list or a 1-d array)."""
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    below, above = float(ordered[low]), float(ordered[high])
    return below + (above - below) * (position - low)


def bootstrap_ci(
    values: Sequence[float],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean.

    Args:
        values: The sample (e.g. per-case mean scores).
        confidence: Coverage of the interval, strictly between 0 and 1.
        resamples: Number of bootstrap resamples.
        seed: Seed of the resampling; the same inputs and seed give the same interval.

    Returns:
        ``(low, high)``; ``(v, v)`` for a single value.

    Raises:
        ValueError: No values, or an invalid confidence or resample count.
    """
    return bootstrap_cis([values], confidence, resamples, seed)[0]


def bootstrap_cis(
    samples: Sequence[Sequence[float]],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> list[tuple[float, float]]:
    """:func:`bootstrap_ci` of each sample (same seed for each), computed together.

    Samples of the same size share their resamples' draws and one matrix product, which is
    what makes the intervals of a whole comparison matrix cheap.
    """
    floats = [[float(v) for v in values] for values in samples]
    if any(not sample for sample in floats):
        raise ValueError("bootstrap_ci of no values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    intervals: dict[int, tuple[float, float]] = {}
    by_size: dict[int, list[int]] = {}
    for index, sample in enumerate(floats):
        if len(sample) == 1 or min(sample) == max(sample):
            intervals[index] = (sample[0], sample[0])
        else:
            by_size.setdefault(len(sample), []).append(index)
    tail = (1 - confidence) / 2 * 100
    for size, members in by_size.items():
        means = resample_means([floats[i] for i in members], size, resamples, seed)
        means.sort(axis=0)
        for column, index in enumerate(members):
            ordered = means[:, column]
            intervals[index] = (interpolate(ordered, tail), interpolate(ordered, 100 - tail))
    return [intervals[index] for index in range(len(floats))]


def resample_means(
    samples: Sequence[list[float]], size: int, resamples: int, seed: int
) -> FloatArray:
    """``(resamples, len(samples))``: ``math.fsum(resample) / size`` of each sample's resamples."""
    bits = 53 - size.bit_length()
    splits = [_split(sample, bits) for sample in samples]
    limbs = np.concatenate([split.limbs for split in splits], axis=1)
    starts = np.cumsum([0] + [split.limbs.shape[1] for split in splits])
    blocks = []
    for counts in resample_counts(seed, size, resamples):
        with one_thread():
            sums = counts @ limbs
        blocks.append(
            np.column_stack(
                [
                    split.total(sums[:, start:stop], bits)
                    for split, start, stop in zip(splits, starts[:-1], starts[1:], strict=True)
                ]
            )
        )
    means: FloatArray = np.concatenate(blocks) / float(size)
    return means


@dataclass(frozen=True)
class _Split:
    """Values as ``sum(limbs[:, k] * 2**(exponent + k * bits))``, limbs exact integers."""

    limbs: FloatArray
    exponent: int
    fast: bool

    def total(self, sums: FloatArray, bits: int) -> FloatArray:
        """The correctly rounded value of each row of limb sums."""
        if self.fast and sums.shape[1] == 1:
            result: FloatArray = np.ldexp(sums[:, 0], self.exponent)
            return result
        if self.fast and sums.shape[1] == 2:
            high = np.ldexp(sums[:, 1], self.exponent + bits)
            result = high + np.ldexp(sums[:, 0], self.exponent)
            return result
        exact = [
            sum(int(limb) << (k * bits) for k, limb in enumerate(row)) for row in sums.tolist()
        ]
        if self.exponent >= 0:
            return np.array([float(t << self.exponent) for t in exact])
        scale = 1 << -self.exponent
        return np.array([t / scale for t in exact])


def _split(sample: list[float], bits: int) -> _Split:
    values = np.array(sample)
    magnitudes = np.abs(values)
    nonzero = magnitudes[magnitudes > 0]
    mantissas, exponents = np.frexp(nonzero)
    integers = np.ldexp(mantissas, 53).astype(np.int64)
    trailing = np.frexp((integers & -integers).astype(np.float64))[1] - 1
    lowest = int((exponents - 53 + trailing).min())
    top = int(exponents.max())
    if top > MAX_EXPONENT or top - lowest > MAX_EXPONENT:
        return _split_exactly(sample, bits)
    count = max(1, -(-(top - lowest) // bits))
    rest = np.ldexp(magnitudes, -lowest)
    columns = []
    for _ in range(count - 1):
        higher = np.floor(np.ldexp(rest, -bits))
        columns.append(rest - np.ldexp(higher, bits))
        rest = higher
    columns.append(rest)
    return _Split(np.sign(values)[:, None] * np.column_stack(columns), lowest, fast=True)


def _split_exactly(sample: list[float], bits: int) -> _Split:
    ratios = [value.as_integer_ratio() for value in sample]
    shift = max(denominator.bit_length() - 1 for _, denominator in ratios)
    integers = [n << (shift - d.bit_length() + 1) for n, d in ratios]
    count = max(1, -(-max(abs(i) for i in integers).bit_length() // bits))
    mask = (1 << bits) - 1
    limbs = [
        [(1.0 if i >= 0 else -1.0) * ((abs(i) >> (k * bits)) & mask) for k in range(count)]
        for i in integers
    ]
    return _Split(np.array(limbs, dtype=np.float64), -shift, fast=False)
