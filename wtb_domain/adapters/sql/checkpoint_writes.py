"""Checkpoint writes on PostgreSQL as single statements, one round trip each in autocommit.

Run in autocommit mode, a statement is its own transaction, so a node's write costs one round
trip instead of BEGIN, three statements and COMMIT (and a new execution one instead of seven).
The inserts of new state values and of the checkpoint are data-modifying CTEs of the statement
that writes the execution row; all parts run against one snapshot and foreign keys are checked
at the end of the statement, so their order does not matter.

:data:`SAVE_NODE` moves an execution's head: for an unknown execution the checkpoint fails its
foreign key and nothing is written. Running it twice with the same checkpoint is a no-op the
second time (``ON CONFLICT DO NOTHING``; the update sets the same values), so a retry after an
ambiguous commit is safe. :data:`START_EXECUTION` inserts a new execution with its first
checkpoint; an id in use fails the execution's primary key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ARRAY, Integer, Text, bindparam, cast, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import Cast
from sqlalchemy.types import TypeEngine

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


def _array(name: str, item_type: TypeEngine[Any]) -> Cast[Any]:
    """An array parameter cast to its type (an empty list carries none)."""
    return cast(bindparam(name, type_=ARRAY(item_type)), ARRAY(item_type))


_new_blobs = (
    func.unnest(
        _array("blob_hashes", Text()),
        _array("blob_data", Text()),
        _array("blob_sizes", Integer()),
    )
    .table_valued("hash", "data", "size")
    .render_derived(name="new_blobs")
)
_insert_blobs = (
    postgresql.insert(BLOBS)
    .from_select(
        ["hash", "data", "size"],
        select(_new_blobs.c.hash, _new_blobs.c.data, _new_blobs.c.size),
    )
    .on_conflict_do_nothing(index_elements=["hash"])
    .cte("inserted_blobs")
)
_insert_checkpoint = (
    postgresql.insert(CHECKPOINTS)
    .values({c.name: bindparam(CHECKPOINT_PREFIX + c.name) for c in CHECKPOINTS.c})
    .on_conflict_do_nothing(index_elements=["id"])
    .cte("inserted_checkpoint")
)

SAVE_NODE = UPDATE_EXECUTION.add_cte(_insert_blobs, _insert_checkpoint)
"""Its row count is the number of executions moved (1)."""

START_EXECUTION = (
    postgresql.insert(EXECUTIONS)
    .values({c.name: bindparam(EXECUTION_PREFIX + c.name) for c in EXECUTIONS.c})
    .add_cte(_insert_blobs, _insert_checkpoint)
)


def _checkpoint_params(checkpoint: Checkpoint, new_blobs: Mapping[str, str]) -> dict[str, Any]:
    # Blobs go in hash order: concurrent writers of the same values then take their locks in
    # the same order and cannot deadlock on each other.
    hashes = sorted(new_blobs)
    params = {CHECKPOINT_PREFIX + name: v for name, v in checkpoint_values(checkpoint).items()}
    params["blob_hashes"] = hashes
    params["blob_data"] = [new_blobs[h] for h in hashes]
    params["blob_sizes"] = [len(new_blobs[h]) for h in hashes]
    return params


def save_node_params(
    checkpoint: Checkpoint, new_blobs: Mapping[str, str], execution: Execution
) -> dict[str, Any]:
    """The parameters of :data:`SAVE_NODE`."""
    return {**execution_update_params(execution), **_checkpoint_params(checkpoint, new_blobs)}


def start_execution_params(
    execution: Execution, checkpoint: Checkpoint, new_blobs: Mapping[str, str]
) -> dict[str, Any]:
    """The parameters of :data:`START_EXECUTION`."""
    row = {EXECUTION_PREFIX + name: v for name, v in execution_values(execution).items()}
    return {**row, **_checkpoint_params(checkpoint, new_blobs)}
