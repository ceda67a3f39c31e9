"""The SQLite write gate: one write transaction per process and file, released however the
transaction ends (commit, rollback, a failed BEGIN, a closed connection)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from wtb_domain.adapters.sql import database as dbm
from wtb_domain.adapters.sql.database import Database
from wtb_domain.adapters.sql.sqlite_gate import GatedConnection, gate_for


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setattr(dbm, "SQLITE_BUSY_TIMEOUT_MS", 300)  # failures come fast
    database = Database(f"sqlite:///{tmp_path / 'gate.db'}", migrate=False)
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))
    yield database
    database.dispose()


def gate_locked(db: Database) -> bool:
    gate = gate_for(db.engine.url.database)
    assert gate is not None
    return gate.lock.locked()


def test_connections_are_gated_and_share_the_file_gate(db: Database, tmp_path: Path) -> None:
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, GatedConnection)
        assert raw.wtb_gate is gate_for(str(tmp_path / "gate.db"))
        assert raw.wtb_gate is gate_for(str(tmp_path / "." / "gate.db"))  # same file
    assert gate_for(":memory:") is None and gate_for(None) is None


def test_a_second_thread_waits_for_the_commit(db: Database) -> None:
    order: list[str] = []
    holding, b_trying = threading.Event(), threading.Event()

    def a() -> None:
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO t (who) VALUES ('a')"))
            holding.set()
            assert b_trying.wait(5)
            # b is queued on the gate (it cannot have begun: we hold it)
            order.append("a commits")

    def b() -> None:
        assert holding.wait(5)
        b_trying.set()
        with db.engine.begin() as conn:
            order.append("b began")
            conn.execute(text("INSERT INTO t (who) VALUES ('b')"))

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert order == ["a commits", "b began"]
    assert not gate_locked(db)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t ORDER BY id")).scalars().all() == ["a", "b"]


def test_released_on_rollback_and_on_error(db: Database) -> None:
    with db.engine.connect() as conn:
        conn.execute(text("INSERT INTO t (who) VALUES ('x')"))
        assert gate_locked(db)
        conn.rollback()
        assert not gate_locked(db)
    with pytest.raises(ZeroDivisionError), db.engine.begin() as conn:
        conn.execute(text("INSERT INTO t (who) VALUES ('y')"))
        raise ZeroDivisionError
    assert not gate_locked(db)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0


def test_released_when_begin_fails_on_another_processs_lock(db: Database) -> None:
    """Another process (a raw connection: not gated) holds SQLite's write lock: BEGIN
    IMMEDIATE fails after the busy timeout and the gate is free again."""
    other = sqlite3.connect(str(db.engine.url.database), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked"), db.engine.begin() as conn:
            conn.execute(text("SELECT 1"))
        assert not gate_locked(db)
    finally:
        other.rollback()
        other.close()
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO t (who) VALUES ('after')"))
    assert not gate_locked(db)


def test_released_when_the_connection_is_invalidated(db: Database) -> None:
    conn = db.engine.connect()
    conn.execute(text("INSERT INTO t (who) VALUES ('lost')"))
    assert gate_locked(db)
    conn.invalidate()  # closes the DBAPI connection: SQLite rolls back
    assert not gate_locked(db)
    conn.close()
    with db.engine.connect() as fresh:
        assert fresh.execute(text("SELECT count(*) FROM t")).scalar() == 0


def test_a_nested_transaction_in_one_thread_fails_instead_of_hanging(db: Database) -> None:
    """Two transactions at once in one thread could never both write (SQLite would refuse
    after its busy timeout too): the second fails after the timeout, naming the cause."""
    with db.engine.begin() as outer:
        outer.execute(text("INSERT INTO t (who) VALUES ('outer')"))
        locked = pytest.raises(OperationalError, match="another transaction of this process")
        with locked, db.engine.begin() as inner:
            inner.execute(text("SELECT 1"))
    assert not gate_locked(db)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t")).scalars().all() == ["outer"]


def test_many_threads_all_commit(db: Database) -> None:
    def work(k: int) -> None:
        for i in range(25):
            with db.engine.begin() as conn:
                conn.execute(text("INSERT INTO t (who) VALUES (:w)"), {"w": f"{k}-{i}"})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(DISTINCT who) FROM t")).scalar() == 200
    assert not gate_locked(db)
