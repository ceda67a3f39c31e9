"""Two live runners on one batch id, no kill: every node runs once, every leaf has one result.

Both runners start together on the same batch, as two threads with their own App and as two
real ``wtb batch run`` processes, on SQLite and PostgreSQL. The claim lease is short
(``WTB_EXECUTION_LEASE_S`` = :data:`LEASE_S`) and ``b:y`` runs longer than it, so claims live
on heartbeats and node-write renewals while the other runner keeps trying to claim the same
executions: a lease that lapsed while its holder was alive and renewing would let the other
runner take the execution over and run a node again. Per trial:

* each node of each execution ran once (a log every node appends to, across processes), and
  the store holds exactly those node checkpoints, in intact chains, nothing left claimed;
* one result per (combination, case, repeat); the matrix counts each combination once per
  case; the batch is ``completed``, with one end event in its audit log;
* both runners finish ``completed`` with every result, and the node runs they report add up
  to the node runs that happened (the one that waited reports the ones it did not run as 0).

Found by these tests: the holder timed its lease from when a write *returned* (and from when
the engine registered the claim), while the store's lease ran from before the write waited
for the SQLite write lock; under load the lease lapsed a beat before the holder renewed it.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.reliability import harness as h
from tests.reliability import workflows as wf
from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService, BatchSummary
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.claims import LEASE_ENV

LEASE_S = 0.5
SLOW_S = 0.8
"""``b:y``'s run time: longer than a lease (renewed by the heartbeat alone meanwhile)."""
CASES = 3
TRIALS = 3
NODE_RUNS = 14 * CASES  # 2 + 4 + 8 nodes per case tree
RESULTS = 8 * CASES
RUN_TIMEOUT_S = 240


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wtb.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture(autouse=True)
def _short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LEASE_ENV, str(LEASE_S))
    monkeypatch.setenv(wf.OVERLAP_SLOW_ENV, str(SLOW_S))


def spec_for(batch_id: str) -> dict[str, Any]:
    return {
        "workflow": wf.OVERLAP,
        "batch_id": batch_id,
        "variants": {node: ["x", "y"] for node in wf.CHAIN_NODES},
        "cases": [
            {"id": f"c{i}", "input": {"q": f"q{i}"}, "expected": {"answer": f"q{i}|a:x-b:x-c:x"}}
            for i in range(CASES)
        ],
        "evaluators": [{"type": "exact_match"}],
        "max_workers": h.WORKERS,
    }


def check_ran_once(db: h.Db, batch_id: str, log: Path) -> None:
    """What a user relies on after two runners shared the batch."""
    counts = wf.call_counts(log)
    twice = {k: n for k, n in counts.items() if n > 1}
    assert not twice, f"nodes run more than once: {twice}"
    assert sum(counts.values()) == NODE_RUNS

    executions = db.executions(batch_id)
    cps = db.checkpoints(set(executions))
    h.check_chains(executions, cps)
    node_cps = Counter((r.execution_id, r.node) for r in cps if r.source == "node")
    assert set(node_cps.values()) == {1} and set(node_cps) == set(counts)

    results = h.results(db.url, batch_id)
    leaves = Counter((r.combination_name, r.case_id, r.repeat) for r in results)
    assert len(leaves) == RESULTS and set(leaves.values()) == {1}
    assert {r.success for r in results} == {True}
    matrix = BatchService(sql_app(db.url, audit=False)).matrix(batch_id)
    assert len(matrix.stats) == 8 and {s.n for s in matrix.stats} == {CASES}
    story = db.batch_story(batch_id)
    assert db.batch_status(batch_id) == "completed", story
    ended = [entry for entry in story if kind(entry) == "batchcompleted"]
    assert len(ended) == 1, story  # both runners end the batch; it ended once


def registrations(db: h.Db, batch_id: str) -> int:
    return sum(1 for entry in db.batch_story(batch_id) if kind(entry) == "batchstarted")


def kind(entry: str) -> str:
    """An audit entry's event type, however spelt (``BatchStarted``, ``batch_started``)."""
    return entry.split(" ", 1)[0].replace("_", "").lower()


def claimed(db: h.Db, batch_id: str) -> int:
    return sum(1 for e in db.executions(batch_id).values() if e.claimed_by is not None)


def run_service(url: str, spec: dict[str, Any], barrier: threading.Barrier) -> BatchSummary:
    """One runner: its own App, every task group on two threads, as a flow would."""
    service = BatchService(sql_app(url))  # with the audit log: the batch's end is in it
    barrier.wait(60)
    prepared = service.prepare(BatchSpec.parse(spec), workers=h.WORKERS)
    with ThreadPoolExecutor(h.WORKERS) as pool:
        outcomes = list(
            pool.map(
                lambda g: service.run_group(prepared.payload, g.case_id, list(g.leaf_keys)),
                prepared.groups,
            )
        )
    nodes = sum(o.node_executions for o in outcomes)
    return service.finish(prepared.batch_id, node_executions=nodes)


@pytest.mark.slow
def test_two_runner_threads_run_every_node_once(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = h.Db(store_url)
    for trial in range(TRIALS):
        batch_id = f"two-{uuid.uuid4().hex[:8]}-{trial}"
        log = tmp_path / f"calls-{trial}.log"
        monkeypatch.setenv(wf.NODE_LOG_ENV, str(log))
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(run_service, store_url, spec_for(batch_id), barrier) for _ in range(2)
            ]
            summaries = [f.result(RUN_TIMEOUT_S) for f in futures]

        check_ran_once(db, batch_id, log)
        for summary in summaries:
            assert summary.status.value == "completed" and summary.done == RESULTS, summary
        # the runners' own node counts add up to what ran: nothing counted twice or lost
        assert sum(s.node_executions for s in summaries) == NODE_RUNS, summaries


@pytest.mark.slow
def test_two_wtb_batch_run_processes_run_every_node_once(
    store_url: str, prefect_api_url: str, tmp_path: Path
) -> None:
    batch_id = f"cli-{uuid.uuid4().hex[:8]}"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec_for(batch_id)))
    log, gate, db = tmp_path / "calls.log", tmp_path / "gate", h.Db(store_url)

    def start(i: int) -> subprocess.Popen[bytes]:
        out = tmp_path / f"run-{i}.out"
        return h.start_cli(
            tmp_path, spec_file, batch_id, store_url, prefect_api_url, log, gate, out
        )

    procs = [start(i) for i in range(2)]
    try:
        # Both boot and register the batch (the second registration resumes it); the first
        # to claim executions waits at their first node for the gate, the other meanwhile
        # waits for those claims, polling the store.
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not (registrations(db, batch_id) == 2 and claimed(db, batch_id) >= h.WORKERS):
            for i, p in enumerate(procs):
                assert p.poll() is None, (tmp_path / f"run-{i}.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "the runners did not reach their first nodes"
            time.sleep(0.05)
        gate.touch()
        codes = [p.wait(RUN_TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            h.kill(p)
    outputs = [(tmp_path / f"run-{i}.out").read_text() for i in range(2)]
    assert codes == [0, 0], [o[-3000:] for o in outputs]
    check_ran_once(db, batch_id, log)
    reported = 0
    for output in outputs:
        line = next(x for x in output.splitlines() if x.startswith(f"batch {batch_id}:"))
        assert f"completed - {RESULTS} of {RESULTS} results, 0 failed" in line, line
        reported += int(line.split(" failed, ")[1].split(" node runs")[0])
    assert reported == NODE_RUNS, outputs  # each runner reports only the nodes it ran
