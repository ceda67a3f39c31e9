"""The CLI under hostile input: user text is never parsed as Rich markup, and each bad input
is one line on stderr with exit code 2 (no traceback, nothing done).

In-process with typer's CliRunner; the batch here is run through BatchService directly (no
Prefect), since only its rendering is under test.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.batch import workflows as wf
from wtb_cli.main import app
from wtb_domain import sql_app
from wtb_domain.adapters.sql.migrate import head_revision
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec

MARKUP = "[/bold] [red]x[/red] [/] \\"
QA = "wtb_domain.demo.qa:workflow"


def wtb(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def one_error_line(result: Result) -> str:
    """The single stderr line of a user error, after checking exit 2 and no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in result.stdout + result.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'wtb.db'}"


def _execution_id(result: Result) -> str:
    first = result.stdout.splitlines()[0]
    assert first.startswith("execution "), result.stdout
    return first.split()[1]


# --- user text is escaped ------------------------------------------------------------------------


def test_markup_in_the_input_prints_as_text_and_status_works_on_it(db: str) -> None:
    run = wtb("run", QA, "--input", json.dumps({"question": MARKUP}), "--db", db)
    assert run.exit_code == 0, (run.stdout, run.stderr)
    assert f"state.question = {json.dumps(MARKUP)}" in run.stdout
    execution = _execution_id(run)

    status = wtb("status", execution, "--db", db)
    assert status.exit_code == 0, status.stderr
    assert json.dumps(MARKUP) in status.stdout

    question = "Who was leading the defenders during the siege?"
    state = json.dumps({"question": question, "note": "[/x]"})
    paused = wtb("run", QA, "--input", state, "--break-before", "answer", "--db", db)
    assert paused.exit_code == 0, paused.stderr
    paused_id = _execution_id(paused)
    history = wtb("history", paused_id, "--db", db)
    assert history.exit_code == 0, history.stderr
    rows = [line.split() for line in history.stdout.splitlines() if line.startswith("│")]
    checkpoints = [row[1] for row in rows if len(row) > 1 and len(row[1]) == 32]
    assert checkpoints, history.stdout
    show = wtb("show", checkpoints[0], "--db", db)
    assert show.exit_code == 0, show.stderr
    assert '"[/x]"' in show.stdout
    fork = wtb("fork", checkpoints[0], "--set", json.dumps({"[/k]": MARKUP}), "--db", db)
    assert fork.exit_code == 0, fork.stderr
    assert f"state.[/k] = {json.dumps(MARKUP)}" in fork.stdout
    diff = wtb("diff", checkpoints[0], checkpoints[-1], "--db", db)
    assert diff.exit_code == 0, diff.stderr
    resume = wtb("resume", paused_id, "--db", db)
    assert resume.exit_code == 0, resume.stderr
    assert "completed" in resume.stdout


def test_markup_in_an_error_message_is_printed_as_text(db: str) -> None:
    line = one_error_line(wtb("status", "[/x][red]", "--db", db))
    assert line == "error: no execution '[/x][red]'"


def test_markup_in_batch_ids_and_labels_prints_as_text(db: str) -> None:
    batch_id = "b-x"  # batch ids are [A-Za-z0-9_.:-]; labels and case ids are free text
    spec = BatchSpec.parse(
        {
            "workflow": wf.LINEAR3,
            "batch_id": batch_id,
            "variants": {"a": [{"variant": "x", "label": "[/bold]x"}, "y"]},
            "cases": [{"id": "[/c]", "input": {"q": "one"}, "expected": {"answer": "one"}}],
            "evaluators": [{"type": "exact_match"}],
        }
    )
    service = BatchService(sql_app(db, audit=False))
    prepared = service.prepare(spec, workers=1)
    for group in prepared.groups:
        service.run_group(prepared.payload, group.case_id, group.leaf_keys)
    service.finish(batch_id)

    matrix = wtb("matrix", batch_id, "--db", db)
    assert matrix.exit_code == 0, matrix.stderr
    assert f"comparison matrix: {batch_id}" in matrix.stdout
    assert "│ [/bold]x" in matrix.stdout or " [/bold]x " in matrix.stdout, matrix.stdout
    for fmt in ("markdown", "csv", "json"):
        other = wtb("matrix", batch_id, "--format", fmt, "--db", db)
        assert other.exit_code == 0, other.stderr
        assert "[/bold]x" in other.stdout
    missing = one_error_line(wtb("batch", "status", "[/x]", "--db", db))
    assert missing == "error: no batch test '[/x]'"
    status = wtb("batch", "status", batch_id, "--db", db)
    assert status.exit_code == 0, status.stderr
    assert f"batch {batch_id} (" in status.stdout
    cancel = wtb("batch", "cancel", batch_id, "--db", db)
    assert cancel.exit_code == 0, cancel.stderr
    assert f"cancel requested for {batch_id}" in cancel.stdout


