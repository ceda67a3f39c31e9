"""`wtb audit EXEC|BATCH`: filters, formats, redaction and one-line user errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.test_cli_hostile import one_error_line
from wtb_cli.main import app
from wtb_domain import events as ev
from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec

LINEAR = "tests.contract.workflows:linear"


def wtb(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'wtb.db'}"


def as_json(result: Result) -> list[dict[str, object]]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_an_executions_trail_as_json_and_table_with_severity_and_since(db: str) -> None:
    app = sql_app(db)
    ex = app.controller.run(LINEAR, {"x": 1}, break_before=["b"])
    app.controller.resume(ex.id)
    rows = as_json(wtb("audit", ex.id, "--format", "json", "--db", db))
    assert [r["event_type"] for r in rows] == [
        "execution_started",
        "node_completed",
        "execution_paused",
        "execution_resumed",
        "node_completed",
        "node_completed",
        "execution_completed",
    ]
    assert rows[1]["severity"] == "DEBUG" and rows[1]["node"] == "a"
    assert set(rows[0]) >= {"severity", "batch_id", "execution_id", "node", "message", "details"}
    success = as_json(wtb("audit", ex.id, "--severity", "success", "--format", "json", "--db", db))
    assert [r["event_type"] for r in success] == ["execution_completed"]
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert as_json(wtb("audit", ex.id, "--since", later, "--format", "json", "--db", db)) == []
    table = wtb("audit", ex.id, "--severity", "INFO", "--db", db)
    assert table.exit_code == 0, table.stderr
    assert "execution_resumed" in table.stdout and "node_completed" not in table.stdout


def test_a_batchs_trail_and_redacted_details(db: str) -> None:
    app = sql_app(db)
    service = BatchService(app)
    spec = BatchSpec.parse(
        {
            "workflow": "tests.batch.workflows:linear3",
            "batch_id": "cli-batch",
            "variants": {"a": ["x", "y"]},
            "cases": [{"id": "c1", "input": {"q": "one"}}],
            "evaluators": [{"type": "exact_match"}],
        }
    )
    prepared = service.prepare(spec)
    for g in prepared.groups:
        service.run_group(prepared.payload, g.case_id, list(g.leaf_keys))
    service.finish("cli-batch")
    rows = as_json(wtb("audit", "cli-batch", "--format", "json", "--db", db))
    types = [r["event_type"] for r in rows]
    assert types[0] == "batch_started" and types[-1] == "batch_completed"
    assert "combination_completed" in types and "node_completed" in types
    assert all(r["batch_id"] == "cli-batch" for r in rows)
    table = wtb("audit", "cli-batch", "--severity", "WARNING", "--db", db)
    assert table.exit_code == 0 and "no entries match" in table.stdout


def test_secret_looking_details_never_reach_the_store_or_the_output(db: str) -> None:
    app = sql_app(db)
    ex = app.controller.run(LINEAR, {"x": 1}, break_before=["b"])
    first = app.controller.history(ex.id)[0]
    app.controller.fork(first.id, variant_overrides={"a": "times"}, run=False)
    with app.uow() as uow:
        uow.record([ev.ExecutionForked(ex.id, "p", "cp", ["password"], {"db_password": "hunter2"})])
        uow.commit()
    result = wtb("audit", ex.id, "--format", "json", "--db", db)
    assert "hunter2" not in result.stdout
    forked = [r for r in as_json(result) if r["event_type"] == "execution_forked"]
    assert forked[0]["details"]["variant_overrides"] == {"db_password": "***"}  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nope"], "EXEC|BATCH: no execution or batch 'nope'"),
        (["X", "--severity", "loud"], "--severity: 'loud' is not a level"),
        (["X", "--since", "yesterday"], "--since: 'yesterday' is not an ISO 8601 time"),
        (["X", "--format", "xml"], "--format: 'xml' is not a format"),
    ],
)
def test_bad_input_is_one_line(db: str, args: list[str], fragment: str) -> None:
    line = one_error_line(wtb("audit", *args, "--db", db))
    assert fragment in line
