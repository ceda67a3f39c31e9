"""Migration 0011: the SQLite write view and its triggers (SQLite only), and its downgrade."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from tests.conftest import PgDatabases
from wtb_domain.adapters.sql.heads import shipped_head
from wtb_domain.adapters.sql.migrate import downgrade, head_revision, upgrade
from wtb_domain.adapters.sql.sqlite_writes import LAYOUTS, VIEW, WIDTH

REVISION = "0011_sqlite_write_triggers"


def _objects(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT name, type FROM sqlite_master WHERE name LIKE :v"), {"v": f"{VIEW}%"}
        )
        return {name: type_ for name, type_ in rows}


def test_the_head_is_read_from_the_files_as_alembic_sees_it() -> None:
    assert shipped_head() == head_revision()


def test_upgrade_creates_the_view_and_one_trigger_per_kind_and_downgrade_drops_them(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/m.db")
    try:
        upgrade(engine, REVISION)
        expected = {VIEW: "view", **{f"{VIEW}_{kind}": "trigger" for kind in LAYOUTS}}
        assert _objects(engine) == expected
        columns = [c["name"] for c in inspect(engine).get_columns(VIEW)]
        assert columns == ["kind", *(f"c{i}" for i in range(WIDTH))]
        assert max(len(layout) for layout in LAYOUTS.values()) <= WIDTH

        downgrade(engine, "0010_events_one_row")
        assert _objects(engine) == {}
        upgrade(engine, REVISION)
        assert _objects(engine) == expected
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_on_postgresql_the_revision_creates_nothing(pg_databases: PgDatabases) -> None:
    url = pg_databases.create()
    engine = create_engine(url)
    try:
        upgrade(engine, REVISION)
        assert VIEW not in inspect(engine).get_view_names()
        downgrade(engine, "0010_events_one_row")
        upgrade(engine)
    finally:
        engine.dispose()
        pg_databases.drop(url)
