"""The batch flow on real Prefect (one test harness per session): ThreadPool, Ray, the demo."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flows.batch_test import run_batch
from tasks.batch import run_case_group
from tests.batch import workflows as wf
from wtb_domain import sql_app
from wtb_domain.batch.parity import compare_results
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec, load_spec
from wtb_domain.model import BatchResult

DEMO_SPEC = Path(__file__).resolve().parents[2] / "wtb_domain" / "demo" / "batch.yaml"

LINEAR_CASES = [
    {"id": "c1", "input": {"q": "one"}, "expected": {"answer": "one|a:x-b:x-c:x"}},
    {"id": "c2", "input": {"q": "two"}, "expected": {"answer": "two|a:y-b:x-c:z"}},
]
PROBE_CASES = [
    {"id": f"n{n}", "input": {"n": n}, "expected": {"answer": str(2 * n)}} for n in (1, 2)
]


def linear_spec(url: str, batch_id: str, **fields: Any) -> BatchSpec:
    data: dict[str, Any] = {
        "workflow": wf.LINEAR3,
        "batch_id": batch_id,
        "variants": {"a": ["x", "y"], "c": ["x", "z"]},
        "cases": LINEAR_CASES,
        "evaluators": [{"type": "exact_match"}],
        "max_workers": 2,
        "database_url": url,
    }
    data.update(fields)
    return BatchSpec.parse(data)


def probe_spec(url: str, batch_id: str, **fields: Any) -> BatchSpec:
    data: dict[str, Any] = {
        "workflow": wf.PROBE,
        "batch_id": batch_id,
        "variants": {"probe": ["plain", "flagged"], "answer": ["good", "bad"]},
        "environments": {"probe": {"flagged": {"env_vars": {"WTB_TEST_FLAG": "x"}}}},
        "cases": PROBE_CASES,
        "evaluators": [{"type": "exact_match"}, {"type": "token_f1"}],
        "max_workers": 2,
        "database_url": url,
    }
    data.update(fields)
    return BatchSpec.parse(data)


def results_of(url: str, batch_id: str) -> list[BatchResult]:
    with sql_app(url, audit=False).uow() as uow:
        return uow.results.for_batch(batch_id)


def artifacts(*keys: str) -> dict[str, Any]:
    """The harness's artifacts with these keys, read with Prefect's own client."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(keys))), limit=50
        )
    return {a.key: a for a in found}


# --- ThreadPool ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_threadpool_flow_completes_stores_results_and_publishes_artifacts(
    sqlite_url: str,
) -> None:
    spec = linear_spec(sqlite_url, "Flow_TP.1")
    summary = run_batch(spec)

    assert summary["state"] == "Completed", summary
    assert summary["status"] == "completed"
    assert summary["total"] == summary["done"] == 8
    assert summary["failed"] == 0
    assert summary["errors"] == []
    assert summary["node_executions"] >= 8

    results = results_of(sqlite_url, "Flow_TP.1")
    assert Counter((r.combination_name, r.case_id, r.repeat) for r in results) == {
        (f"a={a},c={c}", case, 0): 1 for a in "xy" for c in "xz" for case in ("c1", "c2")
    }
    service = BatchService(sql_app(sqlite_url, audit=False))
    for r in results:
        state = service.app.controller.state(r.execution_id)
        q = {"c1": "one", "c2": "two"}[r.case_id]
        assert state["answer"] == f"{q}|a:{r.variant_config['a']}-b:x-c:{r.variant_config['c']}"
    assert {r.combination_name for r in results if r.passed} == {"a=x,c=x", "a=y,c=z"}
    assert service.status("Flow_TP.1").status.value == "completed"

    keys = ("wtb-flow-tp-1-matrix", "wtb-flow-tp-1-table")
    found = artifacts(*keys)
    assert set(found) == set(keys), list(found)
    markdown, table = found[keys[0]], found[keys[1]]
    assert markdown.type == "markdown"
    assert "## Comparison of batch `Flow_TP.1`" in markdown.data
    assert table.type == "table"
    assert "a=x,c=x" in str(table.data)
    assert markdown.flow_run_id == table.flow_run_id is not None
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(markdown.flow_run_id)
        assert flow_run.state_type is not None and flow_run.state_type.value == "COMPLETED"
        assert client.read_flow(flow_run.flow_id).name == "wtb-batch-test"


@pytest.mark.usefixtures("prefect_harness")
def test_failing_variants_fail_the_flow_only_with_fail_on_error(sqlite_url: str) -> None:
    fields = {
        "workflow": wf.FAILING,
        "variants": {"work": ["ok", "boom"]},
        "cases": [{"id": "c1", "input": {"q": "one"}}, {"id": "c2", "input": {"q": "two"}}],
    }
    tolerant = run_batch(linear_spec(sqlite_url, "tolerant", **fields))
    assert tolerant["state"] == "Completed", tolerant
    assert tolerant["status"] == "completed_with_failures"
    assert (tolerant["done"], tolerant["failed"]) == (4, 2)

    strict = run_batch(linear_spec(sqlite_url, "strict", fail_on_error=True, **fields))
    assert strict["state"] == "Failed", strict
    assert strict["status"] == "completed_with_failures"
    assert (strict["done"], strict["failed"]) == (4, 2)
    assert "2 of 4 executions failed" in strict["message"]

    errors = sorted(r.error or "" for r in results_of(sqlite_url, "strict") if not r.success)
    assert errors == ["ValueError: boom on one", "ValueError: boom on two"]


