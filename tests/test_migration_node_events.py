"""Migration 0012 stores node events as their checkpoints, with their data (SQLite and
PostgreSQL): each node event keeps exactly one audit entry, what was unpublished stays
relayable (under its checkpoint's id), and the downgrade writes the event rows back."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, inspect

from tests.contract.workflows import LINEAR
from tests.test_migrations import empty_engine  # noqa: F401  (the fixture)
from wtb_domain import sql_app
from wtb_domain.adapters.sql.event_store import SqlAudit, SqlOutbox
from wtb_domain.adapters.sql.migrate import downgrade, upgrade
from wtb_domain.ids import new_id

BEFORE = "0011_sqlite_write_triggers"
NODE_ROWS = sa.text(
    "SELECT event_id, execution_id, node, published_at, payload FROM wtb_outbox "
    "WHERE event_type = 'NodeCompleted' ORDER BY created_at, id"
)


def node_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(NODE_ROWS))


def payload(row: Any) -> dict[str, Any]:
    return json.loads(row.payload) if isinstance(row.payload, str) else dict(row.payload)


def checkpoint_ids(engine: Engine, execution_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT id FROM wtb_checkpoints WHERE execution_id = :e AND source = 'node' "
                    "ORDER BY created_at"
                ),
                {"e": execution_id},
            ).scalars()
        )


def test_node_events_move_to_their_checkpoints_and_back(
    empty_engine: Engine,  # noqa: F811
) -> None:
    url = empty_engine.url.render_as_string(hide_password=False)
    app = sql_app(url)  # migrated to the head
    done = app.controller.run(LINEAR, {"x": 1})  # published and marked
    app.flush()
    bare = sql_app(url, audit=False).controller.run(LINEAR, {"x": 2})  # published, no mark
    assert app.database is not None
    app.database.dispose()
    done_cps, bare_cps = (
        checkpoint_ids(empty_engine, done.id),
        checkpoint_ids(empty_engine, bare.id),
    )

    # Down: a row per node event, published where the mark covered it.
    downgrade(empty_engine, BEFORE)
    assert "wtb_node_event_marks" not in inspect(empty_engine).get_table_names()
    rows = node_rows(empty_engine)
    assert [(r.event_id, r.execution_id) for r in rows] == [
        *[(cp, done.id) for cp in done_cps],
        *[(cp, bare.id) for cp in bare_cps],
    ]
    assert [r.published_at is not None for r in rows] == [True] * 3 + [False] * 3
    assert [payload(r)["checkpoint_id"] for r in rows] == done_cps + bare_cps

    # As 0011 wrote them: event ids of their own; a process died before marking b and c of
    # ``done``; a bare run's rows were published; one row's checkpoint is gone.
    orphan = {"e": done.id, "id": new_id()}
    with empty_engine.begin() as conn:
        for r in rows:
            conn.execute(
                sa.text("UPDATE wtb_outbox SET event_id = :new WHERE event_id = :old"),
                {"new": new_id(), "old": r.event_id},
            )
        conn.execute(
            sa.text(
                "UPDATE wtb_outbox SET published_at = NULL WHERE event_type = 'NodeCompleted' "
                "AND execution_id = :e AND node IN ('b', 'c')"
            ),
            {"e": done.id},
        )
        conn.execute(
            sa.text(
                "UPDATE wtb_outbox SET published_at = created_at "
                "WHERE event_type = 'NodeCompleted' AND execution_id = :e"
            ),
            {"e": bare.id},
        )
        conn.execute(
            sa.text(
                "INSERT INTO wtb_outbox (event_id, event_type, payload, created_at, "
                "execution_id, node, severity) SELECT :id, event_type, payload, created_at, "
                "execution_id, 'gone', severity FROM wtb_outbox WHERE event_type = "
                "'NodeCompleted' AND execution_id = :e AND node = 'c'"
            ),
            orphan,
        )
        conn.execute(
            sa.text(
                "UPDATE wtb_outbox SET payload = :p WHERE event_id = :id"
                if conn.dialect.name == "sqlite"
                else "UPDATE wtb_outbox SET payload = CAST(:p AS JSONB) WHERE event_id = :id"
            ),
            {
                "id": orphan["id"],
                "p": json.dumps(
                    {
                        "execution_id": done.id,
                        "node": "gone",
                        "variant": "v",
                        "checkpoint_id": "cp-gone",
                        "duration_ms": 1.0,
                    }
                ),
            },
        )

    # Up: the rows whose checkpoint exists are gone; each event is its checkpoint.
    upgrade(empty_engine)
    assert [r.event_id for r in node_rows(empty_engine)] == [orphan["id"]]
    with empty_engine.connect() as conn:
        for execution, cps in ((done, done_cps), (bare, bare_cps)):
            entries = SqlAudit(conn).entries(execution.id, limit=1000)
            nodes = [e.event_id for e in entries if e.event_type == "node_completed"]
            want = [*cps, orphan["id"]] if execution is done else cps
            assert sorted(nodes) == sorted(want)  # each once
        pending = {r.event.event_id for r in SqlOutbox(conn).pending(10_000)}
    # b and c were unpublished: relayed under their checkpoint ids; the rest is published.
    assert pending == {done_cps[1], done_cps[2], orphan["id"]}

    # Down again: the same rows, published as the marks say.
    downgrade(empty_engine, BEFORE)
    rows = node_rows(empty_engine)
    by_event = {r.event_id: r.published_at is not None for r in rows}
    assert by_event == {
        done_cps[0]: True,
        done_cps[1]: False,
        done_cps[2]: False,
        **dict.fromkeys(bare_cps, True),
        orphan["id"]: False,
    }
    upgrade(empty_engine)
