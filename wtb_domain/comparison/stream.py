"""The random draws of the statistics, made in bulk with numpy and equal to ``random``'s.

The statistics are defined with ``random.Random(seed)``: the bootstrap resamples with
``rng.choices(sample, k=len(sample))`` and the sign-flip test draws ``rng.getrandbits(w)``
per table. Both are CPython's Mersenne Twister (MT19937). numpy has the same generator; started
from the state ``random.Random(seed).getstate()`` holds, it yields the same 32-bit words, so:

* ``random()`` is ``((a >> 5) * 2**26 + (b >> 6)) / 2**53`` for two consecutive words ``a, b``
  (CPython's ``genrand_res53``), and ``choices`` picks index ``floor(random() * n)``;
* ``getrandbits(w)`` for ``w <= 32`` is one word shifted right by ``32 - w``.

The draws depend only on the seed and the shape (sample size, resamples; table widths,
draws), not on the values, so they are computed once and shared by every combination and
comparison of a matrix (a small LRU cache of read-only arrays; large shapes are streamed in
blocks instead of cached).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

# Largest draw arrays (elements) that are cached; larger shapes are streamed in blocks this big.
BLOCK_ELEMENTS = 2**21
TABLE_STRIDE = 256  # entries reserved per sign table (tables cover at most 8 values)


def generator(seed: int) -> np.random.MT19937:
    """numpy's MT19937 in the state of ``random.Random(seed)``."""
    _, internal, _ = random.Random(seed).getstate()  # noqa: S311 - seeded statistics
    bit_generator = np.random.MT19937()
    bit_generator.state = {
        "bit_generator": "MT19937",
        "state": {"key": np.array(internal[:-1], dtype=np.uint32), "pos": internal[-1]},
    }
    return bit_generator


def uniforms(bit_generator: np.random.MT19937, count: int) -> FloatArray:
    """The next ``count`` values of ``random.random()``."""
    words = bit_generator.random_raw(2 * count).reshape(count, 2)
    result: FloatArray = (words[:, 0] >> 5).astype(np.float64)
    result *= 67108864.0
    result += words[:, 1] >> 6
    result *= 2.0**-53  # exact, as the division by 2**53 it stands for
    return result


def resample_counts(seed: int, size: int, resamples: int) -> Iterator[FloatArray]:
    """How often each of ``size`` values is drawn in each resample, in blocks of resamples.

    Row ``r`` of the concatenated blocks counts the indices that the ``r``-th call of
    ``random.Random(seed).choices(sample, k=size)`` picks (``len(sample) == size``).
    """
    if resamples * size <= BLOCK_ELEMENTS:
        yield _cached_counts(seed, size, resamples)
    else:
        yield from _count_blocks(seed, size, resamples)


@functools.lru_cache(maxsize=2)
def _cached_counts(seed: int, size: int, resamples: int) -> FloatArray:
    (counts,) = _count_blocks(seed, size, resamples)
    counts.flags.writeable = False
    return counts


def _count_blocks(seed: int, size: int, resamples: int) -> Iterator[FloatArray]:
    bit_generator = generator(seed)
    rows = max(1, BLOCK_ELEMENTS // size)
    for start in range(0, resamples, rows):
        block = min(rows, resamples - start)
        drawn = uniforms(bit_generator, block * size)
        drawn *= float(size)
        picked = np.floor(drawn, out=drawn).astype(np.intp).reshape(block, size)
        picked += (np.arange(block, dtype=np.intp) * size)[:, None]
        counts = np.bincount(picked.ravel(), minlength=block * size).reshape(block, size)
        yield counts.astype(np.float64)


def flip_indices(seed: int, widths: tuple[int, ...], draws: int) -> Iterator[IndexArray]:
    """The table entries each Monte-Carlo draw picks, in blocks of draws.

    Entry ``[d, t]`` is ``t * TABLE_STRIDE + random.Random(seed).getrandbits(widths[t])`` for
    the ``d``-th draw (draws call ``getrandbits`` once per table, in table order).
    """
    if draws < 1:
        return
    if draws * len(widths) <= BLOCK_ELEMENTS:
        yield _cached_flips(seed, widths, draws)
    else:
        yield from _flip_blocks(seed, widths, draws)


@functools.lru_cache(maxsize=4)
def _cached_flips(seed: int, widths: tuple[int, ...], draws: int) -> IndexArray:
    (indices,) = _flip_blocks(seed, widths, draws)
    indices.flags.writeable = False
    return indices


def _flip_blocks(seed: int, widths: tuple[int, ...], draws: int) -> Iterator[IndexArray]:
    bit_generator = generator(seed)
    tables = len(widths)
    shifts = np.array([32 - w for w in widths], dtype=np.uint64)
    offsets = np.arange(tables, dtype=np.intp) * TABLE_STRIDE
    rows = max(1, BLOCK_ELEMENTS // tables)
    for start in range(0, draws, rows):
        block = min(rows, draws - start)
        words = bit_generator.random_raw(block * tables).reshape(block, tables)
        yield (words >> shifts).astype(np.intp) + offsets
