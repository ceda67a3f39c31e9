"""`wtb baseline set/show` in this process (no flow runs): history, formats, user errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from wtb_cli.main import app
from wtb_domain import sql_app
from wtb_domain.model import BatchResult, BatchStatus, BatchTest


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def add_batch(db: str, batch_id: str, status: BatchStatus = BatchStatus.COMPLETED) -> None:
    with sql_app(db).uow() as uow:
        uow.batches.add(BatchTest(batch_id, "m:w", {}, 1, "nightly", status=status))
        uow.results.add_many(
            [BatchResult(batch_id, "e", "a=x", {"a": "x"}, "c1", 0, True, True, 1.0, 5.0)]
        )
        uow.commit()


def test_set_and_show_keep_the_history_newest_first(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'wtb.db'}"
    add_batch(db, "night-1")
    add_batch(db, "night-2")
    assert (
        cli("baseline", "set", "nightly", "night-1", "--note", "first", "--db", db).exit_code == 0
    )
    assert cli("baseline", "set", "nightly", "night-2", "--db", db).exit_code == 0
    table = cli("baseline", "show", "nightly", "--db", db)
    assert table.exit_code == 0, table.output
    assert "baseline nightly: night-2" in table.output
    assert table.output.index("night-2", 30) < table.output.index("night-1")
    assert "first" in table.output
    data = json.loads(cli("baseline", "show", "nightly", "--format", "json", "--db", db).output)
    assert data["current"] == "night-2"
    assert [(h["batch_id"], h["note"]) for h in data["history"]] == [
        ("night-2", None),
        ("night-1", "first"),
    ]


def test_user_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'wtb.db'}"
    add_batch(db, "running", BatchStatus.RUNNING)
    add_batch(db, "failed", BatchStatus.FAILED)
    for batch_id, message in (
        ("missing", "no batch test 'missing'"),
        ("running", "still running"),
        ("failed", "only a completed batch can be a baseline"),
    ):
        result = cli("baseline", "set", "nightly", batch_id, "--db", db)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], lines
    bad_format = cli("baseline", "show", "nightly", "--format", "csv", "--db", db)
    assert bad_format.exit_code == 2 and "--format: use one of table, json" in bad_format.stderr
    empty = cli("baseline", "show", "nightly", "--db", db)
    assert empty.exit_code == 0
    assert "no baseline pinned for 'nightly'" in empty.output
    assert "wtb baseline set nightly BATCH_ID" in empty.output
