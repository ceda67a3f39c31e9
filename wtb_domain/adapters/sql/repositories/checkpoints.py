"""The checkpoints repository: checkpoint rows and their content-addressed values (blobs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects import postgresql

from wtb_domain.adapters.sql.repositories.rows import _checkpoint_from, checkpoint_values
from wtb_domain.adapters.sql.tables import BLOBS, CHECKPOINTS
from wtb_domain.deltas import load_values
from wtb_domain.errors import NotFoundError
from wtb_domain.model import Checkpoint

IN_CHUNK = 500


INSERT_BLOBS = {
    "postgresql": postgresql.insert(BLOBS).on_conflict_do_nothing(index_elements=["hash"]),
    # INSERT OR IGNORE, not on_conflict_do_nothing(): SQLAlchemy 2.0 never caches a statement
    # with the latter and compiles it again on every node write (~0.5 ms of CPU per node).
    "sqlite": insert(BLOBS).prefix_with("OR IGNORE"),
}


# Checkpoint ids are fresh, so a conflict can only be this writer's own earlier attempt whose
# COMMIT reached the server though the connection died before the reply: a retried node write
# must then be a no-op, not an IntegrityError.
INSERT_CHECKPOINTS = {
    "postgresql": postgresql.insert(CHECKPOINTS).on_conflict_do_nothing(index_elements=["id"]),
    "sqlite": insert(CHECKPOINTS).prefix_with("OR IGNORE"),  # cacheable, as above
}


class SqlCheckpoints:
    def __init__(self, connection: Connection) -> None:
        self._s = connection
        self._insert_blobs = INSERT_BLOBS[connection.dialect.name]
        self._insert_checkpoints = INSERT_CHECKPOINTS[connection.dialect.name]

    def add(self, checkpoint: Checkpoint, new_blobs: Mapping[str, str]) -> None:
        self.add_many([(checkpoint, new_blobs)])

    def add_many(self, items: Sequence[tuple[Checkpoint, Mapping[str, str]]]) -> None:
        """Insert checkpoints and their new values in two executemany statements."""
        blobs: dict[str, str] = {}
        for _, b in items:
            blobs.update(b)
        if blobs:
            self._s.execute(
                self._insert_blobs,
                [{"hash": h, "data": d, "size": len(d)} for h, d in blobs.items()],
            )
        self._s.execute(self._insert_checkpoints, [checkpoint_values(cp) for cp, _ in items])

    def get(self, checkpoint_id: str) -> Checkpoint:
        row = self._s.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.id == checkpoint_id)).first()
        if row is None:
            raise NotFoundError(f"no checkpoint {checkpoint_id!r}")
        cp = _checkpoint_from(row)
        values = self.load_values(list(cp.manifest.values()))
        return replace(cp, state={k: values[h] for k, h in cp.manifest.items()})

    def history(self, execution_id: str) -> list[Checkpoint]:
        stmt = (
            select(CHECKPOINTS)
            .where(CHECKPOINTS.c.execution_id == execution_id)
            .order_by(CHECKPOINTS.c.id)
        )
        return [_checkpoint_from(r) for r in self._s.execute(stmt)]

    def load_values(self, hashes: Sequence[str]) -> dict[str, Any]:
        return load_values(hashes, self._fetch)

    def _fetch(self, wanted: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[i : i + IN_CHUNK]
            rows = self._s.execute(
                select(BLOBS.c.hash, BLOBS.c.data).where(BLOBS.c.hash.in_(chunk))
            )
            out.update({h: d for h, d in rows})
        return out
