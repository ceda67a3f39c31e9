"""A PostgreSQL restart while a workflow runs: the engine retries the node's write and the
execution completes (sql_app injects adapters.sql.retry.with_retries into the engine)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.postgres.conftest import (
    TcpProxy,
    double,
    forget_database,
    sized_sql_app,
    small_workflow,
    url_via,
)
from wtb_domain import App, Status, sql_app

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxied_app(pg_url: str, pg_proxy: TcpProxy) -> Iterator[App]:
    url = url_via(pg_url, pg_proxy.port)
    app = sized_sql_app(url, pool_size=4)
    try:
        yield app
    finally:
        forget_database(url)


def test_engine_retries_the_node_write_across_a_restart(
    pg_url: str, pg_proxy: TcpProxy, proxied_app: App
) -> None:
    cut = threading.Event()

    def cutting_b(state: Any, ctx: Any) -> Any:
        if not cut.is_set():
            cut.set()
            pg_proxy.stop()  # the server goes away while node b runs ...
            pg_proxy.restart_after(0.5)  # ... and is back half a second later
        return double(state, ctx)

    execution_id = f"wired-{secrets.token_hex(5)}"
    workflow = small_workflow(b=cutting_b)
    done = proxied_app.controller.run(workflow, {"x": 1}, execution_id=execution_id)

    assert done.status is Status.COMPLETED
    direct = sql_app(pg_url, audit=False)
    assert [cp.node for cp in direct.controller.history(execution_id)] == [None, "a", "b", "c"]
    assert direct.controller.state(execution_id) == {"x": 4, "label": "x=4"}
