"""SQL reads and writes of the LangGraph checkpointer (no LangGraph import).

A thread + namespace is a WTB execution; a LangGraph checkpoint is a row of
``wtb_checkpoints`` (its channels in the manifest, values in ``wtb_state_blobs``) plus a row
of ``wtb_lg_checkpoints`` (the LangGraph fields); pending writes are ``wtb_lg_writes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, select, update
from sqlalchemy.dialects import postgresql

from wtb_domain import deltas
from wtb_domain.adapters.sql.repositories import (
    IN_CHUNK,
    INSERT_BLOBS,
    INSERT_CHECKPOINTS,
    execution_values,
)
from wtb_domain.adapters.sql.tables import BLOBS, CHECKPOINTS, EXECUTIONS, LG_CHECKPOINTS, LG_WRITES
from wtb_domain.errors import SpecError
from wtb_domain.model import Execution, Source, Status, utcnow

LABEL = "langgraph"
"""The label of executions that are LangGraph threads (``{"thread_id", "checkpoint_ns"}``)."""

SOURCES = {"input": Source.INPUT, "loop": Source.NODE, "update": Source.UPDATE, "fork": Source.FORK}


def _digest(*parts: str, size: int) -> str:
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=size).hexdigest()


def check_key(field: str, value: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise SpecError(
            f"config['configurable'][{field!r}]: must be a string of at most {limit} "
            f"characters (got {str(value)[:40]!r}); use a shorter id"
        )
    return value


def execution_id(thread_id: str, checkpoint_ns: str) -> str:
    """The WTB execution of a LangGraph thread + namespace."""
    return "lg-" + _digest(thread_id, checkpoint_ns, size=14)


def wtb_checkpoint_id(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> str:
    """The WTB checkpoint of a LangGraph checkpoint (sorts like LangGraph's ids)."""
    return f"{checkpoint_id[:40]}-{_digest(thread_id, checkpoint_ns, checkpoint_id, size=8)}"


@dataclass(frozen=True)
class Stored:
    """One LangGraph checkpoint as stored (values still encoded)."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: Any
    metadata: Any
    manifest: dict[str, str]
    wtb_checkpoint_id: str
    execution_id: str


@dataclass(frozen=True)
class NewCheckpoint:
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: Any
    metadata: Any
    manifest: dict[str, str]
    blobs: dict[str, str]
    step: int
    source: Source
    fork_of: tuple[str, str] | None = None
    node: str | None = None
    """The node(s) whose run this checkpoint records, when known."""
    """(execution id, WTB checkpoint id) this checkpoint was forked from."""


def _insert_ignore(connection: Connection, table: Table, keys: list[str]) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
    return insert(table).prefix_with("OR IGNORE")


def _upsert_writes(connection: Connection) -> Any:
    keys = ["thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"]
    if connection.dialect.name == "postgresql":
        stmt = postgresql.insert(LG_WRITES)
        cols = {c: stmt.excluded[c] for c in ("channel", "type", "value", "task_path")}
        return stmt.on_conflict_do_update(index_elements=keys, set_=cols)
    return insert(LG_WRITES).prefix_with("OR REPLACE")


def save(connection: Connection, new: NewCheckpoint) -> None:
    """Write the checkpoint, its new values and its execution (creating it on first use)."""
    exec_id = execution_id(new.thread_id, new.checkpoint_ns)
    cp_id = wtb_checkpoint_id(new.thread_id, new.checkpoint_ns, new.checkpoint_id)
    now = utcnow()
    moved = connection.execute(
        update(EXECUTIONS)
        .where(EXECUTIONS.c.id == exec_id)
        .values(head_checkpoint_id=cp_id, updated_at=now, paused_at=f"langgraph:{new.step}")
    )
    if moved.rowcount == 0:
        parent_exec, forked_cp = new.fork_of or (None, None)
        execution = Execution(
            id=exec_id,
            workflow_name=f"langgraph:{new.thread_id}"[:255],
            workflow_hash="langgraph",
            status=Status.PAUSED,
            head_checkpoint_id=cp_id,
            paused_at=f"langgraph:{new.step}",
            parent_execution_id=parent_exec,
            forked_from_checkpoint_id=forked_cp,
            labels={LABEL: {"thread_id": new.thread_id, "checkpoint_ns": new.checkpoint_ns}},
            created_at=now,
            updated_at=now,
        )
        connection.execute(
            _insert_ignore(connection, EXECUTIONS, ["id"]), [execution_values(execution)]
        )
    if new.blobs:
        connection.execute(
            INSERT_BLOBS[connection.dialect.name],
            [{"hash": h, "data": d, "size": len(d.encode())} for h, d in new.blobs.items()],
        )
    parent = (
        wtb_checkpoint_id(new.thread_id, new.checkpoint_ns, new.parent_checkpoint_id)
        if new.parent_checkpoint_id
        else (new.fork_of[1] if new.fork_of else None)
    )
    lg_ref = {
        "thread_id": new.thread_id,
        "checkpoint_ns": new.checkpoint_ns,
        "checkpoint_id": new.checkpoint_id,
    }
    row = {
        "id": cp_id,
        "execution_id": exec_id,
        "parent_id": parent,
        "step": new.step,
        "node": new.node[:255] if new.node else None,
        "variant": None,
        "source": new.source.value,
        "manifest": new.manifest,
        "metadata": {LABEL: lg_ref},
        "created_at": now,
    }
    insert_checkpoint = INSERT_CHECKPOINTS[connection.dialect.name]
    if connection.execute(insert_checkpoint, row).rowcount == 0:
        # A checkpoint put again under the same id replaces the earlier one (as LangGraph's
        # savers do); the foreign key's ON DELETE CASCADE drops its wtb_lg_checkpoints row
        # too (the WTB checkpoint id is a function of thread, namespace and checkpoint id).
        connection.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.id == cp_id))
        connection.execute(insert(CHECKPOINTS), row)
    connection.execute(
        insert(LG_CHECKPOINTS),
        [
            {
                **lg_ref,
                "execution_id": exec_id,
                "wtb_checkpoint_id": cp_id,
                "parent_checkpoint_id": new.parent_checkpoint_id,
                "checkpoint": new.checkpoint,
                "metadata": new.metadata,
            }
        ],
    )


def _select() -> Any:
    return select(
        LG_CHECKPOINTS.c.thread_id,
        LG_CHECKPOINTS.c.checkpoint_ns,
        LG_CHECKPOINTS.c.checkpoint_id,
        LG_CHECKPOINTS.c.parent_checkpoint_id,
        LG_CHECKPOINTS.c.checkpoint,
        LG_CHECKPOINTS.c.metadata,
        LG_CHECKPOINTS.c.wtb_checkpoint_id,
        LG_CHECKPOINTS.c.execution_id,
        CHECKPOINTS.c.manifest,
    ).join(CHECKPOINTS, CHECKPOINTS.c.id == LG_CHECKPOINTS.c.wtb_checkpoint_id)


def _stored(row: Any) -> Stored:
    return Stored(
        row.thread_id,
        row.checkpoint_ns,
        row.checkpoint_id,
        row.parent_checkpoint_id,
        row.checkpoint,
        row.metadata,
        dict(row.manifest),
        row.wtb_checkpoint_id,
        row.execution_id,
    )


def find(
    connection: Connection,
    *,
    thread_id: str | None = None,
    checkpoint_ns: str | None = None,
    checkpoint_id: str | None = None,
    before: str | None = None,
    limit: int | None = None,
    wtb_id: str | None = None,
) -> list[Stored]:
    """Stored checkpoints matching every given field, newest (highest id) first."""
    stmt = _select()
    c = LG_CHECKPOINTS.c
    if thread_id is not None:
        stmt = stmt.where(c.thread_id == thread_id)
    if checkpoint_ns is not None:
        stmt = stmt.where(c.checkpoint_ns == checkpoint_ns)
    if checkpoint_id is not None:
        stmt = stmt.where(c.checkpoint_id == checkpoint_id)
    if before is not None:
        stmt = stmt.where(c.checkpoint_id < before)
    if wtb_id is not None:
        stmt = stmt.where(c.wtb_checkpoint_id == wtb_id)
    stmt = stmt.order_by(c.checkpoint_id.desc(), c.thread_id, c.checkpoint_ns)
    if limit is not None:
        stmt = stmt.limit(max(limit, 0))
    return [_stored(r) for r in connection.execute(stmt)]


def load_values(connection: Connection, hashes: Iterable[str]) -> dict[str, Any]:
    """Decoded JSON of the blobs (a delta blob the WTB engine wrote for equal content is
    rebuilt); raise NotFoundError if one is missing."""

    def fetch(wanted: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(wanted), IN_CHUNK):
            chunk = list(wanted[i : i + IN_CHUNK])
            rows = connection.execute(
                select(BLOBS.c.hash, BLOBS.c.data).where(BLOBS.c.hash.in_(chunk))
            )
            out.update({h: d for h, d in rows})
        return out

    return deltas.load_values(list(dict.fromkeys(hashes)), fetch)


def put_writes(connection: Connection, rows: Sequence[Mapping[str, Any]], *, replace: bool) -> None:
    if not rows:
        return
    keys = ["thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"]
    stmt = _upsert_writes(connection) if replace else _insert_ignore(connection, LG_WRITES, keys)
    connection.execute(stmt, list(rows))


def writes(
    connection: Connection, thread_id: str, checkpoint_ns: str, checkpoint_id: str
) -> list[Any]:
    c = LG_WRITES.c
    stmt = (
        select(c.task_id, c.channel, c.type, c.value, c.task_path, c.idx)
        .where(c.thread_id == thread_id, c.checkpoint_ns == checkpoint_ns)
        .where(c.checkpoint_id == checkpoint_id)
        .order_by(c.task_path, c.task_id, c.idx)
    )
    return list(connection.execute(stmt))


def delete_thread(connection: Connection, thread_id: str) -> None:
    """Drop the thread's checkpoints, writes and executions (values other checkpoints may
    share stay in ``wtb_state_blobs``)."""
    exec_ids = [
        r[0]
        for r in connection.execute(
            select(LG_CHECKPOINTS.c.execution_id)
            .where(LG_CHECKPOINTS.c.thread_id == thread_id)
            .distinct()
        )
    ]
    connection.execute(delete(LG_WRITES).where(LG_WRITES.c.thread_id == thread_id))
    connection.execute(delete(LG_CHECKPOINTS).where(LG_CHECKPOINTS.c.thread_id == thread_id))
    if exec_ids:
        connection.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.execution_id.in_(exec_ids)))
        connection.execute(delete(EXECUTIONS).where(EXECUTIONS.c.id.in_(exec_ids)))
