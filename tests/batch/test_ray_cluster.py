"""The demo batch on an existing Ray cluster (a head and a second node on loopback).

The cluster is started by the test with ``ray start --block`` (its own temp dir) and
stopped by PID; the batch connects to it with ``ray: {ray_address: ...}``. The Ray workers
report to the session's Prefect server (PREFECT_API_URL in the runtime_env) and write to
PostgreSQL; no server is started per flow run. The results must equal ThreadPool's for
every combination x case x repeat.

The full demo (27 combinations x 40 cases) runs: one task per case group, 2 CPUs in all.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ray_cluster import RayCluster, ray_cluster
from wtb_domain import sql_app
from wtb_domain.batch.parity import compare_results
from wtb_domain.batch.spec import RayConfig, load_spec

DEMO_SPEC = Path(__file__).resolve().parents[2] / "wtb_domain" / "demo" / "batch.yaml"
REPO = Path(__file__).resolve().parents[2]
DEMO_RESULTS = 27 * 40


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    # The nodes' environment is every Ray worker's: this checkout first on the import path.
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    with ray_cluster(cpus_per_node=(1, 1), env={"PYTHONPATH": path}) as running:
        yield running
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
    pids = {int(str(r.worker_id).split(":")[1]) for r in ray_rows}
    assert os.getpid() not in pids
    nodes = {cluster.node_of_worker(pid) for pid in pids}
    assert nodes == {0, 1}, f"worker processes {sorted(pids)} ran on nodes {nodes}"

    # A second batch runs on the same cluster (new worker processes: Ray binds them to a job).
    again = f"demo-cluster-again-{secrets.token_hex(4)}"
    second = run_batch(spec.model_copy(update={"batch_id": again}), base_dir)
    assert (second["state"], second["done"]) == ("Completed", DEMO_RESULTS), second
    assert cluster.alive_nodes() == 2
