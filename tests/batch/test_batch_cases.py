"""Cases are stored once with their batch; the flow and its tasks get ids, never the cases.

The case store runs on memory, SQLite and PostgreSQL; the 100,000-case batch goes through the
domain path on SQLite (register, plan, run a sample of tasks, resume), and a spec far over
Prefect's 512 KB parameter limit goes through the real flow.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.batch_test import run_batch
from tests.batch import workflows as wf
from wtb_domain import App, memory_app, sql_app
from wtb_domain.adapters.memory import MemoryStore
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.errors import NotFoundError, SpecError
from wtb_domain.model import BatchTest


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    if request.param == "memory":
        yield memory_app(MemoryStore(), audit=False)
        return
    url = (
        f"sqlite:///{tmp_path / 'wtb.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    the_app = sql_app(url, audit=False)
    yield the_app
    if request.param == "sqlite" and the_app.database is not None:
        the_app.database.dispose()


def _batch(app: App, batch_id: str) -> None:
    with app.uow() as uow:
        uow.batches.add(BatchTest(batch_id, "m:w", {}, 0))
        uow.commit()


def test_case_store_keeps_order_and_reads_one_case_by_id(app: App) -> None:
    batch_id = f"cases-{time.time_ns()}"
    _batch(app, batch_id)
    cases = [
        {"id": f"c{i:04d}", "input": {"q": "ü" * (i % 3), "n": i}, "expected": {"a": i}}
        for i in range(2500, 0, -1)  # stored order, not sorted order
    ]
    cases[7]["expected"] = None
    with app.uow() as uow:
        uow.cases.add_many(batch_id, cases)
        uow.commit()
    with app.uow() as uow:
        assert uow.cases.count(batch_id) == 2500
        assert uow.cases.ids(batch_id) == [c["id"] for c in cases]
        assert uow.cases.get(batch_id, "c0042") == {
            "id": "c0042",
            "input": {"q": "", "n": 42},
            "expected": {"a": 42},
        }
        assert uow.cases.get(batch_id, cases[7]["id"])["expected"] is None
        with pytest.raises(NotFoundError, match="has no case 'nope'"):
            uow.cases.get(batch_id, "nope")
        assert uow.cases.count("other-batch") == 0


def test_uncommitted_cases_are_not_stored(app: App) -> None:
    batch_id = f"rolled-{time.time_ns()}"
    _batch(app, batch_id)
    with app.uow() as uow:
        uow.cases.add_many(batch_id, [{"id": "c1", "input": {}}])
    with app.uow() as uow:
        assert uow.cases.count(batch_id) == 0


# --- 100,000 cases through the domain path -----------------------------------------------------

N_BIG = 100_000


def big_spec(batch_id: str, url: str, n: int = N_BIG, **fields: Any) -> BatchSpec:
    data: dict[str, Any] = {
        "workflow": wf.LINEAR3,
        "batch_id": batch_id,
        "cases": [{"id": f"k{i}", "input": {"q": str(i)}} for i in range(n)],
        "evaluators": [{"type": "exact_match"}],
        "database_url": url,
    }
    data.update(fields)
    return BatchSpec.parse(data)


@pytest.mark.slow
def test_100k_cases_register_plan_run_and_resume_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'big.db'}"
    service = BatchService(sql_app(url, audit=False))
    spec = big_spec("big", url)

    t0 = time.perf_counter()
    prepared = service.prepare(spec, workers=4)
    register_s = time.perf_counter() - t0
    assert register_s < 120, register_s
    assert prepared.total == N_BIG
    assert len(prepared.groups) == N_BIG
    assert len(prepared.case_ids) == N_BIG
    # what the flow and every task receive: ids and a masked database reference
    assert len(json.dumps(prepared.payload)) < 400, prepared.payload
    with service.app.uow() as uow:
        assert uow.cases.count("big") == N_BIG
        stored = uow.batches.get("big").spec
    assert "cases" not in stored or stored["cases"] is None
    assert stored["cases_count"] == N_BIG
    assert len(json.dumps(stored)) < 5_000

    # tasks read their case from the store by id
    sample = [prepared.groups[i] for i in (0, 1, 54_321, N_BIG - 1)]
    for group in sample:
        outcome = service.run_group(prepared.payload, group.case_id, list(group.leaf_keys))
        assert outcome.recorded == len(group.leaf_keys) == 1
    progress = service.progress("big")
    assert (progress.total, progress.done, progress.failed) == (N_BIG, 4, 0)
    states = {r.case_id: r for r in service.rows("big")}
    assert set(states) == {"k0", "k1", "k54321", f"k{N_BIG - 1}"}

    # resume: the same spec finds its stored cases and skips what is done
    again = BatchService(sql_app(url, audit=False)).prepare(spec, workers=4)
    assert again.spec_hash == prepared.spec_hash
    outcome = service.run_group(again.payload, "k1", list(sample[1].leaf_keys))
    assert (outcome.recorded, outcome.skipped) == (0, 1)
    with service.app.uow() as uow:
        assert uow.cases.count("big") == N_BIG  # not stored twice

    # a different set of cases under the same batch id is refused
    other = big_spec("big", url, n=N_BIG - 1)
    with pytest.raises(SpecError, match="different set of cases"):
        service.prepare(other)
    changed = big_spec(
        "big",
        url,
        cases=[{"id": f"k{i}", "input": {"q": "x" if i == 5 else str(i)}} for i in range(N_BIG)],
    )
    with pytest.raises(SpecError, match="different set of cases"):
        service.prepare(changed)


def test_resume_refuses_a_different_spec_and_accepts_other_runner_settings(
    sqlite_url: str,
) -> None:
    service = BatchService(sql_app(sqlite_url, audit=False))
    first = service.prepare(big_spec("small", sqlite_url, n=3), workers=1)
    with pytest.raises(SpecError, match="different variants"):
        service.prepare(big_spec("small", sqlite_url, n=3, variants={"a": ["x", "y"]}))
    # max_workers is not part of what makes a batch: the stored spec follows the rerun
    rerun = service.prepare(big_spec("small", sqlite_url, n=3, max_workers=2), workers=1)
    assert rerun.spec.max_workers == 2
    assert rerun.spec_hash != first.spec_hash
    # a run started with the old hash sees the batch was registered again
    with pytest.raises(SpecError, match="registered again"):
        service.run_group(first.payload, "k0", list(first.groups[0].leaf_keys))


# --- a spec far over Prefect's parameter limit, through the flow ---------------------------------

N_FLOW = 600  # few tasks (the session harness is shared), each case padded: > 512 KB


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_flow_runs_a_spec_over_512_kb_and_its_parameters_stay_small(sqlite_url: str) -> None:
    pad = "p" * 1100
    spec = big_spec(
        "huge-inline",
        sqlite_url,
        n=N_FLOW,
        cases=[{"id": f"case-{i:05d}", "input": {"q": f"{i}", "pad": pad}} for i in range(N_FLOW)],
        max_workers=4,
    )
    assert len(spec.model_dump_json()) > 600_000
    summary = run_batch(spec)
    assert summary["state"] == "Completed", summary
    assert summary["total"] == summary["done"] == N_FLOW
    assert summary["errors"] == []

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentTaskRunId

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True)
            ),
            limit=200,
        )
    ours = [r for r in runs if r.parameters.get("batch_id") == "huge-inline"]
    assert len(ours) == 1
    params = ours[0].parameters
    assert set(params) == {"batch_id", "spec_hash", "database", "publish_artifacts"}
    assert len(json.dumps(params)) < 1_000
