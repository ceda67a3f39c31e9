"""Checkpoint writes on PostgreSQL as single statements, one round trip each in autocommit.

Run in autocommit mode, a statement is its own transaction, so a node's write costs one round
trip instead of BEGIN, three statements and COMMIT (and a new execution one instead of seven).
The inserts of new state values and of the checkpoint are data-modifying CTEs of the statement
that writes the execution row; all parts run against one snapshot and foreign keys are checked
at the end of the statement, so their order does not matter.

:func:`save_node_statement` moves an execution's head: for an unknown execution the checkpoint
fails its foreign key and nothing is written. Running it twice with the same checkpoint is a
no-op the second time (``ON CONFLICT DO NOTHING``; the update sets the same values), so a retry
after an ambiguous commit is safe. :func:`start_execution_statement` inserts a new execution
with its first checkpoint; an id in use fails the execution's primary key.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import CTE, Insert, Update, bindparam, select, union_all
from sqlalchemy.dialects import postgresql

from wtb_domain.adapters.sql.repositories import (
    BLOBS,
    CHECKPOINTS,
    EXECUTIONS,
    UPDATE_EXECUTION,
    checkpoint_values,
    execution_update_params,
    execution_values,
)
from wtb_domain.model import Checkpoint, Execution

CHECKPOINT_PREFIX = "checkpoint_"
EXECUTION_PREFIX = "execution_"
MAX_VALUES = 100
"""Most new values a single statement carries (three parameters each); writes with more use
separate statements, which send them with executemany."""

_insert_checkpoint = (
    postgresql.insert(CHECKPOINTS)
    .values({c.name: bindparam(CHECKPOINT_PREFIX + c.name) for c in CHECKPOINTS.c})
    .on_conflict_do_nothing(index_elements=["id"])
    .cte("inserted_checkpoint")
)
_start_execution = postgresql.insert(EXECUTIONS).values(
    {c.name: bindparam(EXECUTION_PREFIX + c.name) for c in EXECUTIONS.c}
)


def _blob_param(column: str, i: int) -> str:
    return f"blob_{column}_{i}"


def _inserts(blob_count: int) -> list[CTE]:
    """The checkpoint insert, after the insert of ``blob_count`` values if there are any.

    Values come as scalar parameters, one row each, so large values travel as they are (an
    array parameter would be escaped by the client and parsed again by the server); the rows
    are a UNION ALL of SELECTs because SQLAlchemy does not cache multi-row VALUES.
    """
    if blob_count == 0:
        return [_insert_checkpoint]
    rows = [
        select(*[bindparam(_blob_param(c.name, i), type_=c.type).label(c.name) for c in BLOBS.c])
        for i in range(blob_count)
    ]
    blobs = (
        postgresql.insert(BLOBS)
        .from_select([c.name for c in BLOBS.c], rows[0] if blob_count == 1 else union_all(*rows))
        .on_conflict_do_nothing(index_elements=["hash"])
        .cte("inserted_blobs")
    )
    return [blobs, _insert_checkpoint]


@functools.cache
def save_node_statement(blob_count: int) -> Update:
    """Moves an execution's head to a checkpoint that brings ``blob_count`` new values.

    Its row count is the number of executions moved (1). Built once per count (at most
    :data:`MAX_VALUES`), so SQLAlchemy compiles each shape once.
    """
    return UPDATE_EXECUTION.add_cte(*_inserts(blob_count))


@functools.cache
def start_execution_statement(blob_count: int) -> Insert:
    """Inserts an execution with a first checkpoint that brings ``blob_count`` new values."""
    return _start_execution.add_cte(*_inserts(blob_count))


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
    checkpoint: Checkpoint, new_blobs: Mapping[str, str], execution: Execution
) -> dict[str, Any]:
    """The parameters of :func:`save_node_statement`."""
    return {**execution_update_params(execution), **_checkpoint_params(checkpoint, new_blobs)}


def start_execution_params(
    execution: Execution, checkpoint: Checkpoint, new_blobs: Mapping[str, str]
) -> dict[str, Any]:
    """The parameters of :func:`start_execution_statement`."""
    row = {EXECUTION_PREFIX + name: v for name, v in execution_values(execution).items()}
    return {**row, **_checkpoint_params(checkpoint, new_blobs)}
