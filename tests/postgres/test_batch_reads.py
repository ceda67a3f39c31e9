"""The read side of a running batch: ``wtb batch status`` and ``wtb matrix`` read the batch
row and the rollups, never the result rows (a 100,000-result batch answers as fast as a small
one), and their processes import neither Prefect, Ray, Alembic nor the planning modules.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.postgres.conftest import forget_database
from tests.postgres.test_aggregates import store_batch, synthetic
from wtb_domain import App, sql_app
from wtb_domain.batch import reads
from wtb_domain.batch.service import BatchService

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
# Modules a read-only command has no use for: the flow runner, the cluster, the HTTP client of
# `wtb prefect`, the migration tool (the schema is at head), the planner and its spec models,
# the engine and the workflow models (nothing runs), the in-memory store, YAML (no spec is
# read), the ORM (the stores are SQLAlchemy Core), LangGraph, regression and integrity checks,
# the Prometheus client (nothing is recorded, served or pushed), and the parts of rich the
# output does not use (the progress bar, tables, the emoji table).
# pydantic is not listed: typer itself coerces every parameter through a pydantic TypeAdapter;
# nor is rich's console, which prints the output.
NOT_IMPORTED = (
    "prefect",
    "prometheus_client",
    "rich.progress",
    "rich.table",
    "rich._emoji_codes",
    "ray",
    "httpx",
    "alembic",
    "langgraph",
    "yaml",
    "sqlalchemy.orm",
    "wtb_domain.batch.service",
    "wtb_domain.batch.spec",
    "wtb_domain.batch.plan",
    "wtb_domain.evaluation",
    "wtb_domain.engine",
    "wtb_domain.workflow",
    "wtb_domain.adapters.memory",
    "wtb_domain.recording.recorder",
    "wtb_domain.regression",
    "wtb_domain.integrity",
)
# `wtb batch status` computes no statistics: numpy loads with the matrix only.
NOT_IMPORTED_BY_STATUS = ("numpy", "wtb_domain.comparison.summary")
# The PostgreSQL driver loads with a PostgreSQL URL only.
NOT_IMPORTED_ON_SQLITE = ("psycopg",)
# `wtb --help` opens no store: no SQLAlchemy, no metrics, no statistics.
NOT_IMPORTED_BY_HELP = ("sqlalchemy", "prometheus_client", "numpy", "wtb_domain.bootstrap")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[App, str]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wtb.db'}"
        yield sql_app(url, audit=False), url
        forget_database(url)
    else:
        url = request.getfixturevalue("pg_url")
        yield sql_app(url, audit=False), url


def recorded(app: App, fn: Any) -> tuple[Any, list[str]]:
    assert app.database is not None
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(app.database.engine, "before_cursor_execute", record)
    try:
        return fn(), statements
    finally:
        event.remove(app.database.engine, "before_cursor_execute", record)


def test_status_and_progress_read_the_batch_row_and_the_rollups_only(
    store: tuple[App, str],
) -> None:
    app, _ = store
    results = synthetic(f"reads-{secrets.token_hex(5)}", 3)
    batch_id = store_batch(app, results)
    failed = sum(not r.success for r in results)
    progress, statements = recorded(app, lambda: reads.batch_progress(app, batch_id))
    assert (progress.total, progress.done, progress.failed) == (len(results), len(results), failed)
    batch, more = recorded(app, lambda: reads.batch_status(app, batch_id))
    assert batch.id == batch_id and batch.total == len(results)
    for sql in statements + more:
        assert "wtb_batch_test_results" not in sql, sql  # no result row is read
        assert batch_id not in sql  # bound parameters only
    assert any("wtb_result_rollups" in s for s in statements)
    service = BatchService(app)  # the service answers the same (it delegates)
    assert service.progress(batch_id) == progress


def run_cli_alone(args: list[str], watch: list[str]) -> dict[str, Any]:
    """One command in a fresh process: its exit code, output and which ``watch`` modules
    it imported (from the CLI's import to the command's exit)."""
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from wtb_cli.main import app\n"
        "r = CliRunner().invoke(app, json.loads(sys.argv[1]))\n"
        "watch = json.loads(sys.argv[2])\n"
        "imported = [m for m in watch if m in sys.modules]\n"
        "print(json.dumps({'code': r.exit_code, 'out': r.output, 'imported': imported}))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(args), json.dumps(watch)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    got: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return got


def test_cli_status_and_matrix_import_only_the_read_side(store: tuple[App, str]) -> None:
    """Each command in a fresh process against a migrated store: right output, and the heavy
    modules it does not need stay unimported (their start-up is most of its time)."""
    app, url = store
    results = synthetic(f"reads-cli-{secrets.token_hex(5)}", 5)
    batch_id = store_batch(app, results)
    on_sqlite = list(NOT_IMPORTED_ON_SQLITE) if url.startswith("sqlite") else []
    status = run_cli_alone(
        ["batch", "status", batch_id, "--db", url],
        [*NOT_IMPORTED, *NOT_IMPORTED_BY_STATUS, *on_sqlite],
    )
    matrix = run_cli_alone(
        ["matrix", batch_id, "--db", url, "--format", "csv"], [*NOT_IMPORTED, *on_sqlite]
    )
    assert status["code"] == 0, status
    assert matrix["code"] == 0, matrix
    failed = sum(not r.success for r in results)
    assert (
        f"{len(results)} of {len(results)} results, {failed} failed, 0 pending" in (status["out"])
    )
    combos = {r.combination_name for r in results}
    rows = matrix["out"].strip().splitlines()  # one line per row, however long
    assert rows[0].startswith("name,rank,n,") and len(rows) == 1 + len(combos), rows
    assert sorted(next(csv.reader([r]))[0] for r in rows[1:]) == sorted(combos)
    assert status["imported"] == [], status["imported"]
    assert matrix["imported"] == [], matrix["imported"]


def test_the_import_guard_sees_what_a_command_imports(store: tuple[App, str]) -> None:
    """The guard can fail: the matrix's statistics (numpy) and, on PostgreSQL, the driver are
    reported as imported when the command does need them."""
    app, url = store
    batch_id = store_batch(app, synthetic(f"reads-guard-{secrets.token_hex(5)}", 2))
    watch = ["numpy", "wtb_domain.comparison.summary", "psycopg", "sqlalchemy"]
    matrix = run_cli_alone(["matrix", batch_id, "--db", url, "--format", "csv"], watch)
    assert matrix["code"] == 0, matrix
    expected = [m for m in watch if m != "psycopg" or not url.startswith("sqlite")]
    assert matrix["imported"] == expected


def test_cli_help_imports_no_store() -> None:
    """``wtb --help`` lists the commands without loading SQLAlchemy or the metrics client (the
    URL masking and ``wtb metrics serve`` import them when they run)."""
    besides_rich = [m for m in NOT_IMPORTED if not m.startswith("rich")]  # typer draws help
    got = run_cli_alone(["--help"], [*besides_rich, *NOT_IMPORTED_BY_HELP])  # with rich tables
    assert got["code"] == 0, got
    assert "matrix" in got["out"] and "batch" in got["out"]
    assert got["imported"] == [], got["imported"]
