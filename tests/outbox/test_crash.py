"""SIGKILL between commit and publish: nothing is lost, nothing is applied twice.

A subprocess runs a workflow; a bus subscriber stops it (and the test SIGKILLs it by PID)
once the execution's last write committed, before (or just after) an idempotent consumer
applied its event and before the process marked the events published. A new process's relay
then publishes what the outbox holds: every event of the execution reaches the consumer's
effect exactly once, and the outbox is drained.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.outbox.child import APPLIED
from wtb_domain import sql_app
from wtb_domain.adapters.sql.event_store import SqlAudit, SqlOutbox

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = (
        f"sqlite:///{tmp_path}/wtb.db"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    app = sql_app(url)  # migrate
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {APPLIED} "
                "(consumer VARCHAR(128), event_id VARCHAR(64))"
            )
        )
    yield url
    engine.dispose()
    if app.database is not None:
        app.database.dispose()


def child(url: str, mode: str, consumer: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.outbox.child", url, mode, consumer],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def outbox_of(url: str, execution_id: str) -> dict[str, bool]:
    """Event id -> published, for the events of one execution, as the store reports them
    (event rows and node events read from their checkpoints)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            entries = SqlAudit(conn).entries(execution_id=execution_id, limit=10_000)
            pending = {r.event.event_id for r in SqlOutbox(conn).pending(limit=100_000)}
    finally:
        engine.dispose()
    assert all(e.event_id for e in entries)
    return {str(e.event_id): e.event_id not in pending for e in entries}


def applied(url: str, consumer: str) -> Counter[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT event_id FROM {APPLIED} WHERE consumer = :c"),
                {"c": consumer},
            ).all()
    finally:
        engine.dispose()
    return Counter(r.event_id for r in rows)


@pytest.mark.parametrize("mode", ["die-before-apply", "die-after-apply"])
def test_killed_between_commit_and_publish_loses_nothing_and_applies_nothing_twice(
    db_url: str, mode: str
) -> None:
    consumer = f"counter-{mode}"
    proc = child(db_url, mode, consumer)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[:1] == ["COMMITTED"], line
        execution_id = line[1]
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    before = outbox_of(db_url, execution_id)
    assert len(before) == 5  # started, 3 nodes, completed: all committed with their writes
    assert not all(before.values())  # the killed process did not mark everything published
    seen_before = applied(db_url, consumer)
    if mode == "die-before-apply":
        assert len(seen_before) == 4  # the completion's event never reached the consumer
    else:
        assert len(seen_before) == 5  # it did, but was not marked published

    relay = child(db_url, "relay", consumer)
    out, _ = relay.communicate(timeout=120)
    assert relay.returncode == 0, out
    assert int(out.split()[-1]) >= 1

    after = outbox_of(db_url, execution_id)
    assert set(after) == set(before) and all(after.values())  # drained
    # (On PostgreSQL the database is shared with other tests: the relay may publish their
    # leftovers too; only this execution's events are counted.)
    counts = {i: n for i, n in applied(db_url, consumer).items() if i in after}
    assert set(counts) == set(after)  # nothing lost
    assert set(counts.values()) == {1}  # nothing applied twice
