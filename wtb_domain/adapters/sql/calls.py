"""SQL recorded calls (``wtb_call_records`` + ``wtb_call_bodies``) and the node cache."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Executable, insert, select
from sqlalchemy.dialects import postgresql

from wtb_domain.adapters.sql.tables import CALL_BODIES as BODIES
from wtb_domain.adapters.sql.tables import CALL_RECORDS as RECORDS
from wtb_domain.adapters.sql.tables import NODE_CACHE as CACHE
from wtb_domain.errors import NotFoundError
from wtb_domain.recording.model import CacheEntry, CallRecord

RECORD_FIELDS = [c.name for c in RECORDS.columns]

# Insert-or-skip: bodies are content-addressed, records are per (checkpoint, seq) and a
# retried node write sends them again, cache keys keep their first entry.
INSERTS: dict[str, dict[str, Executable]] = {
    "postgresql": {
        t.name: postgresql.insert(t).on_conflict_do_nothing() for t in (RECORDS, BODIES, CACHE)
    },
    "sqlite": {t.name: insert(t).prefix_with("OR IGNORE") for t in (RECORDS, BODIES, CACHE)},
}


def _record(row: Any) -> CallRecord:
    return CallRecord(**{name: getattr(row, name) for name in RECORD_FIELDS})


class SqlCalls:
    def __init__(self, connection: Connection) -> None:
        self._s = connection
        self._insert = INSERTS[connection.dialect.name]

    def add_many(self, records: Sequence[CallRecord], bodies: Mapping[str, str]) -> None:
        if bodies:
            self._s.execute(
                self._insert[BODIES.name], [{"hash": h, "data": d} for h, d in bodies.items()]
            )
        if records:
            self._s.execute(
                self._insert[RECORDS.name],
                [{name: getattr(r, name) for name in RECORD_FIELDS} for r in records],
            )

    def find(self, request_key: str, *, batch_id: str | None = None) -> list[CallRecord]:
        stmt = select(RECORDS).where(RECORDS.c.request_key == request_key, RECORDS.c.live.is_(True))
        if batch_id is not None:
            stmt = stmt.where(RECORDS.c.batch_id == batch_id)
        stmt = stmt.order_by(RECORDS.c.created_at, RECORDS.c.checkpoint_id, RECORDS.c.seq)
        return [_record(r) for r in self._s.execute(stmt)]

    def for_checkpoint(self, checkpoint_id: str) -> list[CallRecord]:
        stmt = (
            select(RECORDS).where(RECORDS.c.checkpoint_id == checkpoint_id).order_by(RECORDS.c.seq)
        )
        return [_record(r) for r in self._s.execute(stmt)]

    def for_batch(self, batch_id: str) -> list[CallRecord]:
        stmt = (
            select(RECORDS)
            .where(RECORDS.c.batch_id == batch_id, RECORDS.c.live.is_(True))
            .order_by(RECORDS.c.created_at, RECORDS.c.checkpoint_id, RECORDS.c.seq)
        )
        return [_record(r) for r in self._s.execute(stmt)]

    def bodies(self, hashes: Sequence[str]) -> dict[str, Any]:
        wanted = list(dict.fromkeys(hashes))
        rows = self._s.execute(select(BODIES).where(BODIES.c.hash.in_(wanted))).all()
        out = {r.hash: json.loads(r.data) for r in rows}
        for h in wanted:
            if h not in out:
                raise NotFoundError(f"recorded call body {h} is missing from the store")
        return out


class SqlNodeCache:
    def __init__(self, connection: Connection) -> None:
        self._s = connection
        self._insert = INSERTS[connection.dialect.name][CACHE.name]

    def get(self, key: str) -> CacheEntry | None:
        row = self._s.execute(select(CACHE).where(CACHE.c.key == key)).first()
        if row is None:
            return None
        return CacheEntry(
            row.key, row.node, row.variant, dict(row.writes), row.checkpoint_id, row.created_at
        )

    def put(self, entry: CacheEntry) -> None:
        self._s.execute(
            self._insert,
            {
                "key": entry.key,
                "node": entry.node,
                "variant": entry.variant,
                "writes": entry.writes,
                "checkpoint_id": entry.checkpoint_id,
                "created_at": entry.created_at,
            },
        )
