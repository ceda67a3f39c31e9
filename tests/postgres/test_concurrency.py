"""100 concurrent workers on one PostgreSQL database: no connection errors, every row stored.

* 100 threads sharing one ``sql_app`` (one engine, one pool) in this process;
* 25 spawned processes x 4 threads, each process with its own ``sql_app(url)``.

Connection budget: the server's ``max_connections`` (100 by default, 3 of them reserved for
superusers) is shared by every process. A pool holds at most ``pool_size + max_overflow``
connections (``Database`` sets ``max_overflow = pool_size``), so N runner processes need
``N * 2 * pool_size`` below the budget: the default ``pool_size=10`` allows only 4 processes.
The process test therefore sizes each process's pool to ``pool_size=1`` (at most 2
connections for its 4 threads, 50 in all), and the threads of one process share its pool.
"""

from __future__ import annotations

import multiprocessing
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from tests.postgres.conftest import forget_database, result_for, sized_sql_app, small_workflow
from wtb_domain import App, Status, sql_app
from wtb_domain.model import BatchTest

pytestmark = pytest.mark.postgres

EXECUTIONS_PER_WORKER = 3
CHECKPOINTS_PER_EXECUTION = 4  # input + a, b, c


def run_worker(app: App, batch_id: str, worker: str, executions: int) -> list[str]:
    """Run small workflows and write one batch result per execution; return error texts."""
    errors: list[str] = []
    workflow = small_workflow()
    for k in range(executions):
        try:
            execution = app.controller.run(workflow, {"x": k}, labels={"worker": worker})
            if execution.status is not Status.COMPLETED:
                errors.append(f"{worker}/{k}: {execution.status} {execution.error_message}")
                continue
            with app.uow() as uow:
                uow.results.add_many([result_for(batch_id, execution.id, worker, f"case-{k}")])
                uow.commit()
        except Exception:
            errors.append(f"{worker}/{k}: {traceback.format_exc()}")
    return errors


def run_threads(
    app: App, batch_id: str, prefix: str, threads: int, barrier_wait: Callable[[], Any]
) -> list[str]:
    errors: list[str] = []
    lock = threading.Lock()

    def body(i: int) -> None:
        barrier_wait()
        found = run_worker(app, batch_id, f"{prefix}-t{i}", EXECUTIONS_PER_WORKER)
        with lock:
            errors.extend(found)

    pool = [threading.Thread(target=body, args=(i,), name=f"{prefix}-t{i}") for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=300)
    errors += [f"{t.name} did not finish" for t in pool if t.is_alive()]
    return errors


def process_main(
    url: str, batch_id: str, index: int, threads: int, pool_size: int, barrier: Any, queue: Any
) -> None:
    """A runner process (spawned): its own sql_app on ``url``, ``threads`` workers."""
    try:
        app = sized_sql_app(url, pool_size=pool_size)
        assert app.database is not None
        barrier.wait(timeout=240)  # every process is up before any thread starts
        errors = run_threads(app, batch_id, f"p{index}", threads, lambda: None)
        peak = app.database.engine.pool.checkedout()  # type: ignore[attr-defined]
        queue.put((index, errors, peak))
        forget_database(url)
    except BaseException:
        queue.put((index, [traceback.format_exc()], -1))


def _new_batch(app: App, total: int) -> str:
    batch_id = f"conc-{secrets.token_hex(5)}"
    with app.uow() as uow:
        uow.batches.add(BatchTest(batch_id, "tests:wf", {}, total))
        uow.commit()
    return batch_id


def _assert_all_stored(url: str, batch_id: str, workers: int) -> None:
    expected = workers * EXECUTIONS_PER_WORKER
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            results = conn.execute(
                text("SELECT count(*) FROM wtb_batch_test_results WHERE batch_test_id = :b"),
                {"b": batch_id},
            ).scalar_one()
            rolled_up = conn.execute(
                text("SELECT sum(n) FROM wtb_result_rollups WHERE batch_test_id = :b"),
                {"b": batch_id},
            ).scalar_one()
            executions, completed, checkpoints = conn.execute(
                text(
                    "SELECT count(DISTINCT e.id), count(DISTINCT e.id) FILTER "
                    "(WHERE e.status = 'completed'), count(c.id) "
                    "FROM wtb_batch_test_results r JOIN wtb_executions e ON e.id = r.execution_id "
                    "JOIN wtb_checkpoints c ON c.execution_id = e.id WHERE r.batch_test_id = :b"
                ),
                {"b": batch_id},
            ).one()
    finally:
        engine.dispose()
    assert results == expected
    assert rolled_up == expected  # every worker's upserts of the shared case rollups landed
    assert executions == completed == expected
    assert checkpoints == expected * CHECKPOINTS_PER_EXECUTION


