"""WTB through a real PgBouncer in transaction-pooling mode (started and stopped here).

In transaction pooling a client's consecutive transactions may run on different server
connections, so nothing may outlive a transaction on the server: no named server-side
prepared statements (WTB's engine sets psycopg's ``prepare_threshold=None`` unless
``WTB_PG_PREPARED_STATEMENTS=on``), no session ``SET``, advisory locks only at transaction
level (the migration lock is ``pg_advisory_xact_lock``).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest

from tests.postgres.conftest import (
    PgBouncer,
    forget_database,
    sized_sql_app,
    small_workflow,
    start_pgbouncer,
    stop_pgbouncer,
)
from tests.postgres.test_concurrency import EXECUTIONS_PER_WORKER, _assert_all_stored, run_threads
from wtb_domain import StoreError
from wtb_domain.adapters.sql.aggregates import matrix_for_batch
from wtb_domain.adapters.sql.database import PREPARED_ENV
from wtb_domain.model import BatchTest

pytestmark = pytest.mark.postgres

THREADS = 50
SERVER_POOL = 8


@pytest.fixture(scope="module")
def bouncer(own_pg_url: str) -> Iterator[PgBouncer]:
    b = start_pgbouncer(own_pg_url, pool_size=SERVER_POOL)
    try:
        yield b
    finally:
        forget_database(b.url)
        stop_pgbouncer(b)
    assert b.process.poll() is not None, "pgbouncer is still running"


def test_50_threads_through_pgbouncer_transaction_pooling(
    bouncer: PgBouncer, own_pg_url: str
) -> None:
    # 50 client connections (pool_size=25 + 25 overflow) multiplexed on 8 server connections;
    # the first use also runs the Alembic migrations through the bouncer.
    app = sized_sql_app(bouncer.url, pool_size=THREADS // 2)
    assert app.database is not None
    with app.database.engine.connect() as conn:
        assert conn.connection.dbapi_connection.prepare_threshold is None  # type: ignore[union-attr]
    batch_id = f"bouncer-{secrets.token_hex(5)}"
    with app.uow() as uow:
        uow.batches.add(BatchTest(batch_id, "tests:wf", {}, THREADS * EXECUTIONS_PER_WORKER))
        uow.commit()

    errors = run_threads(app, batch_id, "pgb", THREADS, lambda: None)

    assert errors == [], errors[:3]
    _assert_all_stored(own_pg_url, batch_id, THREADS)
    with app.uow() as uow:
        matrix = matrix_for_batch(uow.connection, batch_id)  # type: ignore[attr-defined]
    assert sum(s.n for s in matrix.stats) == THREADS * EXECUTIONS_PER_WORKER

    pools = [p for p in bouncer.show("POOLS") if p["database"] != "pgbouncer"]
    assert pools and all(p["pool_mode"] == "transaction" for p in pools)
    servers = bouncer.show("SERVERS")
    assert 0 < len(servers) <= SERVER_POOL, servers
    stats = {s["database"]: s for s in bouncer.show("STATS")}
    database = own_pg_url.rsplit("/", 1)[1]
    assert int(stats[database]["total_xact_count"]) > THREADS * EXECUTIONS_PER_WORKER
    assert "prepared statement" not in bouncer.log()


def test_prepared_statements_through_pgbouncer_fail_with_a_hint(
    bouncer: PgBouncer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WTB_PG_PREPARED_STATEMENTS=on is for direct connections: through a transaction
    pooler the prepared statements land on other server connections, and the error says
    which setting to undo instead of only the driver's "does not exist"."""
    monkeypatch.setenv(PREPARED_ENV, "on")
    url = f"{bouncer.url}?application_name=wtb-prepared"  # its own Database in the registry
    app = sized_sql_app(url, pool_size=4)
    try:
        workflow = small_workflow()
        errors: list[str] = []

        def work() -> None:
            for k in range(40):
                try:
                    app.controller.run(workflow, {"x": k})
                except StoreError as exc:
                    errors.append(str(exc))
                    return

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        forget_database(url)
    assert errors, "prepared statements through transaction pooling did not fail"
    assert all("prepared statement" in e and PREPARED_ENV in e for e in errors), errors[:2]
