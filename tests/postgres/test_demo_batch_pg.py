"""End to end: the demo batch (27 combinations x 40 questions) on the ThreadPool runner with its
store on PostgreSQL, through the real Prefect flow (``flows.batch_test.run_batch``)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres.test_aggregates import assert_same
from wtb_domain import sql_app
from wtb_domain.adapters.sql.aggregates import matrix_for_batch
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import load_spec
from wtb_domain.model import BatchStatus

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DEMO_SPEC = Path(__file__).resolve().parents[2] / "wtb_domain" / "demo" / "batch.yaml"


@pytest.fixture(scope="module")
def prefect_harness() -> Iterator[None]:
    saved = os.environ.get("PREFECT_SERVER_ANALYTICS_ENABLED")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.testing.utilities import prefect_test_harness

    try:
        with prefect_test_harness(server_startup_timeout=90):
            yield
    finally:
        if saved is None:
            os.environ.pop("PREFECT_SERVER_ANALYTICS_ENABLED", None)
        else:
            os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = saved


def test_demo_batch_on_postgres_threadpool(
    prefect_harness: None, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.batch_test import run_batch

    monkeypatch.setenv("WTB_DATABASE_URL", pg_url)
    spec, base_dir = load_spec(DEMO_SPEC)
    assert spec.runner == "threadpool"
    batch_id = f"demo-pg-{secrets.token_hex(4)}"
    spec = spec.model_copy(update={"database_url": pg_url, "batch_id": batch_id})

    summary = run_batch(spec, base_dir)

    assert summary["state"] == "Completed", summary
    assert summary["status"] in (
        BatchStatus.COMPLETED.value,
        BatchStatus.COMPLETED_WITH_FAILURES.value,
    )
    assert summary["total"] == 27 * 40
    assert summary["done"] == summary["total"]
    assert summary["errors"] == []

    service = BatchService(sql_app(pg_url, audit=False))
    progress = service.progress(batch_id)
    assert (progress.done, progress.pending) == (27 * 40, 0)
    matrix = service.matrix(batch_id)
    assert len(matrix.stats) == 27
    assert matrix.baseline == "retrieve=keyword,rerank=none,answer=extractive"
    # The SQL-aggregated matrix agrees with the service's (row-by-row) one on real results.
    app = sql_app(pg_url, audit=False)
    with app.uow() as uow:
        aggregated = matrix_for_batch(
            uow.connection,  # type: ignore[attr-defined]
            batch_id,
            baseline=matrix.baseline,
        )
    assert_same(matrix, aggregated)
