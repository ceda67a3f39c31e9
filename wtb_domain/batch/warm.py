"""What a worker process builds once and reuses for every task it runs (warm workers).

A Ray worker (or a ThreadPool flow's process) runs many task groups of the same batch: the
App (engine, migrations check, bus, controller) is kept per database URL, and the resolved
batch (spec parsed, workflow imported, leaves built) per stored-spec hash and secret overlay.
Both caches are thread-safe and bounded; a cached resolved batch is only used after the
store's spec was checked to still have that hash.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from wtb_domain.batch.plan import ResolvedBatch

MAX_ENTRIES = 16
T = TypeVar("T")


class BoundedCache:
    """A small thread-safe LRU map; ``get_or_build`` builds a missing value under the lock
    (two threads never build the same App twice: metrics listeners register once)."""

    def __init__(self, size: int = MAX_ENTRIES) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get_or_build(self, key: Any, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[no-any-return]
            value = build()
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


RESOLVED = BoundedCache()
APPS = BoundedCache()  # database URL -> App (tasks.secrets.app_for)


def overlay_key(overlay: Mapping[str, Any]) -> str:
    """A digest of the secret overlay (the cache key holds no secret in clear)."""
    blob = json.dumps(overlay, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def resolved_batch(
    hash_: str, overlay: Mapping[str, Any], build: Callable[[], ResolvedBatch]
) -> ResolvedBatch:
    """The resolved batch of a stored spec (by its hash) and overlay, built on first use."""
    return RESOLVED.get_or_build((hash_, overlay_key(overlay)), build)
