"""Bounded retries when PostgreSQL goes away mid-batch, simulated with a TCP proxy we cut off.

The proxy sits between WTB and the shared server; ``stop()`` refuses new connections and
resets the open ones, as a server restart does. Nothing here restarts the real server.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc

from tests.postgres.conftest import (
    TcpProxy,
    double,
    forget_database,
    result_for,
    sized_sql_app,
    small_workflow,
    url_via,
)
from wtb_domain import App, Status, StoreError, sql_app
from wtb_domain.adapters.sql.retry import backoff_delay, is_transient, with_retries
from wtb_domain.ids import new_id
from wtb_domain.model import BatchTest, Checkpoint, Execution, Source
from wtb_domain.state import encode_update

pytestmark = pytest.mark.postgres


# --------------------------------------------------------------------------- classification


def _wrapped(orig: BaseException, invalidated: bool = False) -> sa_exc.DBAPIError:
    cls = (
        sa_exc.OperationalError if isinstance(orig, psycopg.OperationalError) else sa_exc.DBAPIError
    )
    if isinstance(orig, psycopg.IntegrityError):
        cls = sa_exc.IntegrityError
    return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)  # type: ignore[arg-type]


def _store_error_from(exc: BaseException) -> StoreError:
    try:
        raise StoreError("commit failed") from exc
    except StoreError as err:
        return err


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (_wrapped(psycopg.OperationalError("connection refused")), True),
        (_wrapped(psycopg.OperationalError("server closed the connection"), True), True),
        (_wrapped(pg_errors.AdminShutdown("terminating connection")), True),
        (_wrapped(pg_errors.CannotConnectNow("the database system is starting up")), True),
        (_wrapped(pg_errors.TooManyConnections("too many clients")), True),
        (_store_error_from(_wrapped(psycopg.OperationalError("connection refused"))), True),
        (psycopg.OperationalError("connection refused"), True),
        (_wrapped(pg_errors.QueryCanceled("statement timeout")), False),
        (_wrapped(pg_errors.UniqueViolation("duplicate key")), False),
        (_store_error_from(_wrapped(pg_errors.UniqueViolation("duplicate key"))), False),
        (_wrapped(pg_errors.UndefinedTable("no such table")), False),
        (ValueError("not a database error"), False),
        (StoreError("no cause"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_backoff_is_exponential_capped_and_jittered() -> None:
    import random

    rng = random.Random(0)
    for attempt, ceiling in [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6), (6, 5.0), (20, 5.0)]:
        delays = [backoff_delay(attempt, 0.2, 5.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # really jittered


def test_with_retries_is_bounded_and_never_retries_integrity_errors() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def refused() -> None:
        calls.append(1)
        raise _wrapped(psycopg.OperationalError("connection refused"))

    with pytest.raises(StoreError) as err:
        with_retries(refused, attempts=4, sleep=sleeps.append)
    assert len(calls) == 4 and len(sleeps) == 3
    assert "database unreachable after 4 attempts" in str(err.value)
    assert "the batch can be resumed with the same batch_id" in str(err.value)
    assert "connection refused" in str(err.value)

    calls.clear()

    def duplicate() -> None:
        calls.append(1)
        raise _wrapped(pg_errors.UniqueViolation("duplicate key"))

    with pytest.raises(sa_exc.IntegrityError):
        with_retries(duplicate, attempts=5, sleep=sleeps.append)
    assert len(calls) == 1

    outcomes: Iterator[Any] = iter([_wrapped(psycopg.OperationalError("reset")), "ok"])

    def flaky() -> str:
        item = next(outcomes)
        if isinstance(item, BaseException):
            raise item
        return str(item)

    assert with_retries(flaky, sleep=lambda _: None) == "ok"


def test_a_real_integrity_error_is_not_retried(pg_url: str) -> None:
    app = sql_app(pg_url, audit=False)
    batch_id = f"retry-dup-{secrets.token_hex(4)}"
    calls: list[int] = []

    def add_batch() -> None:
        calls.append(1)
        with app.uow() as uow:
            uow.batches.add(BatchTest(batch_id, "tests:wf", {}, 1))
            uow.commit()

    with_retries(add_batch)
    with pytest.raises(StoreError) as err:
        with_retries(add_batch, sleep=lambda _: pytest.fail("must not back off"))
    assert len(calls) == 2
    assert "duplicate key" in str(err.value)


# --------------------------------------------------------------------------- through the proxy


@pytest.fixture
def proxied_app(pg_url: str, pg_proxy: TcpProxy) -> Iterator[App]:
    url = url_via(pg_url, pg_proxy.port)
    app = sized_sql_app(url, pool_size=4)
    try:
        yield app
    finally:
        forget_database(url)


def _count(pg_url: str, sql: str, **params: Any) -> int:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql), params).scalar_one())
    finally:
        engine.dispose()


def _new_batch(app: App, total: int) -> str:
    batch_id = f"retry-{secrets.token_hex(5)}"
    with app.uow() as uow:
        uow.batches.add(BatchTest(batch_id, "tests:wf", {}, total))
        uow.commit()
    return batch_id


def test_server_restart_mid_batch_gives_bounded_retries_then_success(
    pg_url: str, pg_proxy: TcpProxy, proxied_app: App
) -> None:
    workers, units, per_unit = 4, 15, 10
    batch_id = _new_batch(proxied_app, workers * units * per_unit)
    retries: list[tuple[int, float]] = []
    errors: list[BaseException] = []
    done = 0
    lock = threading.Lock()

    def unit(worker: int, k: int) -> int:
        rows = [
            result_for(batch_id, f"e-{worker}-{k}", f"w{worker}", f"case-{k}", repeat)
            for repeat in range(per_unit)
        ]
        with proxied_app.uow() as uow:
            written = uow.results.add_many(rows)
            time.sleep(0.01)  # keep transactions open long enough to be cut mid-way
            uow.commit()
        return written

    def worker(w: int) -> None:
        nonlocal done
        try:
            for k in range(units):
                with_retries(
                    lambda k=k: unit(w, k),  # type: ignore[misc]
                    on_retry=lambda attempt, exc, delay: retries.append((attempt, delay)),
                )
                with lock:
                    done += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while done < workers * units // 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    pg_proxy.stop()  # "the server restarts": open connections reset, new ones refused ...
    pg_proxy.restart_after(1.0)  # ... and it is back after a second
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert retries, "the outage was not noticed"
    assert max(attempt for attempt, _ in retries) <= 4  # bounded: back within 5 attempts
    assert (
        _count(
            pg_url,
            "SELECT count(*) FROM wtb_batch_test_results WHERE batch_test_id = :b",
            b=batch_id,
        )
        == workers * units * per_unit
    )


def test_server_that_stays_down_gives_a_clear_store_error(
    pg_proxy: TcpProxy, proxied_app: App
) -> None:
    batch_id = _new_batch(proxied_app, 1)
    pg_proxy.stop()
    calls: list[int] = []

    def unit() -> None:
        calls.append(1)
        with proxied_app.uow() as uow:
            uow.results.add_many([result_for(batch_id, "e", "c", "case")])
            uow.commit()

    started = time.monotonic()
    with pytest.raises(StoreError) as err:
        with_retries(unit, attempts=4, base_delay=0.1, max_delay=0.5)
    elapsed = time.monotonic() - started
    assert len(calls) == 4
    assert elapsed < 0.1 + 0.2 + 0.4 + 5  # three backoffs (<= 0.7 s) plus connect attempts
    message = str(err.value)
    assert message.startswith("database unreachable after 4 attempts: ")
    assert message.endswith("; the batch can be resumed with the same batch_id")


def _execution_with_checkpoints(
    workflow_hash: str,
) -> tuple[Execution, list[Checkpoint], dict[str, str]]:
    execution = Execution(id=new_id(), workflow_name="pg-small", workflow_hash=workflow_hash)
    first = encode_update({}, {"x": 1}, node=None)
    second = encode_update(first.manifest, {"x": 2}, node="a")
    cps = []
    parent = None
    for step, (node, enc) in enumerate([(None, first), ("a", second)]):
        cp = Checkpoint(
            id=new_id(),
            execution_id=execution.id,
            parent_id=parent,
            step=step,
            node=node,
            variant="default" if node else None,
            source=Source.NODE if node else Source.INPUT,
            manifest=enc.manifest,
            metadata={},
            created_at=execution.created_at,
        )
        cps.append(cp)
        parent = cp.id
    execution.head_checkpoint_id = parent
    return execution, cps, {**first.new_blobs, **second.new_blobs}


def test_a_transaction_cut_before_commit_leaves_no_partial_rows(
    pg_url: str, pg_proxy: TcpProxy, proxied_app: App
) -> None:
    """Execution row + checkpoints commit together: cut before COMMIT, nothing is stored;
    the retry then stores all of them exactly once."""
    execution, cps, blobs = _execution_with_checkpoints("h" * 16)
    attempts: list[int] = []

    def unit() -> None:
        attempts.append(1)
        with proxied_app.uow() as uow:
            uow.executions.add(execution)
            for cp in cps:
                uow.checkpoints.add(cp, blobs)
            if len(attempts) == 1:
                pg_proxy.drop_connections()  # the server goes away before COMMIT
                e = _count(
                    pg_url, "SELECT count(*) FROM wtb_executions WHERE id = :i", i=execution.id
                )
                c = _count(
                    pg_url,
                    "SELECT count(*) FROM wtb_checkpoints WHERE execution_id = :i",
                    i=execution.id,
                )
                assert (e, c) == (0, 0)  # uncommitted: invisible
            uow.commit()

    with_retries(unit, base_delay=0.05)
    assert len(attempts) == 2
    assert _count(pg_url, "SELECT count(*) FROM wtb_executions WHERE id = :i", i=execution.id) == 1
    assert (
        _count(
            pg_url, "SELECT count(*) FROM wtb_checkpoints WHERE execution_id = :i", i=execution.id
        )
        == 2
    )


def test_retrying_inside_one_long_unit_of_work_reconnects(
    pg_url: str, pg_proxy: TcpProxy, proxied_app: App
) -> None:
    """The engine keeps one unit of work across an execution and commits per node. Retrying a
    node's write there (rollback, then the same statements again on the same UoW) works: the
    invalidated connection is replaced on the next statement."""
    execution, cps, blobs = _execution_with_checkpoints("k" * 16)
    attempts: list[int] = []
    with proxied_app.uow() as uow:
        uow.executions.add(execution)
        uow.checkpoints.add(cps[0], blobs)
        uow.commit()

        def write_node() -> None:
            attempts.append(1)
            try:
                uow.checkpoints.add(cps[1], blobs)
                uow.executions.update(execution)
                if len(attempts) == 1:
                    pg_proxy.drop_connections()
                uow.commit()
            except BaseException:
                uow.rollback()
                raise

        with_retries(write_node, base_delay=0.05)
    assert len(attempts) == 2
    assert (
        _count(
            pg_url, "SELECT count(*) FROM wtb_checkpoints WHERE execution_id = :i", i=execution.id
        )
        == 2
    )


def test_engine_commit_cut_mid_run_keeps_the_last_committed_node_and_resumes(
    pg_url: str, pg_proxy: TcpProxy, proxied_app: App
) -> None:
    """The engine commits checkpoint + execution head per node. Losing the server for good
    while node ``b`` runs (with or without retries around the node write) leaves the execution
    at node ``a``'s checkpoint (no orphan rows); a resume finishes it with exactly one
    checkpoint per node."""
    cut = threading.Event()

    def cutting_b(state: Any, ctx: Any) -> Any:
        if not cut.is_set():
            cut.set()
            pg_proxy.stop()
        return double(state, ctx)

    workflow = small_workflow(b=cutting_b)
    execution_id = f"retry-engine-{secrets.token_hex(5)}"
    with pytest.raises(StoreError):
        proxied_app.controller.run(workflow, {"x": 1}, execution_id=execution_id)

    direct = sql_app(pg_url, audit=False)
    stored = direct.controller.get(execution_id)
    history = direct.controller.history(execution_id)
    assert [cp.node for cp in history] == [None, "a"]
    assert stored.head_checkpoint_id == history[-1].id
    assert stored.status is Status.RUNNING

    finished = direct.controller.resume(execution_id, workflow)
    assert finished.status is Status.COMPLETED
    assert [cp.node for cp in direct.controller.history(execution_id)] == [None, "a", "b", "c"]
    assert direct.controller.state(execution_id) == {"x": 4, "label": "x=4"}
