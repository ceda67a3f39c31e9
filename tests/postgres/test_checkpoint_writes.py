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
from sqlalchemy import text

from tests.contract.test_unit_of_work_contract import next_node, started, unstarted
from tests.postgres.conftest import forget_database, sized_sql_app, small_workflow
from wtb_domain import Status, sql_app
from wtb_domain.adapters.sql.database import PREPARED_ENV

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


@pytest.mark.parametrize("setting", ["off", "on"])
def test_prepared_statements_only_when_asked(
    pg_url: str, setting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off (the default, PgBouncer-safe): every node write is parsed and planned again. On:
    psycopg prepares the repeated node write on the server and runs it by name."""
    monkeypatch.setenv(PREPARED_ENV, setting)
    url = f"{pg_url}?application_name=wtb-prepared-{setting}"  # a Database of its own
    app = sized_sql_app(url, pool_size=1)
    try:
        workflow = small_workflow()
        for k in range(8):
            assert app.controller.run(workflow, {"x": k}).status is Status.COMPLETED
        assert app.database is not None
        with app.database.engine.connect() as conn:  # the pool's connection that ran them
            prepared = (
                conn.execute(
                    text("SELECT statement FROM pg_prepared_statements WHERE from_sql = false")
                )
                .scalars()
                .all()
            )
    finally:
        forget_database(url)
    if setting == "off":
        assert prepared == []
    else:
        assert any("wtb_checkpoints" in s and "UPDATE wtb_executions" in s for s in prepared)
