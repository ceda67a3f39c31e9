"""Alembic migrations match the ORM metadata, downgrade cleanly, and run from the CLI."""

from __future__ import annotations

import dataclasses
import math
import os
import pprint
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, insert, inspect, text

from tests.conftest import PgDatabases
from wtb_domain.adapters.sql.aggregates import matrix_for_batch
from wtb_domain.adapters.sql.migrate import downgrade, head_revision, upgrade
from wtb_domain.adapters.sql.repositories import BATCHES, RESULTS, SqlResults
from wtb_domain.adapters.sql.tables import METADATA
from wtb_domain.comparison import build_matrix, result_rows
from wtb_domain.model import BatchResult, utcnow

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database of its own (not the shared test database)."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path}/migrations.db")
        yield engine
        engine.dispose()
        return
    dbs: PgDatabases = request.getfixturevalue("pg_databases")
    url = dbs.create()
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        dbs.drop(url)


def schema_diff(engine: Engine) -> list[Any]:
    """Autogenerate's diff between the database and ``METADATA`` (empty when in sync)."""
    with engine.connect() as conn:
        is_pg = conn.dialect.name == "postgresql"

        def include(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
            # ``pgx_*`` indexes are PostgreSQL-only by design (tables.pg_only).
            if type_ == "index" and name and name.startswith("pgx_"):
                return is_pg
            return True

        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include}
        )
        return list(compare_metadata(ctx, METADATA))


def wtb_tables(engine: Engine) -> list[str]:
    return sorted(t for t in inspect(engine).get_table_names() if t.startswith("wtb_"))


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def test_upgrade_head_matches_the_models_and_downgrade_removes_everything(
    empty_engine: Engine,
) -> None:
    assert wtb_tables(empty_engine) == []

    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    expected = sorted(t for t in METADATA.tables if t.startswith("wtb_"))
    assert wtb_tables(empty_engine) == expected

    diff = schema_diff(empty_engine)
    assert diff == [], "migrations and models differ:\n" + pprint.pformat(diff)

    downgrade(empty_engine, "base")
    assert wtb_tables(empty_engine) == []
    assert current_revision(empty_engine) is None

    # ... and the way back up works again from there.
    upgrade(empty_engine)
    assert wtb_tables(empty_engine) == expected


def test_alembic_cli_upgrade_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    env = {**os.environ, "WTB_DATABASE_URL": url}
    proc = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    engine = create_engine(url)
    try:
        assert current_revision(engine) == head_revision()
        assert "wtb_executions" in wtb_tables(engine)
        diff = schema_diff(engine)
        assert diff == [], "migrations and models differ:\n" + pprint.pformat(diff)
    finally:
        engine.dispose()


def test_upgrade_fills_the_rollups_of_results_stored_before_them(empty_engine: Engine) -> None:
    """Results written under revision 0002 (no rollups yet) get their rollups from 0003, so
    the matrix of an old batch is still the matrix of its rows."""
    upgrade(empty_engine, "0002_batch_tests")
    results = [
        BatchResult(
            batch_test_id="old-batch",
            execution_id=f"e-{i}",
            combination_name=f"combo-{i % 3}",
            variant_config={},
            case_id=f"case-{i % 5}",
            repeat=i // 15,
            success=i % 7 != 0,
            passed=i % 2 == 0,
            overall_score=(i % 11) / 10,
            duration_ms=float(i % 13 + 1),
            metrics={"cost_usd": i / 1000, "label": "x"},
        )
        for i in range(60)
    ]
    with empty_engine.begin() as conn:
        conn.execute(
            insert(BATCHES),
            [
                {
                    "id": "old-batch",
                    "name": "old",
                    "workflow_ref": "x:y",
                    "spec": {},
                    "status": "completed",
                    "total": 60,
                    "cancel_requested": False,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
            ],
        )
        conn.execute(
            insert(RESULTS),
            [
                {f.name: getattr(r, f.name) for f in dataclasses.fields(r) if f.name != "leaf_key"}
                for r in results
            ],
        )
    upgrade(empty_engine)
    with empty_engine.connect() as conn:
        matrix = matrix_for_batch(conn, "old-batch")
        assert SqlResults(conn).progress("old-batch", 60).done == 60
    expected = build_matrix(result_rows(results), "old-batch")
    assert [(s.name, s.n, s.n_failed, s.p50_ms, s.p95_ms) for s in matrix.stats] == [
        (s.name, s.n, s.n_failed, s.p50_ms, s.p95_ms) for s in expected.stats
    ]
    for got, want in zip(matrix.stats, expected.stats, strict=True):
        assert math.isclose(got.mean_score, want.mean_score, rel_tol=1e-12)
        assert math.isclose(got.std_score, want.std_score, rel_tol=1e-9)
        assert math.isclose(got.total_cost, want.total_cost, rel_tol=1e-12)
        assert got.metric_means.keys() == want.metric_means.keys() == {"cost_usd"}
