"""Batch workers push their metrics to a real Pushgateway (Debian's prometheus-pushgateway,
started here on a free loopback port and stopped by PID): every node run is counted exactly
once, whichever worker ran it, and no worker's push replaces another's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from tests.batch.test_flow import linear_spec
from tests.conftest import REPO_ROOT, _in_ci
from tests.test_metrics import free_port
from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.metrics import PUSHGATEWAY_ENV, worker_id

BINARY = "prometheus-pushgateway"
WORKER_SCRIPT = """
import json, sys
from tasks.batch import run_case_group
args = json.loads(open(sys.argv[1]).read())
print(json.dumps(run_case_group.fn(args["payload"], args["case_id"], args["leaf_keys"])))
"""


@pytest.fixture
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh gateway per test (it is ready in well under a second)."""
    binary = shutil.which(BINARY) or ("/usr/bin/" + BINARY)
    if not os.access(binary, os.X_OK):
        reason = f"{BINARY} not installed: apt-get install -y {BINARY}"
        if _in_ci():
            pytest.fail(f"CI is set, so the Pushgateway tests must run. {reason}", pytrace=False)
        pytest.skip(reason)
    port = free_port()
    log = (tmp_path_factory.mktemp("pushgateway") / "log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"{BINARY} exited with {proc.returncode}"
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{BINARY} did not get ready on {url}"
            time.sleep(0.1)
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


def pushed(url: str, name: str, **labels: str) -> dict[str, float]:
    """``name``'s samples on the gateway (job wtb) matching ``labels``, summed per worker."""
    by_worker: dict[str, float] = defaultdict(float)
    body = httpx.get(f"{url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            wanted = s.name == name and s.labels.get("job") == "wtb"
            if wanted and all(s.labels.get(k) == v for k, v in labels.items()):
                by_worker[s.labels["worker"]] += s.value
    return dict(by_worker)


def node_checkpoints(url: str) -> int:
    app = sql_app(url, audit=False)
    assert app.database is not None
    with app.database.engine.connect() as conn:
        query = "SELECT count(*) FROM wtb_checkpoints WHERE source = 'node'"
        return int(conn.execute(text(query)).scalar_one())


def test_separate_worker_processes_each_push_their_own_group(
    pushgateway: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'wtb.db'}"
    prepared = BatchService(sql_app(url, audit=False)).prepare(
        linear_spec(url, "push-workers"), workers=2
    )
    assert len(prepared.groups) >= 2
    env = {**os.environ, PUSHGATEWAY_ENV: pushgateway, "PYTHONPATH": str(REPO_ROOT)}
    procs = []
    for i, group in enumerate(prepared.groups):
        args = tmp_path / f"group{i}.json"
        args.write_text(
            json.dumps(
                {
                    "payload": prepared.payload,
                    "case_id": group.case_id,
                    "leaf_keys": list(group.leaf_keys),
                }
            )
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER_SCRIPT, str(args)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    outcomes: list[dict[str, Any]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        outcomes.append(json.loads(out.decode().strip().splitlines()[-1]))

    nodes = pushed(pushgateway, "wtb_node_runs_total")
    assert len(nodes) == len(procs)  # one group per worker process: nothing overwritten
    ran = node_checkpoints(url)
    assert ran > 0
    assert sum(nodes.values()) == ran == sum(o["node_executions"] for o in outcomes)
    histogram = pushed(pushgateway, "wtb_node_duration_seconds_count")
    assert sum(histogram.values()) == ran
    writes = pushed(pushgateway, "wtb_checkpoint_write_seconds_count")
    assert sum(writes.values()) >= ran  # every node's checkpoint (and each input's)
    results = pushed(pushgateway, "wtb_batch_results_total", batch="push-workers")
    assert sum(results.values()) == prepared.total
    in_flight = pushed(pushgateway, "wtb_batch_in_flight")
    assert set(in_flight.values()) == {0.0}  # pushed after each task ended


@pytest.mark.usefixtures("prefect_harness")
def test_a_threadpool_batch_counts_every_node_run_once(
    pushgateway: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks on parallel threads of one process push one group; serialised pushes never
    leave an older snapshot on the gateway."""
    from flows.batch_test import run_batch

    monkeypatch.setenv(PUSHGATEWAY_ENV, pushgateway)
    url = f"sqlite:///{tmp_path / 'wtb.db'}"

    def local() -> float:
        return sum(
            s.value
            for family in REGISTRY.collect()
            for s in family.samples
            if s.name == "wtb_node_runs_total"
        )

    before = local()
    summary = run_batch(linear_spec(url, "push-threads", max_workers=4))
    assert summary["status"] == "completed", summary
    ran = node_checkpoints(url)
    assert local() - before == ran == summary["node_executions"]
    mine = pushed(pushgateway, "wtb_node_runs_total")[worker_id()]
    assert mine == local()
    results = pushed(pushgateway, "wtb_batch_results_total", batch="push-threads")
    assert results == {worker_id(): summary["total"]}


@pytest.mark.usefixtures("prefect_harness")
def test_a_ray_batch_counts_every_node_run_once_across_ray_workers(
    pushgateway: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray workers (processes of a fresh local Ray) push one group each."""
    from flows.batch_test import run_batch

    monkeypatch.setenv(PUSHGATEWAY_ENV, pushgateway)  # local Ray inherits the environment
    url = f"sqlite:///{tmp_path / 'wtb.db'}"
    summary = run_batch(linear_spec(url, "push-ray", runner="ray", ray="testing"))
    assert summary["status"] == "completed", summary
    ran = node_checkpoints(url)
    workers = {
        w: n for w, n in pushed(pushgateway, "wtb_node_runs_total").items() if w != worker_id()
    }
    assert workers and all(f"-{os.getpid()}-" not in w for w in workers)
    # only Ray workers ran nodes (this process ran none of this batch's)
    assert sum(workers.values()) == ran == summary["node_executions"]
    results = pushed(pushgateway, "wtb_batch_results_total", batch="push-ray")
    assert worker_id() not in results and sum(results.values()) == summary["total"]
