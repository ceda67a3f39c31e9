"""The demo batch on an existing Ray cluster (a head and a second node on loopback).

The cluster is started by the test with ``ray start --block`` (its own temp dir) and
stopped by PID; the batch connects to it with ``ray: {ray_address: ...}``. The Ray workers
report to the session's Prefect server (PREFECT_API_URL in the runtime_env) and write to
PostgreSQL; no server is started per flow run. The results must equal ThreadPool's for
every combination x case x repeat.

The full demo (27 combinations x 40 cases) runs: one task per case group, 2 CPUs in all.

The test process stays connected between batches (``flows.ray_session``): the next batch
runs in the same Ray job, i.e. in the same worker processes, unless it needs another job.
The cluster fixture disconnects before it stops the cluster. The last test restarts a head
behind a kept connection (a one-node cluster of its own, the same port): the next batch
finds the connection dead and connects again.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.ray_session import CONNECTIONS, disconnect
from tests.ray_cluster import RayCluster, free_port, ray_cluster
from wtb_domain import sql_app
from wtb_domain.batch.parity import compare_results
from wtb_domain.batch.spec import BatchSpec, RayConfig, load_spec

DEMO_SPEC = Path(__file__).resolve().parents[2] / "wtb_domain" / "demo" / "batch.yaml"
REPO = Path(__file__).resolve().parents[2]
DEMO_RESULTS = 27 * 40
PROBE = "tests.batch.workflows:probe"


def node_env() -> dict[str, str]:
    """The nodes' environment is every Ray worker's: this checkout first on the import path."""
    return {
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    }


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    with ray_cluster(cpus_per_node=(1, 1), env=node_env()) as running:
        try:
            yield running
        finally:
            assert disconnect(timeout=60), "a batch still used the kept Ray connection"
    assert not running.daemon_pids(), "Ray processes outlived the cluster's stop"


@pytest.mark.ray
@pytest.mark.slow
def test_demo_batch_on_an_existing_two_node_cluster_matches_threadpool(
    prefect_harness: None, pg_url: str, cluster: RayCluster
) -> None:
    from flows.batch_test import run_batch

    spec, base_dir = load_spec(DEMO_SPEC)
    on_ray = f"demo-cluster-{secrets.token_hex(4)}"
    config = RayConfig(ray_address=cluster.address, max_pending_tasks=8, max_retries=0)
    spec = spec.model_copy(
        update={"database_url": pg_url, "batch_id": on_ray, "runner": "ray", "ray": config}
    )
    summary = run_batch(spec, base_dir)
    assert summary["state"] == "Completed", summary
    assert summary["done"] == summary["total"] == DEMO_RESULTS, summary
    assert summary["errors"] == []

    threadpool = f"demo-cluster-tp-{secrets.token_hex(4)}"
    tp_spec = spec.model_copy(update={"runner": "threadpool", "batch_id": threadpool})
    tp = run_batch(tp_spec, base_dir)
    assert tp["state"] == "Completed", tp
    with sql_app(pg_url, audit=False).uow() as uow:
        ray_rows, tp_rows = uow.results.for_batch(on_ray), uow.results.for_batch(threadpool)
    report = compare_results("threadpool", tp_rows, "ray", ray_rows)
    assert report.ok, (report.missing[:5], report.differences[:5])
    assert report.compared == DEMO_RESULTS

    # The results were written by Ray worker processes, not by this one, on both nodes.
    pids = worker_pids(ray_rows)
    assert os.getpid() not in pids
    nodes = {cluster.node_of_worker(pid) for pid in pids}
    assert nodes == {0, 1}, f"worker processes {sorted(pids)} ran on nodes {nodes}"

    # A second batch from this process runs in the same Ray job: the same worker processes
    # (warm: nothing new connected), and again the ThreadPool results.
    job, connects = CONNECTIONS.job_id, CONNECTIONS.connects
    assert job is not None, "the cluster connection was not kept after the batch"
    again = f"demo-cluster-again-{secrets.token_hex(4)}"
    second = run_batch(spec.model_copy(update={"batch_id": again}), base_dir)
    assert (second["state"], second["done"]) == ("Completed", DEMO_RESULTS), second
    assert (CONNECTIONS.job_id, CONNECTIONS.connects) == (job, connects)
    with sql_app(pg_url, audit=False).uow() as uow:
        again_rows = uow.results.for_batch(again)
    report = compare_results("threadpool", tp_rows, "ray (warm job)", again_rows)
    assert report.ok, (report.missing[:5], report.differences[:5])
    assert report.compared == DEMO_RESULTS
    again_pids = worker_pids(again_rows)
    assert again_pids <= pids, f"new worker processes {sorted(again_pids - pids)}"
    assert cluster.alive_nodes() == 2


def worker_pids(rows: list[Any]) -> set[int]:
    """The worker processes that wrote ``rows`` (worker_id is host:pid:...)."""
    return {int(str(r.worker_id).split(":")[1]) for r in rows}


@pytest.mark.ray
@pytest.mark.slow
def test_batch_env_vars_get_their_own_workers_and_job_fields_their_own_job(
    prefect_harness: None, pg_url: str, cluster: RayCluster
) -> None:
    """The probe node stores $WTB_TEST_FLAG. Batches that differ only in env vars share the
    job, but a worker process started with one batch's value never runs the other's tasks;
    a batch whose job-level runtime_env differs gets a new job (new workers)."""
    from flows.batch_test import run_batch

    def probe(flag: str, **runtime_env: Any) -> tuple[set[int], set[Any], str | None]:
        batch_id = f"env-{flag}-{secrets.token_hex(4)}"
        spec = BatchSpec.parse(
            {
                "workflow": PROBE,
                "batch_id": batch_id,
                "variants": {"answer": ["good", "bad"]},
                "cases": [
                    {"id": f"n{n}", "input": {"n": n}, "expected": {"answer": str(2 * n)}}
                    for n in (1, 2, 3, 4)
                ],
                "evaluators": [{"type": "exact_match"}],
                "max_workers": 2,
                "runner": "ray",
                "database_url": pg_url,
                "ray": {
                    "ray_address": cluster.address,
                    "max_retries": 0,
                    "runtime_env": {"env_vars": {"WTB_TEST_FLAG": flag}, **runtime_env},
                },
            }
        )
        summary = run_batch(spec)
        assert (summary["state"], summary["done"], summary["failed"]) == ("Completed", 8, 0)
        app = sql_app(pg_url, audit=False)
        with app.uow() as uow:
            rows = uow.results.for_batch(batch_id)
        flags = {app.controller.state(r.execution_id)["flag"] for r in rows}
        return worker_pids(rows), flags, CONNECTIONS.job_id

    pids_a, flags_a, job_a = probe("a")
    pids_a2, flags_a2, job_a2 = probe("a")
    pids_b, flags_b, job_b = probe("b")
    assert flags_a == flags_a2 == {"a"} and flags_b == {"b"}
    assert job_a == job_a2 == job_b
    assert pids_a2 <= pids_a, "the same env vars did not reuse the job's warm workers"
    assert not pids_b & pids_a, f"workers {sorted(pids_b & pids_a)} ran both env values"
    live = CONNECTIONS.live
    assert live is not None and "WTB_TEST_FLAG" not in live.key  # the job holds no batch env

    connects = CONNECTIONS.connects
    pids_c, flags_c, job_c = probe("a", config={"setup_timeout_seconds": 900})
    assert flags_c == {"a"}
    assert job_c != job_a and CONNECTIONS.connects == connects + 1
    assert not pids_c & (pids_a | pids_b), "a new job ran in the old job's worker processes"


@pytest.mark.ray
@pytest.mark.slow
def test_a_kept_connection_to_a_restarted_head_is_replaced_by_the_next_batch(
    prefect_harness: None, pg_url: str
) -> None:
    """A batch on a one-node cluster; the head is killed (by PID) and a new head started on
    the same port, behind the kept connection (``ray.is_initialized()`` still True). The next
    batch of this process finds the connection dead (one warning naming the address), shuts
    it down, connects to the new head and completes with the first batch's results."""
    from flows.batch_test import run_batch

    def batch(address: str) -> list[Any]:
        batch_id = f"restart-{secrets.token_hex(4)}"
        spec = BatchSpec.parse(
            {
                "workflow": "tests.batch.workflows:scored",
                "batch_id": batch_id,
                "variants": {"answer": ["good", "bad"]},
                "cases": [
                    {"id": f"n{n}", "input": {"n": n}, "expected": {"answer": str(2 * n)}}
                    for n in (1, 2, 3, 4)
                ],
                "evaluators": [{"type": "exact_match"}],
                "max_workers": 2,
                "runner": "ray",
                "database_url": pg_url,
                "ray": {"ray_address": address, "max_retries": 0},
            }
        )
        summary = run_batch(spec)
        assert (summary["state"], summary["done"], summary["failed"]) == ("Completed", 8, 0), (
            summary
        )
        with sql_app(pg_url, audit=False).uow() as uow:
            return list(uow.results.for_batch(batch_id))

    port = free_port()
    try:
        with ray_cluster(cpus_per_node=(1,), env=node_env(), port=port) as first:
            before = batch(first.address)
            connects = CONNECTIONS.connects
            first.kill()  # the head dies (every process of it, by PID)
            assert not first.daemon_pids()
        assert CONNECTIONS.live is not None, "the cluster connection was not kept"
        with ray_cluster(cpus_per_node=(1,), env=node_env(), port=port) as second:
            assert second.address == first.address
            warnings = _Records(logging.WARNING)
            logging.getLogger("wtb.ray").addHandler(warnings)
            try:
                after = batch(second.address)
            finally:
                logging.getLogger("wtb.ray").removeHandler(warnings)
            assert CONNECTIONS.connects == connects + 1, "the dead connection was reused"
            assert len(warnings.records) == 1, [r.getMessage() for r in warnings.records]
            assert second.address in warnings.records[0].getMessage()
            # The new head's worker processes wrote the second batch's results.
            assert {second.node_of_worker(pid) for pid in worker_pids(after)} == {0}
            assert disconnect(timeout=60), "a batch still used the kept Ray connection"
        assert not second.daemon_pids(), "Ray processes outlived the cluster's stop"
    finally:
        disconnect(timeout=60)
    report = compare_results("first head", before, "restarted head", after)
    assert report.ok, (report.missing[:5], report.differences[:5])
    assert report.compared == 8
    passed: dict[str, set[bool]] = {}
    for row in after:
        passed.setdefault(row.combination_name, set()).add(bool(row.passed))
    assert sorted(sorted(v) for v in passed.values()) == [[False], [True]], passed


class _Records(logging.Handler):
    """The records of one logger (Prefect's logging setup keeps them from pytest's caplog)."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
