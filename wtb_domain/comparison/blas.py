"""One BLAS thread for the statistics' matrix products, on the calling thread only.

The products are milliseconds of work; a multi-threaded OpenBLAS spends far longer than that
waiting for its worker threads when the machine is busy (measured on 2 shared cores at load
4: a 38 x 500 x 1000 product takes 14 ms with 2 threads, 1.1 ms with one). OpenBLAS 0.3.27+
has a per-thread setting, ``openblas_set_num_threads_local``, which :func:`one_thread` sets
around the products and restores after; other threads of the process keep theirs. Without it
(another BLAS, or an OpenBLAS not shipped inside numpy's wheel) this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

SYMBOL = "openblas_set_num_threads_local"


@functools.cache
def _set_local_threads() -> Callable[[int], int] | None:
    """numpy's OpenBLAS per-thread setter (returns the previous count), if there is one."""
    wheel_libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(wheel_libs.glob("*openblas*")):
        try:
            setter = getattr(ctypes.CDLL(str(path)), SYMBOL)
        except (OSError, AttributeError):
            continue
        setter.argtypes = [ctypes.c_int]
        setter.restype = ctypes.c_int
        return setter  # type: ignore[no-any-return]
    return None


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block's BLAS calls on this thread alone."""
    setter = _set_local_threads()
    if setter is None:
        yield
        return
    previous = setter(1)
    try:
        yield
    finally:
        setter(previous)
