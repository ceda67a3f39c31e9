"""Statements compiled once (dialect upserts have no SQLAlchemy cache key): the same rows
as ``connection.execute``, values bound and converted the same way, compiled only once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, event
from sqlalchemy.dialects import sqlite

from wtb_domain.adapters.sql import precompiled

MD = MetaData()
T = Table("t", MD, Column("k", String, primary_key=True), Column("n", Integer), Column("x", Float))
UPSERT = sqlite.insert(T)
UPSERT = UPSERT.on_conflict_do_update(
    index_elements=["k"], set_={"n": T.c.n + UPSERT.excluded.n, "x": UPSERT.excluded.x}
)


def test_upserts_match_plain_execute_and_compile_once(tmp_path: Path) -> None:
    assert UPSERT._generate_cache_key() is None  # why the module exists
    rows = [{"k": "a", "n": 1, "x": 1}, {"k": "b'; DROP TABLE t; --", "n": 2, "x": 0.5}]
    results = []
    for use in ("plain", "precompiled"):
        engine = create_engine(f"sqlite:///{tmp_path / use}.db")
        MD.create_all(engine)
        seen: list[str] = []
        event.listen(engine, "before_cursor_execute", lambda *a, seen=seen: seen.append(a[2]))
        with engine.begin() as conn:
            for _ in range(3):
                if use == "plain":
                    conn.execute(UPSERT, rows)
                    conn.execute(UPSERT, rows[:1])
                else:
                    precompiled.execute_many(conn, UPSERT, rows)
                    precompiled.execute_many(conn, UPSERT, rows[:1])
            assert len(seen) == 6 and len(set(seen)) == 1 and "?" in seen[0]
            results.append(conn.execute(T.select().order_by(T.c.k)).all())
        engine.dispose()
    assert results[0] == results[1]
    assert results[1] == [("a", 6, 1.0), ("b'; DROP TABLE t; --", 6, 0.5)]
    keys = [k for k in precompiled._cache if k[0] == id(UPSERT)]
    assert len(keys) == 1  # compiled once for those keys on this dialect
