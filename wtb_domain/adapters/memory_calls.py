"""In-memory recorded calls and node cache (staged like the other memory repositories)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wtb_domain.errors import NotFoundError
from wtb_domain.recording.model import CacheEntry, CallRecord


@dataclass
class CallData:
    """Committed (in the store) or staged (in a unit of work) calls and cache entries."""

    records: dict[tuple[str, int], CallRecord] = field(default_factory=dict)
    bodies: dict[str, str] = field(default_factory=dict)
    cache: dict[str, CacheEntry] = field(default_factory=dict)

    def apply(self, staged: CallData) -> None:
        for key, record in staged.records.items():
            self.records.setdefault(key, record)
        self.bodies.update(staged.bodies)
        for cache_key, entry in staged.cache.items():
            self.cache.setdefault(cache_key, entry)

    def clear(self) -> None:
        self.records.clear()
        self.bodies.clear()
        self.cache.clear()


class MemoryCalls:
    def __init__(self, store: CallData, staged: CallData) -> None:
        self._store, self._staged = store, staged

    def add_many(self, records: Sequence[CallRecord], bodies: Mapping[str, str]) -> None:
        for r in records:
            key = (r.checkpoint_id, r.seq)
            if key not in self._store.records:
                self._staged.records.setdefault(key, r)
        self._staged.bodies.update(bodies)

    def _all(self) -> list[CallRecord]:
        merged = {**self._staged.records, **self._store.records}
        return list(merged.values())

    def find(self, request_key: str, *, batch_id: str | None = None) -> list[CallRecord]:
        rows = [
            r
            for r in self._all()
            if r.request_key == request_key
            and r.live
            and (batch_id is None or r.batch_id == batch_id)
        ]
        return sorted(rows, key=lambda r: (r.created_at, r.checkpoint_id, r.seq))

    def for_checkpoint(self, checkpoint_id: str) -> list[CallRecord]:
        rows = [r for r in self._all() if r.checkpoint_id == checkpoint_id]
        return sorted(rows, key=lambda r: r.seq)

    def for_batch(self, batch_id: str) -> list[CallRecord]:
        rows = [r for r in self._all() if r.batch_id == batch_id and r.live]
        return sorted(rows, key=lambda r: (r.created_at, r.checkpoint_id, r.seq))

    def bodies(self, hashes: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for h in hashes:
            text = self._staged.bodies.get(h) or self._store.bodies.get(h)
            if text is None:
                raise NotFoundError(f"recorded call body {h} is missing from the store")
            out[h] = json.loads(text)
        return out


class MemoryNodeCache:
    def __init__(self, store: CallData, staged: CallData) -> None:
        self._store, self._staged = store, staged

    def get(self, key: str) -> CacheEntry | None:
        return self._store.cache.get(key) or self._staged.cache.get(key)

    def put(self, entry: CacheEntry) -> None:
        if entry.key not in self._store.cache:
            self._staged.cache.setdefault(entry.key, entry)
