"""A node's exception message may carry a secret (a database URL with its password, an API
key): the stored event rows, audit entries and execution rows keep it masked, on SQLite and
PostgreSQL, and ``wtb audit`` prints it masked."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from wtb_domain import GraphBuilder, NodeContext, sql_app
from wtb_domain.model import Status

TOKEN = secrets.token_hex(8)
PASSWORD = f"pw{TOKEN}Q"
API_KEY = f"sk-{TOKEN}{TOKEN}"
MESSAGE = f"could not reach postgresql://app:{PASSWORD}@db.internal/prod with key {API_KEY}"


def leak(state: dict[str, Any], ctx: NodeContext) -> dict[str, Any]:
    raise RuntimeError(MESSAGE)


WORKFLOW = GraphBuilder("leaky_failure").add_node("call", leak).set_entry("call").build()


def _every_value(url: str) -> str:
    """Every row of every table of the database, as one text."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            chunks = []
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    chunks.append(repr(tuple(row)))
            return "\n".join(chunks)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/wtb.db"
    return str(request.getfixturevalue("pg_url"))


def test_a_failing_nodes_secret_is_stored_nowhere(url: str) -> None:
    app = sql_app(url)
    try:
        execution = app.controller.run(WORKFLOW, {"q": "x"})
        assert execution.status is Status.FAILED
    finally:
        if app.database is not None:
            app.database.dispose()
    stored = _every_value(url)
    assert "db.internal" in stored  # the message is kept, masked
    assert PASSWORD not in stored
    assert API_KEY not in stored

    from wtb_cli.main import app as cli

    out = CliRunner().invoke(cli, ["audit", execution.id, "--db", url, "--format", "json"])
    assert out.exit_code == 0, out.output
    assert "db.internal" in out.output
    assert PASSWORD not in out.output
    assert API_KEY not in out.output