def test_run_case_group_task_function(sqlite_url: str) -> None:
    """The task's function alone (``.fn``): runs a group into the spec's database."""
    spec = linear_spec(sqlite_url, "task-fn")
    prepared = BatchService(sql_app(sqlite_url, audit=False)).prepare(spec, workers=1)
    group = next(g for g in prepared.groups if g.case_id == "c1")

    out = run_case_group.fn(prepared.payload, "c1", list(group.leaf_keys))
    assert out["case_id"] == "c1"
    assert out["recorded"] == len(group.leaf_keys)
    assert out["failed"] == 0
    assert out["skipped"] == 0
    assert out["cancelled"] is False
    assert out["node_executions"] > 0
    assert out["worker_id"]
    assert {r.case_id for r in results_of(sqlite_url, "task-fn")} == {"c1"}

    again = run_case_group.fn(prepared.payload, "c1", list(group.leaf_keys))
    assert (again["recorded"], again["skipped"], again["node_executions"]) == (
        0,
        len(group.leaf_keys),
        0,
    )


# --- Ray -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_and_threadpool(
    prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The probe spec run once on ThreadPool and once on a local Ray (num_cpus 2)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ray') / 'wtb.db'}"
    # ThreadPool refuses a variant's env vars (one process): its probe run has none.
    threadpool = run_batch(probe_spec(url, "probe-threadpool", environments={}))
    ray = run_batch(probe_spec(url, "probe-ray", runner="ray", ray="testing"))
    return {"url": url, "threadpool": threadpool, "ray": ray}


@pytest.mark.ray
@pytest.mark.slow
def test_ray_runner_gives_the_threadpool_results(ray_and_threadpool: dict[str, Any]) -> None:
    url = ray_and_threadpool["url"]
    for label in ("threadpool", "ray"):
        summary = ray_and_threadpool[label]
        assert summary["state"] == "Completed", (label, summary)
        assert summary["total"] == summary["done"] == 8, (label, summary)
        assert summary["errors"] == []

    left = results_of(url, "probe-threadpool")
    right = results_of(url, "probe-ray")
    report = compare_results("threadpool", left, "ray", right)
    assert report.ok, (report.missing, report.differences[:5])
    assert report.compared == 8
    assert {r.combination_name for r in right if r.passed} == {
        "probe=plain,answer=good",
        "probe=flagged,answer=good",
    }
    # the tasks ran in Ray worker processes, not in this one
    assert all(r.worker_id and not r.worker_id.startswith(f"{_host()}:{_pid()}:") for r in right)


@pytest.mark.ray
@pytest.mark.slow
def test_variant_environment_reaches_the_node_on_ray(ray_and_threadpool: dict[str, Any]) -> None:
    app = sql_app(ray_and_threadpool["url"], audit=False)
    flags = {
        (r.combination_name, r.case_id): app.controller.state(r.execution_id)["flag"]
        for r in results_of(ray_and_threadpool["url"], "probe-ray")
    }
    assert len(flags) == 8
    for (combination, _case), flag in flags.items():
        wanted = "x" if "probe=flagged" in combination else None
        assert flag == wanted, (combination, flag)


def _host() -> str:
    import socket

    return socket.gethostname()


def _pid() -> int:
    import os

    return os.getpid()


# --- the shipped demo ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_demo_batch_runs_end_to_end_and_beats_its_baseline(sqlite_url: str) -> None:
    spec, base_dir = load_spec(DEMO_SPEC)
    spec = spec.model_copy(update={"database_url": sqlite_url, "batch_id": "demo-test"})
    summary = run_batch(spec, base_dir)

    assert summary["state"] == "Completed", summary
    assert summary["total"] == summary["done"] == 27 * 40 == 1080
    assert summary["failed"] == 0

    matrix = BatchService(sql_app(sqlite_url, audit=False)).matrix("demo-test")
    assert matrix.baseline == "retrieve=keyword,rerank=none,answer=extractive"
    assert len(matrix.stats) == 27
    assert all(s.n == 40 for s in matrix.stats)
    best = matrix.stats[0]
    assert best.name != matrix.baseline
    verdicts = {p.combination: p for p in matrix.vs_baseline}
    assert verdicts[best.name].verdict == "better", verdicts[best.name]
    baseline_stats = next(s for s in matrix.stats if s.name == matrix.baseline)
    assert best.mean_score > baseline_stats.mean_score
