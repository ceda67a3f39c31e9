"""Rerunning a batch id: a completed batch stays completed, an unfinished one resumes.

A rerun of a batch that already ended ``completed`` (or ``completed_with_failures``) with the
same spec (a Prefect retry, a re-triggered deployment, ``wtb batch run`` again) runs no node,
never shows the batch as ``running`` (not while it runs, not if it is killed), writes no second
start or end to the audit log and reports the first run's outcome. A batch that ended
``failed`` or ``cancelled`` resumes. On SQLite and PostgreSQL, through ``BatchService`` as a
flow's tasks call it, and through the real flow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.batch_test import run_batch
from tests.batch import workflows as wf
from tests.reliability.harness import Db
from wtb_domain import SpecError, sql_app
from wtb_domain.batch.service import BatchService, BatchSummary, Registration
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.batch.stored import spec_hash


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wtb.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def failing_spec(url: str, batch_id: str, **fields: Any) -> BatchSpec:
    """2 cases x 4 combinations; ``work=boom`` fails: 8 results, 4 of them failed."""
    data: dict[str, Any] = {
        "workflow": wf.FAILING,
        "batch_id": batch_id,
        "variants": {"work": ["ok", "boom"], "finish": ["f1", "f2"]},
        "cases": [{"id": f"case-{q}", "input": {"q": q}} for q in ("one", "two")],
        "evaluators": [{"type": "exact_match"}],
        "max_workers": 2,
        "database_url": url,
    }
    data.update(fields)
    return BatchSpec.parse(data)


def linear_spec(url: str, batch_id: str, **fields: Any) -> BatchSpec:
    """2 cases x 2 combinations: 4 results, all succeed."""
    return failing_spec(url, batch_id, workflow=wf.LINEAR3, variants={"a": ["x", "y"]}, **fields)


def run_registered(service: BatchService, registration: Registration) -> BatchSummary:
    """Plan and run every task group of a registered batch, then end it (a flow's work)."""
    prepared = service.plan(registration, workers=2)
    nodes = sum(
        service.run_group(prepared.payload, g.case_id, list(g.leaf_keys)).node_executions
        for g in prepared.groups
    )
    return service.finish(prepared.batch_id, node_executions=nodes)


def kinds(db: Db, batch_id: str) -> list[str]:
    """The batch's audit entries' event types (``batchstarted``, ``batchcompleted``, ...)."""
    return [e.split(" ", 1)[0].replace("_", "").lower() for e in db.batch_story(batch_id)]


@pytest.mark.parametrize(
    ("make", "status", "done", "failed"),
    [(linear_spec, "completed", 4, 0), (failing_spec, "completed_with_failures", 8, 4)],
    ids=["completed", "with-failures"],
)
def test_rerunning_a_completed_batch_keeps_it_completed_runs_nothing_and_ends_once(
    store_url: str, make: Any, status: str, done: int, failed: int
) -> None:
    batch_id = f"rerun-{status}"
    spec = make(store_url, batch_id)
    db = Db(store_url)
    first_service = BatchService(sql_app(store_url))
    first = run_registered(first_service, first_service.register(spec))
    assert (first.status.value, first.done, first.failed) == (status, done, failed)
    story, node_runs = db.batch_story(batch_id), wf.runs()
    assert kinds(db, batch_id).count("batchcompleted") == 1

    service = BatchService(sql_app(store_url))  # a new process reruns the batch
    registration = service.register(spec)
    # The rerun registered it: the batch still says how it ended (also if the rerun dies now).
    assert db.batch_status(batch_id) == status
    assert service.status(batch_id).status.value == status
    again = run_registered(service, registration)

    assert wf.runs() == node_runs  # no node ran
    assert again.node_executions == 0
    assert (again.status, again.total, again.done, again.failed, again.errors) == (
        first.status,
        first.total,
        first.done,
        first.failed,
        first.errors,
    )
    assert db.batch_status(batch_id) == status
    assert db.batch_story(batch_id) == story  # no second start, no second end


def test_a_completed_batch_rerun_with_more_cases_or_variants_is_refused_and_stays_completed(
    store_url: str,
) -> None:
    batch_id = "rerun-grown"
    db = Db(store_url)
    service = BatchService(sql_app(store_url))
    run_registered(service, service.register(linear_spec(store_url, batch_id)))
    story = db.batch_story(batch_id)

    more_cases = linear_spec(
        store_url,
        batch_id,
        cases=[{"id": f"case-{q}", "input": {"q": q}} for q in ("one", "two", "three")],
    )
    with pytest.raises(SpecError, match=rf"^batch_id: '{batch_id}' already exists .*set of cases"):
        service.register(more_cases)
    more_variants = failing_spec(
        store_url, batch_id, workflow=wf.LINEAR3, variants={"a": list("xyz")}
    )
    with pytest.raises(SpecError, match=rf"^batch_id: '{batch_id}' already exists .*variants"):
        service.register(more_variants)
    assert db.batch_status(batch_id) == "completed"
    assert db.batch_story(batch_id) == story


def test_a_completed_batch_rerun_with_other_settings_keeps_the_settings_it_ran_with(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing runs, so nothing may claim the results ran with the rerun's settings: the stored
    # spec (what `wtb batch status` and the matrix's header show) stays the first run's.
    batch_id = "rerun-settings"
    db = Db(store_url)
    service = BatchService(sql_app(store_url))
    first = run_registered(service, service.register(failing_spec(store_url, batch_id)))
    stored = service.status(batch_id).spec
    story, node_runs = db.batch_story(batch_id), wf.runs()

    other = failing_spec(store_url, batch_id, max_workers=3, fail_on_error=True)
    with caplog.at_level("WARNING", logger="wtb_domain.batch.service.registry"):
        registration = service.register(other)
    assert registration.ended
    assert service.status(batch_id).spec == stored
    assert (stored["max_workers"], stored["fail_on_error"]) == (2, False)
    assert registration.spec_hash == spec_hash(stored)
    assert service.load(batch_id, registration.spec_hash).max_workers == 2
    [warning] = [r.getMessage() for r in caplog.records if batch_id in r.getMessage()]
    assert "keeps the settings it ran with" in warning
    assert "fail_on_error, max_workers" in warning

    again = run_registered(service, registration)
    assert wf.runs() == node_runs
    assert (again.status, again.done, again.failed) == (first.status, first.done, first.failed)
    assert db.batch_story(batch_id) == story


@pytest.mark.parametrize("ending", ["failed", "cancelled"])
def test_a_failed_or_cancelled_batch_resumes_when_rerun(store_url: str, ending: str) -> None:
    batch_id = f"rerun-{ending}"
    spec = linear_spec(store_url, batch_id)
    db = Db(store_url)
    service = BatchService(sql_app(store_url))
    prepared = service.plan(service.register(spec), workers=2)
    first = prepared.groups[0]  # the process stops after one task group
    service.run_group(prepared.payload, first.case_id, list(first.leaf_keys))
    if ending == "cancelled":
        service.cancel(batch_id)
    assert service.finish(batch_id).status.value == ending

    rerun = BatchService(sql_app(store_url))
    registration = rerun.register(spec)
    assert db.batch_status(batch_id) == "running"  # it is running again, for real
    summary = run_registered(rerun, registration)
    assert (summary.status.value, summary.done, summary.failed) == ("completed", 4, 0)
    assert summary.node_executions > 0
    assert kinds(db, batch_id)[-1] == "batchcompleted"
    assert kinds(db, batch_id).count("batchstarted") == 2


@pytest.mark.usefixtures("prefect_harness")
def test_the_flow_rerun_of_a_completed_batch_reports_its_outcome_and_ends_as_it_did(
    sqlite_url: str,
) -> None:
    db = Db(sqlite_url)
    plain = linear_spec(sqlite_url, "Rerun_Flow.ok")
    strict = failing_spec(sqlite_url, "Rerun_Flow.strict", fail_on_error=True)
    firsts = {spec.batch_id: run_batch(spec) for spec in (plain, strict)}
    assert firsts["Rerun_Flow.ok"]["state"] == "Completed"
    assert firsts["Rerun_Flow.strict"]["state"] == "Failed"  # fail_on_error, 4 failed
    stories = {b: db.batch_story(b) for b in firsts}
    node_runs = wf.runs()

    for spec in (plain, strict):
        batch_id = str(spec.batch_id)
        first, again = firsts[batch_id], run_batch(spec)
        keys = ("batch_id", "status", "total", "done", "failed", "errors", "state")
        assert {k: again[k] for k in keys} == {k: first[k] for k in keys}
        assert again["node_executions"] == 0
        assert db.batch_story(batch_id) == stories[batch_id]
        assert db.batch_status(batch_id) == first["status"]
    assert wf.runs() == node_runs

    # A rerun with other settings ends as the batch did, by the settings it ran with: the
    # strict batch's rerun without fail_on_error runs nothing and is Failed again.
    lenient = failing_spec(sqlite_url, "Rerun_Flow.strict", fail_on_error=False, max_workers=3)
    again = run_batch(lenient)
    assert (again["state"], again["node_executions"]) == ("Failed", 0)
    assert db.batch_story("Rerun_Flow.strict") == stories["Rerun_Flow.strict"]
    assert wf.runs() == node_runs
