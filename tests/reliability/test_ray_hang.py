"""A node that hangs on a Ray worker: its timeout fails the execution, the batch completes.

``runner: ray`` with the ``testing`` preset (a fresh local Ray, num_cpus=2) through the real
Prefect flow. The ``hang`` variant blocks far longer than the test may take; its node's
``timeout_s`` (0.5 s) makes the engine record the execution failed (TimeoutError) and the
task go on with its other leaves. The hung thread cannot be interrupted inside the worker;
it ends with the worker process when the flow's local Ray shuts down, which the test checks.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from flows.batch_test import run_batch
from tests.reliability import harness as h
from tests.reliability import workflows as wf
from tests.reliability.test_node_faults import faults_spec

GONE_WITHIN_S = 30


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.ray
@pytest.mark.slow
def test_hung_node_on_ray_is_recorded_failed_and_the_batch_completes(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "calls.log"
    monkeypatch.setenv(wf.NODE_LOG_ENV, str(log))  # the local Ray inherits the environment
    url = f"sqlite:///{tmp_path / 'wtb.db'}"
    spec = faults_spec(url, "ray-hang", ["ok", "hang"], runner="ray", ray="testing")

    started = time.monotonic()
    summary = run_batch(spec)
    took = time.monotonic() - started
    assert took < wf.HANG_S / 2, f"the batch took {took:.0f} s: it waited for the hung node"
    assert summary["state"] == "Completed", summary
    assert (summary["status"], summary["done"], summary["failed"]) == (
        "completed_with_failures",
        4,
        2,
    ), summary
    assert summary["errors"] == []

    for r in h.results(url, "ray-hang"):
        if r.variant_config["work"] == "hang":
            assert r.success is False
            assert r.error == "TimeoutError: node 'work' exceeded its timeout of 0.5 s"
        else:
            assert (r.success, r.passed, r.error) == (True, True, None)

    # the hung calls ran in Ray worker processes, which are gone once the flow's Ray stopped
    hung = {pid for _, node, pid in wf.calls(log) if node == "work"} - {os.getpid()}
    assert hung, "no node call was logged from a Ray worker"
    deadline = time.monotonic() + GONE_WITHIN_S
    while any(alive(pid) for pid in hung) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in hung), f"Ray workers {hung} outlived the batch"
