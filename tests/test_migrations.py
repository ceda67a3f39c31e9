"""Alembic migrations match the ORM metadata, downgrade cleanly, and run from the CLI."""

from __future__ import annotations

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
from sqlalchemy import Engine, create_engine, inspect, text

from tests.conftest import PgDatabases
from wtb_domain.adapters.sql.migrate import downgrade, head_revision, upgrade
from wtb_domain.adapters.sql.tables import Base

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
    """Autogenerate's diff between the database and ``Base.metadata`` (empty when in sync)."""
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
        return list(compare_metadata(ctx, Base.metadata))


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
    expected = sorted(t for t in Base.metadata.tables if t.startswith("wtb_"))
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
