"""A node's write on PostgreSQL as one statement: its new blobs, its checkpoint, the head move.

Run in autocommit mode, the statement is its own transaction, so the node costs one round trip
instead of BEGIN, three statements and COMMIT. The inserts are data-modifying CTEs of the
execution's UPDATE; all parts run against one snapshot and foreign keys are checked at the end
of the statement, so their order does not matter. An unknown execution fails the checkpoint's
foreign key and nothing is written.

Running it twice with the same checkpoint is a no-op the second time (``ON CONFLICT DO
NOTHING``; the update sets the same values): a retry after an ambiguous commit is safe.
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
    UPDATE_EXECUTION,
    checkpoint_values,
    execution_update_params,
)
from wtb_domain.model import Checkpoint, Execution

CHECKPOINT_PREFIX = "checkpoint_"


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


def save_node_params(
    checkpoint: Checkpoint, new_blobs: Mapping[str, str], execution: Execution
) -> dict[str, Any]:
    """The parameters of :data:`SAVE_NODE`.

    Blobs go in hash order: concurrent writers of the same values then take their locks in
    the same order and cannot deadlock on each other.
    """
    hashes = sorted(new_blobs)
    params = execution_update_params(execution)
    params["blob_hashes"] = hashes
    params["blob_data"] = [new_blobs[h] for h in hashes]
    params["blob_sizes"] = [len(new_blobs[h]) for h in hashes]
    for name, value in checkpoint_values(checkpoint).items():
        params[CHECKPOINT_PREFIX + name] = value
    return params
