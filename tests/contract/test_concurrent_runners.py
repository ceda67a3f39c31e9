"""Real concurrent runners on one store: no node runs twice, a dead runner is replaced.

* two processes resume one paused execution at once: one proceeds, the other is refused
  before it runs a node, and the chain has the checkpoints of a single run (6, not 10);
* a runner SIGKILLed mid-node: its claim blocks a resume while it lives; once it is dead
  (same host: its pid is gone) the execution continues at once from its last checkpoint
  (a runner of another host waits for the lease: see test_claims_contract.py);
* two processes run the same batch id at once: every node of every execution runs once and
  each leaf has one result.

Processes share SQLite or PostgreSQL; the memory store (one process) is covered by threads.
Node calls are counted in a file every node appends to (see :mod:`tests.contract.runners`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contract import runners
from wtb_domain import App, Status, memory_app, sql_app
from wtb_domain.adapters.memory import MemoryStore
from wtb_domain.batch.service import BatchService
from wtb_domain.claims import LEASE_ENV, ExecutionClaimed

SPAWN = multiprocessing.get_context("spawn")
KILLED_LEASE_S = 2.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/wtb.db"
    else:
        yield request.getfixturevalue("pg_url")


def collect(queue: Any, count: int, procs: list[Any], timeout_s: float = 240) -> list[Any]:
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < count and time.monotonic() < deadline:
            try:
                out.append(queue.get(timeout=2))
            except Exception:
                if not any(p.is_alive() for p in procs):
                    break
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    assert len(out) == count, f"{len(out)} of {count} runners reported: {out}"
    return out


def history_len(app: App, execution_id: str) -> int:
    with app.uow() as uow:
        return len(uow.checkpoints.history(execution_id))


def check_one_proceeded(outcomes: list[tuple[int, str, str]], eid: str, log: Path) -> None:
    kinds = sorted(kind for _, kind, _ in outcomes)
    assert kinds[-1] == "ok" and kinds[0] != "ok", outcomes
    winner = next(pid for pid, kind, _ in outcomes if kind == "ok")
    loser_pid, loser_kind, message = next(o for o in outcomes if o[1] != "ok")
    assert loser_kind in ("ExecutionClaimed", "ExecutionConflict"), outcomes
    assert eid in message
    calls = runners.calls(log)
    resumed = [n for e, n, _ in calls if e == eid and n != "n1"]
    assert sorted(resumed) == ["n2", "n3", "n4", "n5"]  # each once
    assert {pid for e, n, pid in calls if n != "n1"} == {winner}  # the loser ran no node
    assert loser_pid != winner


def test_two_processes_resuming_one_paused_execution(db_url: str, tmp_path: Path) -> None:
    app = sql_app(db_url, audit=False)
    log = tmp_path / "calls.log"
    paused = app.controller.run(
        runners.FIVE, {"log": str(log), "sleep_s": 0.2}, break_before=["n2"]
    )
    assert history_len(app, paused.id) == 2
    barrier, queue = SPAWN.Barrier(2), SPAWN.Queue()
    procs = [
        SPAWN.Process(target=runners.resume_main, args=(db_url, paused.id, barrier, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = collect(queue, 2, procs)

    check_one_proceeded(outcomes, paused.id, log)
    assert app.controller.get(paused.id).status is Status.COMPLETED
    assert history_len(app, paused.id) == 6  # one run's chain: input + 5 nodes, not 10
    assert app.controller.state(paused.id)["trace"] == list(runners.FIVE_NODES)


def test_two_threads_resuming_one_paused_execution_on_the_memory_store(tmp_path: Path) -> None:
    store = MemoryStore()
    app = memory_app(store, audit=False)
    log = tmp_path / "calls.log"
    paused = app.controller.run(
        runners.FIVE, {"log": str(log), "sleep_s": 0.1}, break_before=["n2"]
    )
    barrier = threading.Barrier(2)
    outcomes: list[tuple[int, str, str]] = []

    def body(i: int) -> None:
        controller = memory_app(store, audit=False).controller
        barrier.wait(10)
        try:
            controller.resume(paused.id)
            outcomes.append((i, "ok", ""))
        except Exception as exc:
            outcomes.append((i, type(exc).__name__, str(exc)))

    threads = [threading.Thread(target=body, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    kinds = sorted(kind for _, kind, _ in outcomes)
    assert kinds == ["ExecutionClaimed", "ok"] or kinds == ["ExecutionConflict", "ok"], outcomes
    assert Counter(n for e, n, _ in runners.calls(log) if e == paused.id) == Counter(
        {n: 1 for n in runners.FIVE_NODES}
    )
    assert history_len(app, paused.id) == 6


def test_a_killed_runner_blocks_resume_while_alive_and_not_after(
    db_url: str, tmp_path: Path
) -> None:
    app = sql_app(db_url, audit=False)
    log = tmp_path / "calls.log"
    paused = app.controller.run(
        runners.FIVE, {"log": str(log), "slow_node": "n3", "slow_s": 120}, break_before=["n2"]
    )
    code = "import sys; from tests.contract.runners import resume_forever as r; r(*sys.argv[1:])"
    env = {**os.environ, LEASE_ENV: str(KILLED_LEASE_S)}
    child = subprocess.Popen(
        [sys.executable, "-c", code, db_url, paused.id], env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not any(n == "n3" for _, n, _ in runners.calls(log)):
            assert child.poll() is None, "the runner exited before reaching n3"
            assert time.monotonic() < deadline, "the runner never reached n3"
            time.sleep(0.05)
        time.sleep(KILLED_LEASE_S)  # longer than one lease: the heartbeat has renewed it
        assert app.controller.get(paused.id).status is Status.RUNNING
        with pytest.raises(ExecutionClaimed, match=f"{paused.id} is being run by .*:{child.pid}:"):
            app.controller.resume(paused.id)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    killed_at = time.monotonic()

    # The runner's pid is gone from this host: its claim is taken over without waiting.
    done = app.controller.resume(paused.id)
    assert time.monotonic() - killed_at < KILLED_LEASE_S
    assert done.status is Status.COMPLETED
    counts = Counter(n for e, n, _ in runners.calls(log) if e == paused.id)
    # n3 was killed mid-run and ran again; every other node ran once
    assert counts == Counter({"n1": 1, "n2": 1, "n3": 2, "n4": 1, "n5": 1})
    assert history_len(app, paused.id) == 6
    assert app.controller.state(paused.id)["trace"] == list(runners.FIVE_NODES)


def test_two_concurrent_runs_of_one_batch_id_run_every_node_once(
    db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    cases = [{"id": f"c{i}", "input": {"log": str(log), "sleep_s": 0.03}} for i in range(3)]
    spec = {
        "workflow": runners.BATCH3,
        "batch_id": f"twice-{os.getpid()}-{time.monotonic_ns()}",
        "variants": {"a": ["x", "y"], "b": ["x", "y"], "c": ["x", "y"]},
        "cases": cases,
        "evaluators": [{"type": "exact_match"}],
    }
    barrier, queue = SPAWN.Barrier(2), SPAWN.Queue()
    procs = [
        SPAWN.Process(target=runners.batch_main, args=(db_url, spec, barrier, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    outcomes = collect(queue, 2, procs)

    assert [kind for _, kind, _ in outcomes] == ["ok", "ok"], outcomes
    assert {text.split()[:2] == ["completed", "24"] for _, _, text in outcomes} == {True}
    counts = runners.call_counts(log)
    assert set(counts.values()) == {1}, [k for k, n in counts.items() if n > 1]
    assert sum(counts.values()) == 14 * len(cases)  # 2 + 4 + 8 node runs per case tree
    ran = sum(int(text.split()[2]) for _, _, text in outcomes)
    assert ran == 14 * len(cases)  # the runners' own counts agree: nothing ran twice

    service = BatchService(sql_app(db_url, audit=False))
    results = service.rows(spec["batch_id"])  # type: ignore[arg-type]
    assert len(results) == 8 * len(cases)
    leaves = Counter((r.combination_name, r.case_id, r.repeat) for r in results)
    assert set(leaves.values()) == {1}
    assert {r.success for r in results} == {True}