# --- one line, exit 2 ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["foo://x/y", "not a url", "postgresql+nosuchdriver://h/db"])
def test_unusable_database_url_is_one_line(url: str) -> None:
    line = one_error_line(wtb("status", "E1", "--db", url))
    assert line.startswith("error: --db / WTB_DATABASE_URL: ")
    line = one_error_line(wtb("status", "E1", env={"WTB_DATABASE_URL": url}))
    assert line.startswith("error: --db / WTB_DATABASE_URL: ")


def test_database_url_password_is_masked_in_the_error() -> None:
    line = one_error_line(wtb("status", "E1", "--db", "foo://me:hunter2@h/db"))
    assert "hunter2" not in line
    assert "***" in line


@pytest.mark.parametrize("port", ["abc", "0", "99999", "-1", "80 80"])
def test_bad_metrics_port_is_one_line(port: str, db: str) -> None:
    line = one_error_line(wtb("status", "E1", "--db", db, env={"WTB_METRICS_PORT": port}))
    assert line.startswith("error: WTB_METRICS_PORT: expected a TCP port")


def test_db_upgrade_to_an_unknown_revision_is_one_line(db: str) -> None:
    line = one_error_line(wtb("db", "upgrade", "nosuchrev", "--db", db))
    assert "revision: Can't locate revision identified by 'nosuchrev'" in line
    assert "0001_core" in line


@pytest.mark.parametrize("older", ["0001", "0001_core", "base", "-1"])
def test_db_upgrade_to_an_older_revision_says_newer_and_changes_nothing(
    db: str, tmp_path: Path, older: str
) -> None:
    assert wtb("db", "upgrade", "--db", db).exit_code == 0
    line = one_error_line(wtb("db", "upgrade", "--db", db, "--", older))
    assert f"is at revision {head_revision()}, newer than {older}" in line
    assert "does not downgrade, nothing was changed" in line
    with sqlite3.connect(tmp_path / "wtb.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (head_revision(),)
        ]
    again = wtb("db", "upgrade", "head", "--db", db)
    assert again.exit_code == 0
    assert f"is at {head_revision()}" in again.stdout


@pytest.mark.parametrize("revision", ["", "  "])
def test_db_upgrade_to_an_empty_revision_is_one_line(db: str, revision: str) -> None:
    line = one_error_line(wtb("db", "upgrade", revision, "--db", db))
    assert line == "error: revision: empty; use head or a revision id such as 0001"


def test_db_upgrade_step_by_step_reports_the_revision_reached(db: str) -> None:
    first = wtb("db", "upgrade", "0001", "--db", db)
    assert first.exit_code == 0, first.stderr
    assert "is at 0001_core" in first.stdout


@pytest.mark.parametrize("command", [["batch", "run"], ["demo"]])
def test_bad_format_is_refused_before_a_batch_runs(
    command: list[str], tmp_path: Path, db: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"workflow": wf.LINEAR3, "cases": [{"id": "c", "input": {}}]}))
    args = [*command, str(spec)] if command == ["batch", "run"] else command
    line = one_error_line(wtb(*args, "--format", "bogus", "--db", db))
    assert line == "error: --format: unknown format 'bogus'; use one of table, markdown, csv, json"
    assert not (tmp_path / "wtb.db").exists()  # nothing was registered, no flow started


def test_bad_database_url_is_refused_before_a_batch_runs(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"workflow": wf.LINEAR3, "cases": [{"id": "c", "input": {}}]}))
    line = one_error_line(wtb("batch", "run", str(spec), "--db", "foo://x/y"))
    assert line.startswith("error: --db / WTB_DATABASE_URL: 'foo://x/y'")


@pytest.mark.parametrize("ref", ["sys:exit", "builtins:exit", "os:abort", "os:_exit"])
def test_stdlib_workflow_refs_are_refused(ref: str, db: str) -> None:
    line = one_error_line(wtb("run", ref, "--input", "{}", "--db", db))
    assert line.startswith(f"error: workflow: {ref!r} is in the standard library")


def test_user_code_that_exits_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: str
) -> None:
    (tmp_path / "exiting_workflows.py").write_text(
        "import sys\n\ndef workflow():\n    sys.exit(0)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("exiting_workflows", None)
    line = one_error_line(wtb("run", "exiting_workflows:workflow", "--input", "{}", "--db", db))
    assert "user code called exit(0)" in line


def test_a_stdlib_custom_evaluator_is_refused_before_a_batch_runs(tmp_path: Path, db: str) -> None:
    spec = tmp_path / "spec.yaml"
    evaluators = [{"type": "exact_match"}, {"type": "custom", "function": "os:system"}]
    spec.write_text(
        yaml.safe_dump(
            {"workflow": wf.LINEAR3, "cases": [{"id": "c", "input": {}}], "evaluators": evaluators}
        )
    )
    line = one_error_line(wtb("batch", "run", str(spec), "--db", db))
    assert line.startswith("error: evaluators[1].function: 'os:system': ")
    assert not (tmp_path / "wtb.db").exists()  # refused before any batch was registered
