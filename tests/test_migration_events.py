"""Migration 0010 merges the audit log into the outbox with its data (SQLite and PostgreSQL):
entries keep their subject, severity, message, details and order; events stay relayable; the
downgrade gives the entries back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, inspect

from tests.test_migrations import empty_engine  # noqa: F401  (the fixture)
from wtb_domain.adapters.sql.event_store import SqlAudit, SqlOutbox
from wtb_domain.adapters.sql.migrate import downgrade, upgrade
from wtb_domain.audit import describe
from wtb_domain.events import ExecutionFailed, NodeCompleted, event_type, to_payload
from wtb_domain.model import Severity

BEFORE = "0009_langgraph_saver"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

AUDIT = sa.table(
    "wtb_audit_log",
    *[sa.column(c) for c in ("execution_id", "event_type", "severity", "message")],
    *[sa.column(c) for c in ("created_at", "batch_id", "node", "event_id")],
    sa.column("data", sa.JSON()),
)
OUTBOX = sa.table(
    "wtb_outbox",
    *[sa.column(c) for c in ("event_id", "event_type", "created_at", "published_at")],
    sa.column("payload", sa.JSON()),
)


def _entry_row(event: Any) -> dict[str, Any]:
    e = describe(event)
    return {
        "execution_id": e.execution_id,
        "event_type": e.event_type,
        "severity": e.severity.value,
        "message": e.message,
        "data": e.details,
        "created_at": e.created_at,
        "batch_id": e.batch_id,
        "node": e.node,
        "event_id": e.event_id,
    }


def _outbox_row(event: Any, published: datetime | None) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "event_type": event_type(event),
        "payload": to_payload(event),
        "created_at": event.occurred_at,
        "published_at": published,
    }


def test_entries_and_events_survive_the_merge_and_the_way_back(
    empty_engine: Engine,  # noqa: F811
) -> None:
    upgrade(empty_engine, BEFORE)
    node = NodeCompleted("e1", "a", "x", "cp1", 1.5, batch_id="b1", occurred_at=T0)
    failed = ExecutionFailed(
        "e1", "a", "KeyError", "q", batch_id="b1", occurred_at=T0 + timedelta(seconds=1)
    )
    old = {  # written before 0007: no event id, no outbox row
        "execution_id": "e-old",
        "event_type": "execution_started",
        "severity": "INFO",
        "message": "started wf",
        "data": {"workflow_name": "wf", "api_token": "***"},
        "created_at": T0 - timedelta(days=30),
        "batch_id": None,
        "node": None,
        "event_id": None,
    }
    with empty_engine.begin() as conn:
        conn.execute(sa.insert(AUDIT), [old, _entry_row(node)])
        # ``failed`` has an outbox row and no entry; ``node`` is not published yet.
        conn.execute(sa.insert(OUTBOX), [_outbox_row(node, None), _outbox_row(failed, T0)])
    upgrade(empty_engine)
    assert "wtb_audit_log" not in inspect(empty_engine).get_table_names()
    with empty_engine.connect() as conn:
        entries = SqlAudit(conn).entries()
        assert [e.message for e in entries] == [
            "started wf",
            describe(node).message,
            describe(failed).message,
        ]
        first, second, third = entries
        assert (first.event_type, first.execution_id, first.details) == (
            "execution_started",
            "e-old",
            {"workflow_name": "wf", "api_token": "***"},
        )
        want = describe(node)
        assert (second.event_type, second.severity, second.details) == (
            want.event_type,
            want.severity,
            want.details,
        )
        assert (second.batch_id, second.node, second.event_id) == ("b1", "a", node.event_id)
        assert (third.severity, third.execution_id, third.batch_id) == (Severity.ERROR, "e1", "b1")
        errors = SqlAudit(conn).entries(min_severity=Severity.ERROR)
        assert [e.event_id for e in errors] == [failed.event_id]
        assert [e.message for e in SqlAudit(conn).entries("e-old")] == ["started wf"]
        pending = SqlOutbox(conn).pending()
        assert [r.event for r in pending] == [node]  # the old entry is nothing to relay
        assert SqlOutbox(conn).unpublished_count() == 1

    downgrade(empty_engine, BEFORE)
    with empty_engine.connect() as conn:
        back = conn.execute(
            sa.text(
                "SELECT event_id, message, severity, execution_id FROM wtb_audit_log ORDER BY id"
            )
        ).all()
        outbox = conn.execute(sa.text("SELECT event_id FROM wtb_outbox ORDER BY id")).all()
        columns = {c["name"] for c in inspect(conn).get_columns("wtb_outbox")}
    assert [tuple(r) for r in back] == [
        (None, "started wf", "INFO", "e-old"),
        (node.event_id, describe(node).message, "DEBUG", "e1"),
        (failed.event_id, describe(failed).message, "ERROR", "e1"),
    ]
    assert [r[0] for r in outbox] == [node.event_id, failed.event_id]
    assert "severity" not in columns
