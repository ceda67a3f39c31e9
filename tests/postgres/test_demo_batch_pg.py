"""End to end: the demo batch (27 combinations x 40 questions) with its store on PostgreSQL,
through the real Prefect flow (``flows.batch_test.run_batch``), on ThreadPool and on Ray."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.postgres.test_aggregates import assert_same
from wtb_domain import sql_app
from wtb_domain.batch.parity import compare_results
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import RayConfig, load_spec
from wtb_domain.comparison import build_matrix
from wtb_domain.model import BatchStatus

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DEMO_SPEC = Path(__file__).resolve().parents[2] / "wtb_domain" / "demo" / "batch.yaml"


def test_demo_batch_on_postgres_threadpool(
    prefect_harness: None, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_threadpool_demo(pg_url, monkeypatch)


def _run_threadpool_demo(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
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
    matrix = service.matrix(batch_id)  # aggregated in PostgreSQL
    assert len(matrix.stats) == 27
    assert matrix.baseline == "retrieve=keyword,rerank=none,answer=extractive"
    # The SQL-aggregated matrix agrees with the row-by-row one on real results.
    assert_same(build_matrix(service.rows(batch_id), batch_id, baseline=matrix.baseline), matrix)
    return matrix


@pytest.mark.ray
def test_demo_batch_on_postgres_ray(prefect_harness: None, pg_url: str) -> None:
    """The same demo on the Ray runner (local Ray, 2 CPUs) gives the ThreadPool results."""
    from flows.batch_test import run_batch

    spec, base_dir = load_spec(DEMO_SPEC)
    batch_id = f"demo-pg-ray-{secrets.token_hex(4)}"
    spec = spec.model_copy(
        update={
            "database_url": pg_url,
            "batch_id": batch_id,
            "runner": "ray",
            "ray": RayConfig.testing(),
        }
    )
    summary = run_batch(spec, base_dir)
    assert summary["state"] == "Completed", summary
    assert summary["done"] == summary["total"] == 27 * 40

    threadpool = f"demo-pg-tp-{secrets.token_hex(4)}"
    run_batch(spec.model_copy(update={"runner": "threadpool", "batch_id": threadpool}), base_dir)
    with sql_app(pg_url, audit=False).uow() as uow:
        ray_rows, tp_rows = uow.results.for_batch(batch_id), uow.results.for_batch(threadpool)
    report = compare_results("threadpool", tp_rows, "ray", ray_rows)
    assert report.ok, (report.missing[:5], report.differences[:5])
    assert report.compared == 27 * 40
