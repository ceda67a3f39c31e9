"""The store matrix: every contract test runs on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.contract import workflows
from wtb_domain import App, memory_app, sql_app
from wtb_domain.adapters.memory import MemoryStore


@dataclass
class Backend:
    """One store; :meth:`new_app` builds another App on it (as a second process would)."""

    kind: str
    url: str | None = None
    memory: MemoryStore | None = None
    apps: list[App] = field(default_factory=list)

    def new_app(self) -> App:
        if self.kind == "memory":
            assert self.memory is not None
            app = memory_app(self.memory)
        else:
            assert self.url is not None
            app = sql_app(self.url)
        self.apps.append(app)
        return app


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    kind = request.param
    if kind == "memory":
        b = Backend(kind, memory=MemoryStore())
    elif kind == "sqlite":
        b = Backend(kind, url=f"sqlite:///{tmp_path}/wtb.db")
    else:
        b = Backend(kind, url=request.getfixturevalue("pg_url"))
    yield b
    if kind == "sqlite":
        for app in b.apps:
            if app.database is not None:
                app.database.dispose()


@pytest.fixture
def app(backend: Backend) -> App:
    """A fresh App on the parametrised store."""
    return backend.new_app()


@pytest.fixture
def make_app(backend: Backend, app: App):  # type: ignore[no-untyped-def]
    """Build another App on the same store as ``app`` (same MemoryStore object / same URL)."""
    return backend.new_app


@pytest.fixture(autouse=True)
def _no_broken_nodes() -> Iterator[None]:
    workflows.BROKEN.clear()
    yield
    workflows.BROKEN.clear()
