"""Regression flow: run a spec, compare with the previous batch of the same name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from flows.batch_test import run_batch, slug
from wtb_domain import SpecError, sql_app
from wtb_domain.batch.regression import check_regression
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import load_spec
from wtb_domain.ids import new_id


@flow(name="wtb-regression", log_prints=True)
def regression_test(
    spec_path: str,
    baseline_batch_id: str | None = None,
    tolerance: float = 0.0,
    alpha: float = 0.05,
) -> State:
    """Run the spec as a new batch and fail if any combination got worse than the baseline.

    The baseline is ``baseline_batch_id`` or the newest finished batch with the spec's name.
    """
    logger = get_run_logger()
    spec, base_dir = load_spec(spec_path)
    if not spec.name:
        raise SpecError("name: a regression spec needs a name (batches are compared by name)")
    service = BatchService(sql_app(spec.database_url, audit=False))
    with service.app.uow() as uow:
        baseline = (
            uow.batches.get(baseline_batch_id)
            if baseline_batch_id
            else uow.batches.latest(spec.name)
        )
    batch_id = f"{slug(spec.name)}-{new_id()[:12]}"
    summary = run_batch(spec.model_copy(update={"batch_id": batch_id}), Path(base_dir))
    if baseline is None:
        logger.info("no earlier batch named %r: %s becomes the baseline", spec.name, batch_id)
        return Completed(message=f"baseline recorded: {batch_id}", data=summary)
    report = check_regression(
        batch_id,
        service.rows(batch_id),
        baseline.id,
        service.rows(baseline.id),
        tolerance=tolerance,
        alpha=alpha,
    )
    create_markdown_artifact(report.to_markdown(), key=slug(f"wtb-regression-{spec.name}"))
    result: dict[str, Any] = {
        "batch": summary,
        "baseline": baseline.id,
        "regressions": [d.combination for d in report.regressions],
    }
    if report.worse_than_baseline:
        names = ", ".join(d.combination for d in report.regressions[:5])
        return Failed(message=f"worse than baseline {baseline.id}: {names}", data=result)
    return Completed(message=f"not worse than baseline {baseline.id}", data=result)


@flow(name="wtb-batch-from-file", log_prints=True)
def batch_from_file(spec_path: str, batch_id: str | None = None) -> dict[str, Any]:
    """Deployment entry point: run the batch spec at ``spec_path`` (resume with ``batch_id``)."""
    spec, base_dir = load_spec(spec_path)
    if batch_id:
        spec = spec.model_copy(update={"batch_id": batch_id})
    return run_batch(spec, Path(base_dir))