class ConnectionSampler:
    """Samples the number of server connections to one database while a test runs."""

    def __init__(self, admin_url: str, database: str) -> None:
        self.engine = create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://"))
        self.database = database
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.engine.connect() as conn:
            while not self._stop.is_set():
                n = conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                    {"d": self.database},
                ).scalar_one()
                conn.rollback()
                self.peak = max(self.peak, int(n))
                self._stop.wait(0.05)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.engine.dispose()


def test_100_threads_share_one_app(pg_url: str, pg_admin_url: str) -> None:
    app = sql_app(pg_url, audit=True)
    assert app.database is not None
    engine = app.database.engine
    limit = engine.pool.size() + engine.pool._max_overflow  # type: ignore[attr-defined]
    peak = [0]

    def on_checkout(*_: Any) -> None:
        peak[0] = max(peak[0], engine.pool.checkedout())  # type: ignore[attr-defined]

    event.listen(engine, "checkout", on_checkout)
    batch_id = _new_batch(app, 100 * EXECUTIONS_PER_WORKER)
    barrier = threading.Barrier(100)
    database = pg_url.rsplit("/", 1)[1]
    started = time.monotonic()
    try:
        with ConnectionSampler(pg_admin_url, database) as sampler:
            errors = run_threads(app, batch_id, "thr", 100, lambda: barrier.wait(timeout=60))
    finally:
        event.remove(engine, "checkout", on_checkout)
    elapsed = time.monotonic() - started
    assert errors == []
    _assert_all_stored(pg_url, batch_id, 100)
    assert peak[0] <= limit
    print(
        f"\n100 threads: {elapsed:.1f} s, pool limit {limit}, peak checked out {peak[0]}, "
        f"peak server connections to the database {sampler.peak}"
    )


def test_100_workers_in_25_processes(pg_url: str, pg_admin_url: str) -> None:
    processes, threads, pool_size = 25, 4, 1
    app = sql_app(pg_url, audit=False)
    batch_id = _new_batch(app, processes * threads * EXECUTIONS_PER_WORKER)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=process_main,
            args=(pg_url, batch_id, i, threads, pool_size, barrier, queue),
            name=f"wtb-pg-runner-{i}",
        )
        for i in range(processes)
    ]
    database = pg_url.rsplit("/", 1)[1]
    started = time.monotonic()
    outcomes: dict[int, tuple[list[str], int]] = {}
    with ConnectionSampler(pg_admin_url, database) as sampler:
        for p in procs:
            p.start()
        try:
            deadline = time.monotonic() + 420
            while len(outcomes) < processes and time.monotonic() < deadline:
                try:
                    index, errors, peak = queue.get(timeout=5)
                except Exception:
                    if not any(p.is_alive() for p in procs):
                        break
                    continue
                outcomes[index] = (errors, peak)
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.terminate()
                    p.join(timeout=10)
    elapsed = time.monotonic() - started
    assert sorted(outcomes) == list(range(processes)), f"missing outcomes: {sorted(outcomes)}"
    errors = [e for errs, _ in outcomes.values() for e in errs]
    assert errors == [], errors[:3]
    _assert_all_stored(pg_url, batch_id, processes * threads)
    budget = processes * 2 * pool_size
    assert sampler.peak <= budget + 25  # this process's own pool and the sampler on top
    print(
        f"\n25 processes x 4 threads: {elapsed:.1f} s, pool_size={pool_size} per process "
        f"(<= {2 * pool_size} connections each, {budget} in all), peak server connections to "
        f"the database {sampler.peak}"
    )
