"""On-demand batch flow (the ``demo-batch`` deployment): run a spec file, tell the truth."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.client.schemas.objects import State

from flows.artifacts import publish_matrix, slug
from flows.batch_test import batch_state, run_batch
from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec, load_spec
from wtb_domain.ids import new_id

DEMO_SPEC = "wtb_domain/demo/batch.yaml"


@flow(name="wtb-batch-from-file", log_prints=True, persist_result=True, result_serializer="json")
def batch_from_file(spec_path: str = DEMO_SPEC, batch_id: str | None = None) -> State:
    """Run a batch spec: every variant combination x case x repeat, scored, with its matrix.

    The run ends Failed when the batch failed, was cancelled, or (with ``fail_on_error``) had a
    failed execution; its result is the batch summary (with the batch id) either way, and the
    matrix artifacts are attached to this run.

    Args:
        spec_path: Batch spec file (YAML or JSON), absolute or relative to the directory the
            deployment was made from; the default is the shipped QA demo.
        batch_id: Leave empty for a new batch; give an earlier batch id to resume it after a
            crash (finished executions are skipped).
    """
    spec, base_dir = load_spec(spec_path)
    spec = spec.model_copy(update={"batch_id": batch_id or spec.batch_id or new_batch_id(spec)})
    summary = run_batch(spec, Path(base_dir))
    if summary.get("done"):
        publish_matrix(BatchService(sql_app(spec.database_url)), summary["batch_id"])
    return batch_state(summary, spec.fail_on_error)


def new_batch_id(spec: BatchSpec) -> str:
    return f"{slug(spec.name or 'batch')}-{new_id()[:12]}"
