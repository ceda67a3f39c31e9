"""SQLite: a read-only unit of work takes a deferred transaction, not the write lock.

A read nested inside (or concurrent with) a write unit of work in the same process must not
wait for the writer's ``BEGIN IMMEDIATE`` lock; WAL gives it one consistent snapshot.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from tests.batch import workflows as wf
from wtb_domain.adapters.sql import database as database_module
from wtb_domain.adapters.sql.database import Database
from wtb_domain.adapters.sql.uow import SqlUnitOfWork
from wtb_domain.bootstrap import sql_app
from wtb_domain.errors import NotFoundError, StoreError
from wtb_domain.model import Status


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    # A short busy timeout: a reader that does wait for the write lock fails at once
    # (StoreError "database is locked") instead of after 30 s.
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    return Database(f"sqlite:///{tmp_path / 'wtb.db'}")


def test_a_read_uow_does_not_wait_for_a_write_transaction(db: Database) -> None:
    with SqlUnitOfWork(db.engine) as writer:
        writer.connection.execute(text("SELECT 1 FROM wtb_executions LIMIT 1"))  # holds the lock
        with (
            SqlUnitOfWork(db.engine, read_only=True) as reader,
            pytest.raises(NotFoundError),  # the read ran (no "database is locked")
        ):
            reader.executions.get("nope")


def test_the_controller_reads_while_a_write_transaction_is_open(db: Database) -> None:
    app = sql_app(db.url)
    e = app.controller.run(wf.LINEAR3, {"q": "one"})
    with SqlUnitOfWork(db.engine) as writer:
        writer.connection.execute(text("SELECT 1 FROM wtb_executions LIMIT 1"))
        assert app.controller.get(e.id).status is Status.COMPLETED
        assert len(app.controller.history(e.id)) == 4
        assert app.controller.state(e.id)["answer"]


def test_a_write_uow_still_takes_the_write_lock(db: Database) -> None:
    with SqlUnitOfWork(db.engine) as writer:
        writer.connection.execute(text("SELECT 1 FROM wtb_executions LIMIT 1"))
        with pytest.raises(StoreError, match="locked"), SqlUnitOfWork(db.engine) as other:
            other.connection.execute(text("SELECT 1 FROM wtb_executions LIMIT 1"))


def test_a_read_uow_sees_one_snapshot(db: Database) -> None:
    """A row committed after the read transaction's first read is not seen by it (WAL)."""
    with SqlUnitOfWork(db.engine, read_only=True) as reader:
        count = "SELECT count(*) FROM alembic_version"
        before = reader.connection.execute(text(count)).scalar_one()
        with SqlUnitOfWork(db.engine) as writer:
            writer.connection.execute(text("INSERT INTO alembic_version VALUES ('extra')"))
            writer.commit()
        assert reader.connection.execute(text(count)).scalar_one() == before
    with SqlUnitOfWork(db.engine, read_only=True) as later:
        assert later.connection.execute(text(count)).scalar_one() == before + 1
