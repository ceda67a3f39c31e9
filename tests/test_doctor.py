"""``wtb doctor``: each kind of corruption, made with raw SQL on SQLite and PostgreSQL, is
found with its count and, where that is safe, repaired."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update
from typer.testing import CliRunner

from tests.batch.test_flow import linear_spec
from tests.contract.workflows import LINEAR
from wtb_cli.main import app as cli
from wtb_domain import sql_app
from wtb_domain.adapters.sql.database import database_for
from wtb_domain.adapters.sql.integrity import SqlIntegrityView
from wtb_domain.adapters.sql.node_events import NODE_EVENT
from wtb_domain.adapters.sql.tables import CHECKPOINTS, EXECUTIONS, NODE_EVENT_MARKS
from wtb_domain.batch.service import BatchService
from wtb_domain.bootstrap import App
from wtb_domain.errors import StoreError
from wtb_domain.events import Event
from wtb_domain.integrity import INTERRUPTED, IntegrityChecker, Report, default_checks
from wtb_domain.model import Status

BATCH = "doc-batch"
CLEAN = {
    "checkpoint_parents",
    "execution_heads",
    "missing_blobs",
    "orphan_blobs",
    "result_executions",
    "rollups",
    "stuck_running",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wtb.db'}"
        return
    dbs = request.getfixturevalue("pg_databases")
    created = dbs.create()
    yield created
    database_for(created).dispose()
    dbs.drop(created)


@pytest.fixture
def wtb(url: str) -> App:
    """Two plain executions and a small batch (results, rollups) in a fresh database."""
    app = sql_app(url, audit=False)
    app.controller.run(LINEAR, {"x": 1})
    app.controller.run(LINEAR, {"x": 2})
    service = BatchService(app)
    prepared = service.prepare(linear_spec(url, BATCH), workers=1)
    for group in prepared.groups:
        service.run_group(prepared.payload, group.case_id, list(group.leaf_keys))
    service.finish(BATCH)
    return app


def engine(app: App) -> Engine:
    assert app.database is not None
    return app.database.engine


def sql(app: App, statement: str, **params: Any) -> list[Any]:
    with engine(app).begin() as conn:
        result = conn.execute(text(statement), params)
        return list(result) if result.returns_rows else []


def check(app: App, repair: bool = False, **kwargs: Any) -> Report:
    checker = IntegrityChecker(default_checks(**kwargs))
    return checker.run(SqlIntegrityView(engine(app)), repair=repair)


def by_name(report: Report) -> dict[str, Any]:
    return {f.check: f for f in report.findings}


def problems(report: Report) -> dict[str, int]:
    return {f.check: f.count for f in report.findings if f.count}


def test_a_healthy_database_is_clean(wtb: App) -> None:
    report = check(wtb)
    assert report.clean and report.exit_code == 0
    found = by_name(report)
    assert not any(f.skipped for f in found.values())
    assert {name for name, f in found.items() if f.count == 0} == {*CLEAN, "outbox"}


def test_the_outbox_check_is_skipped_without_its_table(wtb: App) -> None:
    sql(wtb, "DROP TABLE wtb_outbox")
    outbox = by_name(check(wtb))["outbox"]
    assert outbox.skipped and "no outbox table" in outbox.note


def test_broken_chains_are_found_and_reported_only(wtb: App) -> None:
    first, second = (r[0] for r in sql(wtb, "SELECT id FROM wtb_executions ORDER BY id")[:2])
    node_cp = sql(
        wtb,
        "SELECT id FROM wtb_checkpoints WHERE execution_id = :e AND parent_id IS NOT NULL "
        "ORDER BY step DESC",
        e=first,
    )[0][0]
    other_cp = sql(wtb, "SELECT id FROM wtb_checkpoints WHERE execution_id = :e", e=second)[0][0]
    sql(wtb, "UPDATE wtb_checkpoints SET parent_id = 'gone' WHERE id = :c", c=node_cp)
    sql(wtb, "UPDATE wtb_executions SET head_checkpoint_id = :c WHERE id = :e", c=other_cp, e=first)
    sql(wtb, "INSERT INTO wtb_state_blobs (hash, data, size) VALUES ('f00d', '1', 1)")
    sql(wtb, "INSERT INTO wtb_state_blobs (hash, data, size) VALUES ('beef', '2', 1)")

    report = check(wtb, repair=True)
    assert problems(report) == {"checkpoint_parents": 1, "execution_heads": 1, "orphan_blobs": 2}
    found = by_name(report)
    assert found["checkpoint_parents"].samples[0].startswith(f"{node_cp}: parent gone missing")
    assert f"belongs to execution {second}" in found["execution_heads"].samples[0]
    assert found["orphan_blobs"].remaining == 2  # never deleted
    assert "concurrent writer" in found["orphan_blobs"].note
    assert report.exit_code == 1


def test_a_missing_blob_and_results_of_unknown_executions_are_found(wtb: App) -> None:
    # The blob of one checkpoint's "x" value: every checkpoint that refers to it is counted.
    (manifest,) = sql(wtb, "SELECT manifest FROM wtb_checkpoints ORDER BY id")[0]
    if isinstance(manifest, str):
        manifest = json.loads(manifest)
    digest = manifest["x"]
    refs = sum(
        (json.loads(m) if isinstance(m, str) else m).get("x") == digest
        for (m,) in sql(wtb, "SELECT manifest FROM wtb_checkpoints")
    )
    sql(wtb, "DELETE FROM wtb_state_blobs WHERE hash = :h", h=digest)
    result_id = sql(wtb, "SELECT min(id) FROM wtb_batch_test_results")[0][0]
    sql(wtb, "UPDATE wtb_batch_test_results SET execution_id = 'ghost' WHERE id = :i", i=result_id)

    report = check(wtb, repair=True)
    assert problems(report) == {"missing_blobs": refs, "result_executions": 1}
    found = by_name(report)
    assert "execution ghost missing" in found["result_executions"].samples[0]
    assert found["result_executions"].samples[0].startswith(BATCH)
    assert report.exit_code == 1


def matrix_dict(app: App) -> dict[str, Any]:
    return BatchService(app).matrix(BATCH).to_dict()


def test_stale_rollups_are_found_and_rebuilt_from_the_results(wtb: App) -> None:
    before = matrix_dict(wtb)
    count = "SELECT count(*) FROM {} WHERE case_id = :c"
    c1_rollups = sql(wtb, count.format("wtb_result_rollups"), c="c1")[0][0]
    c2_metric_rollups = sql(wtb, count.format("wtb_metric_rollups"), c="c2")[0][0]
    assert c1_rollups > 1 and c2_metric_rollups > 1
    sql(
        wtb,
        "UPDATE wtb_result_rollups SET n = n + 1, score_mean = score_mean + 0.5 "
        "WHERE case_id = 'c1'",
    )
    sql(wtb, "DELETE FROM wtb_metric_rollups WHERE case_id = 'c2'")
    sql(
        wtb,
        "INSERT INTO wtb_result_rollups VALUES (:b, 'phantom', 'c1', 1, 0, 1, 1.0, 0.0)",
        b=BATCH,
    )
    with pytest.raises(StoreError, match="wtb doctor --repair"):
        matrix_dict(wtb)  # the phantom combination has no results to take percentiles of

    found = check(wtb)
    stale = by_name(found)["rollups"]
    assert stale.count == stale.remaining == c1_rollups + 1 + c2_metric_rollups
    details = [p.detail for p in SqlIntegrityView(engine(wtb)).stale_rollups()]
    assert "phantom / c1: rollup without results" in details
    assert sum("c2 / " in d and "rollup missing" in d for d in details) == c2_metric_rollups
    assert sum(" / c1: n " in d for d in details) == c1_rollups  # n 3 != 2, ...
    assert stale.note == "repairable with --repair" and found.exit_code == 1

    repaired = check(wtb, repair=True)
    stale = by_name(repaired)["rollups"]
    assert (stale.repaired, stale.remaining) == (1, 0)  # one batch rebuilt
    assert repaired.clean and repaired.exit_code == 0
    assert matrix_dict(wtb) == before
    assert check(wtb).clean


def test_dead_runs_are_marked_interrupted_and_resume(wtb: App) -> None:
    ids = [r[0] for r in sql(wtb, "SELECT id FROM wtb_executions ORDER BY id")[:3]]
    expired, unclaimed, live = ids
    sql(
        wtb,
        "UPDATE wtb_executions SET status = 'running', claimed_by = 'host-a:1:dead', "
        "claim_expires_at = '2000-01-01 00:00:00' WHERE id = :e",
        e=expired,
    )
    sql(wtb, "UPDATE wtb_executions SET status = 'running' WHERE id = :e", e=unclaimed)
    ahead = wtb.controller.get(unclaimed).updated_at + timedelta(hours=1)
    with engine(wtb).begin() as conn:  # its runner's clock was an hour ahead of this host's
        conn.execute(
            update(EXECUTIONS).where(EXECUTIONS.c.id == unclaimed).values(updated_at=ahead)
        )
    sql(
        wtb,
        "UPDATE wtb_executions SET status = 'running', claimed_by = 'host-b:2:alive', "
        "claim_expires_at = '2999-01-01 00:00:00' WHERE id = :e",
        e=live,
    )

    stuck = by_name(check(wtb))["stuck_running"]
    assert stuck.count == 2
    details = dict(x.split(": ", 1) for x in stuck.samples)
    assert details.keys() == {expired, unclaimed}
    assert details[unclaimed] == "running without a claim"
    assert details[expired].startswith("running, claim of host-a:1:dead expired at 2000-01-01")

    report = check(wtb, repair=True)
    stuck = by_name(report)["stuck_running"]
    assert (stuck.repaired, stuck.remaining) == (2, 0) and report.clean
    for execution_id in (expired, unclaimed):
        e = wtb.controller.get(execution_id)
        assert e.status is Status.FAILED and e.error_type == INTERRUPTED
        assert "wtb resume" in (e.error_message or "")
    assert wtb.controller.get(unclaimed).updated_at == ahead  # never moved backwards
    assert wtb.controller.get(live).status is Status.RUNNING  # a live claim is left alone
    plain = next(i for i in (expired, unclaimed) if i not in _batch_executions(wtb))
    assert wtb.controller.resume(plain).status is Status.COMPLETED


def _batch_executions(app: App) -> set[str]:
    return {r[0] for r in sql(app, "SELECT execution_id FROM wtb_batch_test_results")}


NODE_CHECKPOINTS = "FROM wtb_checkpoints WHERE source = 'node' AND variant IS NOT NULL"


def age_node_checkpoints(app: App) -> list[datetime]:
    """Date the node checkpoints back to 2000 (one second apart, in step order): the times."""
    c = CHECKPOINTS.c
    start = datetime(2000, 1, 1, tzinfo=UTC)
    with engine(app).begin() as conn:
        ids = conn.execute(select(c.id).where(NODE_EVENT).order_by(c.step)).scalars().all()
        times = [start + timedelta(seconds=i) for i in range(len(ids))]
        for cp_id, at in zip(ids, times, strict=True):
            conn.execute(update(CHECKPOINTS).where(c.id == cp_id).values(created_at=at))
    return times


def test_an_undrained_outbox_is_found_and_requeued_to_the_relay(url: str) -> None:
    audited = sql_app(url)  # writes its events to the outbox, published after each commit
    audited.controller.run(LINEAR, {"x": 3})
    audited.publisher.flush()  # (marks are batched)
    rows = sql(audited, "SELECT count(*) FROM wtb_outbox")[0][0]
    nodes = sql(audited, f"SELECT count(*) {NODE_CHECKPOINTS}")[0][0]
    assert (rows, nodes) == (2, 3)  # started and completed rows; node events are checkpoints
    marks = sql(audited, "SELECT count(*) FROM wtb_node_event_marks")[0][0]
    assert marks == 1 and check(audited).clean
    # A process that died between commit and publish; the newest row is still in its grace.
    newest = sql(audited, "SELECT max(id) FROM wtb_outbox")[0][0]
    sql(
        audited,
        "UPDATE wtb_outbox SET published_at = NULL, created_at = '2000-01-01 00:00:00' "
        "WHERE id < :n",
        n=newest,
    )
    sql(audited, "UPDATE wtb_outbox SET published_at = NULL WHERE id = :n", n=newest)
    # ... and before it marked its node events: no mark, checkpoints past the grace.
    sql(audited, "DELETE FROM wtb_node_event_marks")
    age_node_checkpoints(audited)
    old = rows - 1 + nodes

    outbox = by_name(check(audited, repair=True))["outbox"]
    assert (outbox.count, outbox.remaining, outbox.repairable) == (old, old, False)
    assert "no outbox relay" in outbox.note

    seen: list[Any] = []
    audited.bus.subscribe(Event, seen.append)
    report = check(audited, repair=True, outbox_relay=lambda: audited.relay.run_once(60))
    outbox = by_name(report)["outbox"]
    assert (outbox.count, outbox.repaired, outbox.remaining) == (old, old, 0)
    assert len(seen) == old and report.clean  # each old event published once
    node_ids = {r[0] for r in sql(audited, f"SELECT id {NODE_CHECKPOINTS}")}
    assert {e.event_id for e in seen if type(e).__name__ == "NodeCompleted"} == node_ids
    left = sql(audited, "SELECT count(*) FROM wtb_outbox WHERE published_at IS NULL")[0][0]
    assert left == 1  # the one within its grace is left to its own process
    assert audited.relay.run_once(60) == 0  # and nothing is published twice


def test_a_node_event_mark_moved_back_is_found_and_requeued(url: str) -> None:
    audited = sql_app(url)
    audited.controller.run(LINEAR, {"x": 4})
    audited.publisher.flush()
    times = age_node_checkpoints(audited)
    with engine(audited).begin() as conn:  # the mark says only the first one was published
        conn.execute(update(NODE_EVENT_MARKS).values(published_through=times[0]))
    outbox = by_name(check(audited))["outbox"]
    assert outbox.count == 2  # the second and third node

    seen: list[Any] = []
    audited.bus.subscribe(Event, seen.append)
    report = check(audited, repair=True, outbox_relay=lambda: audited.relay.run_once(60))
    assert by_name(report)["outbox"].repaired == 2 and report.clean
    assert sorted(e.node for e in seen) == ["b", "c"]  # type: ignore[attr-defined]


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, ["doctor", *args])


def test_cli_exit_codes_and_json(wtb: App, url: str) -> None:
    clean = run_cli("--db", url, "--format", "json")
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.output)["clean"] is True

    sql_app(url).controller.run(LINEAR, {"x": 5})  # with its outbox rows
    sql(wtb, "UPDATE wtb_outbox SET published_at = NULL, created_at = '2000-01-01 00:00:00'")
    sql(wtb, "UPDATE wtb_result_rollups SET n_passed = n_passed + 7 WHERE case_id = 'c2'")
    sql(
        wtb,
        "UPDATE wtb_executions SET status = 'running' WHERE id = "
        "(SELECT min(id) FROM wtb_executions)",
    )
    found = run_cli("--db", url, "--format", "json")
    assert found.exit_code == 1
    data = json.loads(found.output)
    counts = {f["check"]: f["count"] for f in data["findings"] if f["count"]}
    assert counts.keys() == {"rollups", "stuck_running", "outbox"}
    assert counts["stuck_running"] == 1
    assert data["remaining"] == data["problems"] > 1

    table = run_cli("--db", url)
    assert table.exit_code == 1 and "problems remain" in table.output

    fixed = run_cli("--db", url, "--repair")
    assert fixed.exit_code == 0, fixed.output
    assert "0 remaining: clean" in fixed.output
    assert run_cli("--db", url).exit_code == 0


def test_cli_refuses_an_unknown_format_in_one_line(tmp_path: Path) -> None:
    out = run_cli("--db", f"sqlite:///{tmp_path / 'x.db'}", "--format", "yaml")
    assert out.exit_code == 2
    assert "--format: unknown format 'yaml'; use one of table, json" in out.output
