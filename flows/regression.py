"""Regression flow: run a spec as a new batch and judge it against the pinned baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from flows.artifacts import publish_matrix, slug
from flows.batch_file import DEMO_SPEC, new_batch_id
from flows.batch_test import batch_state, run_batch
from wtb_domain import SpecError, sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import load_spec
from wtb_domain.regression.service import RegressionService


@flow(name="wtb-regression", log_prints=True, persist_result=True, result_serializer="json")
def regression_test(
    spec_path: str = DEMO_SPEC,
    baseline: str | None = None,
    bless_on_pass: bool = False,
) -> State:
    """Run the spec as a new batch and judge it against the pinned baseline.

    The run ends Failed when the batch failed, when the verdict is "regressed" (a combination
    got significantly worse on a metric of the spec's ``regression:`` policy) or
    "incomparable" (no baseline pinned, or nothing in common with it). Its result is the
    verdict with the batch id; the verdict table is attached as an artifact.

    Args:
        spec_path: Batch spec file (YAML or JSON), absolute or relative to the directory the
            deployment was made from; its ``name`` is the baseline name.
        baseline: A pinned baseline name or a batch id; empty for the baseline pinned under
            the spec's name (`wtb baseline set NAME BATCH_ID`).
        bless_on_pass: Pin this batch as the new baseline when the verdict is "not_worse".
    """
    logger = get_run_logger()
    spec, base_dir = load_spec(spec_path)
    name = spec.name
    if not name:
        raise SpecError("name: a regression spec needs a name (its baseline is pinned by name)")
    app = sql_app(spec.database_url)
    regressions = RegressionService(app)
    # Fail before running anything when there is nothing to compare with.
    pinned = regressions.resolve_baseline(baseline, name)
    spec = spec.model_copy(update={"batch_id": spec.batch_id or new_batch_id(spec)})
    summary = run_batch(spec, Path(base_dir))
    batch_id = summary["batch_id"]
    if summary.get("done"):
        publish_matrix(BatchService(app), batch_id)
    ran = batch_state(summary, spec.fail_on_error)
    if not ran.is_completed():
        return Failed(message=f"regression run: {ran.message}", data={"batch": summary})
    verdict = regressions.compare(batch_id, pinned, spec.regression)
    create_markdown_artifact(
        verdict.to_markdown(), key=slug(f"wtb-regression-{name}"), description="WTB verdict"
    )
    result: dict[str, Any] = {"batch": summary, "baseline": pinned.id, **verdict.to_dict()}
    message = f"{verdict.status}: batch {batch_id} vs baseline {pinned.id}"
    if verdict.status != "not_worse":
        return Failed(message=f"{message}: {verdict.reason}", data=result)
    if bless_on_pass:
        regressions.bless_on_pass(
            name, verdict, note=f"blessed on pass against {pinned.id}", blessed_by="prefect"
        )
        logger.info("pinned %s as the baseline of %r", batch_id, name)
    return Completed(message=message, data=result)
