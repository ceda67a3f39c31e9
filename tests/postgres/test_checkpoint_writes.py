"""Checkpoint writes on PostgreSQL are one statement in autocommit mode: one round trip.

Round trips are counted on the wire with libpq's protocol trace: every request the client
waits for ends with a ``Sync`` (extended protocol) or is a ``Query`` (simple protocol, which
psycopg uses for BEGIN and COMMIT).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from psycopg.pq import Trace

from tests.contract.test_unit_of_work_contract import next_node, started, unstarted
from wtb_domain import sql_app

pytestmark = pytest.mark.postgres


@contextmanager
def traced(dbapi_connection: Any, path: Path) -> Iterator[list[str]]:
    """The client's protocol messages (``F`` lines) sent while the block runs."""
    messages: list[str] = []
    with path.open("w") as f:
        dbapi_connection.pgconn.trace(f.fileno())
        dbapi_connection.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        try:
            yield messages
        finally:
            dbapi_connection.pgconn.untrace()
    messages += [line for line in path.read_text().splitlines() if line.startswith("F")]


def round_trips(messages: list[str]) -> list[str]:
    return [m for m in messages if "\tSync" in m or "\tQuery" in m]


def test_a_node_write_is_one_round_trip_and_leaves_the_default_isolation(
    pg_url: str, tmp_path: Path
) -> None:
    app = sql_app(pg_url, audit=False)
    execution, input_cp = started(app)
    node = next_node(execution, input_cp)

    with app.uow() as uow:
        conn = uow.connection  # type: ignore[attr-defined]
        dbapi = conn.connection.dbapi_connection
        with traced(dbapi, tmp_path / "trace") as messages:
            uow.save_node(node.checkpoint, node.new_blobs, node.execution)
        assert len(round_trips(messages)) == 1, messages
        assert not conn.in_transaction()
        assert dbapi.autocommit is False
        assert conn.get_isolation_level() == conn.default_isolation_level

    with app.uow() as uow:
        assert uow.executions.get(execution.id).head_checkpoint_id == node.checkpoint.id


def test_a_node_write_after_pending_writes_joins_their_transaction(
    pg_url: str, tmp_path: Path
) -> None:
    app = sql_app(pg_url, audit=False)
    execution, input_cp = started(app)
    node = next_node(execution, input_cp)

    with app.uow() as uow:
        uow.executions.get(execution.id)  # a read: the transaction has begun
        dbapi = uow.connection.connection.dbapi_connection  # type: ignore[attr-defined]
        with traced(dbapi, tmp_path / "trace") as messages:
            uow.save_node(node.checkpoint, node.new_blobs, node.execution)
        trips = round_trips(messages)
        assert len(trips) == 4, trips  # update, blobs, checkpoint, COMMIT
        assert '"COMMIT"' in trips[-1]


def test_starting_an_execution_is_one_round_trip(pg_url: str, tmp_path: Path) -> None:
    app = sql_app(pg_url, audit=False)
    execution, cp, new_blobs = unstarted()

    with app.uow() as uow:
        dbapi = uow.connection.connection.dbapi_connection  # type: ignore[attr-defined]
        with traced(dbapi, tmp_path / "trace") as messages:
            uow.start_execution(execution, cp, new_blobs)
        assert len(round_trips(messages)) == 1, messages
        assert dbapi.autocommit is False

    with app.uow() as uow:
        assert uow.executions.get(execution.id).head_checkpoint_id == cp.id
