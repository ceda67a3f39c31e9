"""LangGraph's own conformance suite (all base capabilities) over SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES

from tests.conftest import PgDatabases
from wtb_domain.adapters.sql.database import Database
from wtb_domain.langgraph.saver import WtbCheckpointSaver


def _run(new_url: Callable[[], str], name: str, drop: Callable[[str], None] | None = None) -> None:
    @checkpointer_test(name=name)
    async def factory() -> AsyncGenerator[WtbCheckpointSaver, None]:
        # A fresh database per capability suite, as the suite expects (it reuses thread ids).
        url = new_url()
        db = Database(url)
        try:
            yield WtbCheckpointSaver(db)
        finally:
            db.engine.dispose()
            if drop is not None:
                drop(url)

    report = asyncio.run(validate(factory, capabilities={c.value for c in BASE_CAPABILITIES}))
    failures = {
        cap: result.failures
        for cap, result in report.results.items()
        if cap in {c.value for c in BASE_CAPABILITIES} and not result.passed
    }
    assert not failures, failures
    for cap in BASE_CAPABILITIES:
        result = report.results[cap.value]
        assert result.detected and result.tests_passed > 0, (cap, result)


def test_conformance_sqlite(tmp_path: Path) -> None:
    files = itertools.count()
    _run(lambda: f"sqlite:///{tmp_path / f'lg{next(files)}.db'}", "WtbCheckpointSaver-sqlite")


def test_conformance_postgres(pg_databases: PgDatabases) -> None:
    _run(pg_databases.create, "WtbCheckpointSaver-postgres", pg_databases.drop)
