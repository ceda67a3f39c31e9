"""Checkpoint writes on PostgreSQL as single statements, one round trip each in autocommit.

Run in autocommit mode, a statement is its own transaction, so a node's write costs one round
trip instead of BEGIN, three statements and COMMIT (and a new execution one instead of seven).
The inserts of new state values and of the checkpoint are data-modifying CTEs of the statement
that writes the execution row.

:func:`save_node_statement` moves an execution's head as a compare-and-set (see
:mod:`~wtb_domain.adapters.sql.claims`): the execution's UPDATE is the first CTE, and the
inserts select their rows ``FROM`` its RETURNING, so when the head or the claim is not as the
writer expects (or the execution does not exist) the UPDATE changes no row and nothing at all
is inserted -- no orphan checkpoint or values. The statement returns the number of executions
moved (0 or 1). Running it twice with the same checkpoint is a no-op the second time (the
head is then the checkpoint itself, which the guard accepts; ``ON CONFLICT DO NOTHING``), so
a retry after an ambiguous commit is safe. :func:`start_execution_statement` inserts a new
execution with its first checkpoint (claimed or not); an id in use fails the execution's
primary key.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    CTE,
    Connection,
    Executable,
    Insert,
    Select,
    bindparam,
    func,
    insert,
    select,
    union_all,
)

from wtb_domain.adapters.sql.claims import guard_params, guarded_update, lease_end, lease_params
from wtb_domain.adapters.sql.event_store import event_ctes
from wtb_domain.adapters.sql.repositories import checkpoint_values, execution_values
from wtb_domain.adapters.sql.tables import BLOBS, CHECKPOINTS, EXECUTIONS
from wtb_domain.claims import Claim
from wtb_domain.model import Checkpoint, Execution

CHECKPOINT_PREFIX = "checkpoint_"
EXECUTION_PREFIX = "execution_"
MAX_VALUES = 100
"""Most new values a single statement carries (three parameters each); writes with more use
separate statements, which send them with executemany."""

CLAIM_COLUMNS = ("claimed_by", "claim_expires_at")
_moved = guarded_update("postgresql").returning(EXECUTIONS.c.id).cte("moved")
_start_execution = insert(EXECUTIONS).values(
    {
        **{
            c.name: bindparam(EXECUTION_PREFIX + c.name)
            for c in EXECUTIONS.c
            if c.name not in CLAIM_COLUMNS
        },
        "claimed_by": bindparam("new_owner"),
        "claim_expires_at": lease_end("postgresql"),
    }
)


# ``ON CONFLICT`` as a suffix of the inserted SELECT, not ``on_conflict_do_nothing()``:
# SQLAlchemy 2.0 gives statements with the latter no cache key, so every node write compiled
# its statement again (about 1 ms of CPU per node); with the suffix each shape compiles once.
_SKIP_CHECKPOINT = "ON CONFLICT (id) DO NOTHING"
_SKIP_BLOB = "ON CONFLICT (hash) DO NOTHING"


def _blob_param(column: str, i: int) -> str:
    return f"blob_{column}_{i}"


def _inserts(blob_count: int, guard: CTE | None) -> list[CTE]:
    """The checkpoint insert, after the insert of ``blob_count`` values if there are any.

    Values come as scalar parameters, one row each, so large values travel as they are (an
    array parameter would be escaped by the client and parsed again by the server); the rows
    are a UNION ALL of SELECTs because SQLAlchemy does not cache multi-row VALUES. With a
    ``guard`` (the execution's UPDATE ... RETURNING), every row is selected ``FROM`` it: no
    row when the UPDATE changed none.
    """

    def row(columns: list[Any]) -> Select[Any]:
        stmt = select(*columns)
        return stmt if guard is None else stmt.select_from(guard)

    cp_row = row(
        [bindparam(CHECKPOINT_PREFIX + c.name, type_=c.type).label(c.name) for c in CHECKPOINTS.c]
    )
    checkpoint = (
        insert(CHECKPOINTS)
        .from_select([c.name for c in CHECKPOINTS.c], cp_row.suffix_with(_SKIP_CHECKPOINT))
        .cte("inserted_checkpoint")
    )
    if blob_count == 0:
        return [checkpoint]
    rows = [
        row([bindparam(_blob_param(c.name, i), type_=c.type).label(c.name) for c in BLOBS.c])
        for i in range(blob_count)
    ]
    source = rows[0]
    if blob_count > 1:
        union = union_all(*rows).subquery("blob_rows")
        source = select(*[union.c[c.name] for c in BLOBS.c])
    blobs = (
        insert(BLOBS)
        .from_select([c.name for c in BLOBS.c], source.suffix_with(_SKIP_BLOB))
        .cte("inserted_blobs")
    )
    return [blobs, checkpoint]


@functools.cache
def save_node_statement(blob_count: int, event_count: int = 0) -> Select[Any]:
    """Moves an execution's head to a checkpoint that brings ``blob_count`` new values, and
    writes ``event_count`` events (one row each, see
    :func:`~wtb_domain.adapters.sql.event_store.event_ctes`).

    Selects the number of executions moved: 1, or 0 when the guard refused the write (then
    nothing was inserted). Built once per shape (at most :data:`MAX_VALUES` values), so
    SQLAlchemy compiles each shape once.
    """
    ctes = [*_inserts(blob_count, _moved), *event_ctes(event_count, _moved)]
    return select(func.count()).select_from(_moved).add_cte(*ctes)


@functools.cache
def guarded_write_statement(event_count: int) -> Select[Any]:
    """The guarded execution update (claim, release, move head) with ``event_count`` events
    written only if it changed the row; selects the number of rows changed (0 or 1)."""
    return select(func.count()).select_from(_moved).add_cte(*event_ctes(event_count, _moved))


@functools.cache
def start_execution_statement(blob_count: int, event_count: int = 0) -> Insert:
    """Inserts an execution with a first checkpoint that brings ``blob_count`` new values
    (and ``event_count`` events)."""
    return _start_execution.add_cte(*_inserts(blob_count, None), *event_ctes(event_count, None))


def _checkpoint_params(checkpoint: Checkpoint, new_blobs: Mapping[str, str]) -> dict[str, Any]:
    # Blobs go in hash order: concurrent writers of the same values then take their locks in
    # the same order and cannot deadlock on each other.
    params = {CHECKPOINT_PREFIX + name: v for name, v in checkpoint_values(checkpoint).items()}
    for i, h in enumerate(sorted(new_blobs)):
        params[_blob_param("hash", i)] = h
        params[_blob_param("data", i)] = new_blobs[h]
        params[_blob_param("size", i)] = len(new_blobs[h])
    return params


def save_node_params(
    checkpoint: Checkpoint,
    new_blobs: Mapping[str, str],
    execution: Execution,
    claim: Claim | None,
    *,
    release: bool = False,
) -> dict[str, Any]:
    """The parameters of :func:`save_node_statement`: the head moves from the checkpoint's
    parent, and the write keeps (renews) ``claim``'s lease (or needs a free claim); with
    ``release`` it frees the claim."""
    hold = claim is not None and not release
    guard = guard_params(execution, checkpoint.parent_id, claim, hold=hold)
    return {**guard, **_checkpoint_params(checkpoint, new_blobs)}


def start_execution_params(
    execution: Execution,
    checkpoint: Checkpoint,
    new_blobs: Mapping[str, str],
    claim: Claim | None,
) -> dict[str, Any]:
    """The parameters of :func:`start_execution_statement`."""
    row = {EXECUTION_PREFIX + name: v for name, v in execution_values(execution).items()}
    row["new_owner"] = claim.owner if claim is not None else None
    row.update(lease_params(claim.lease_s if claim is not None else None))
    return {**row, **_checkpoint_params(checkpoint, new_blobs)}


def autocommit(
    conn: Connection, statement: Executable, params: dict[str, Any], *, scalar: bool = False
) -> int:
    """Run one statement as its own transaction (PostgreSQL); its row count (or its scalar
    result).

    A psycopg connection switches to and from autocommit locally, without a round trip.
    SQLAlchemy also restores the default when the connection goes back to the pool, and a
    connection replaced after a disconnect starts with the default.
    """
    conn.execution_options(isolation_level="AUTOCOMMIT")
    try:
        result = conn.execute(statement, params)
        rowcount = int(result.scalar_one() if scalar else result.rowcount)
        conn.commit()  # ends SQLAlchemy's transaction; nothing is sent in autocommit
    except BaseException:
        conn.rollback()
        raise
    finally:
        if not conn.invalidated:
            conn.execution_options(isolation_level=conn.default_isolation_level)
    return rowcount
