"""The batch-test flow: variant trees as tasks on a ThreadPool or Ray task runner."""

from __future__ import annotations

import collections
import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import State
from prefect.futures import PrefectFuture, as_completed
from prefect.states import Completed, Failed

from flows.runners import build_task_runner, prefect_api_for_ray
from tasks.batch import run_case_group
from wtb_domain import sql_app
from wtb_domain.adapters.sql.database import absolute_url
from wtb_domain.batch.plan import resolve
from wtb_domain.batch.service import BatchService, PreparedBatch
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.model import BatchStatus

MAX_ERROR_CHARS = 300


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:60] or "batch"


def _submit_all(prepared: PreparedBatch, spec: BatchSpec) -> tuple[int, list[str]]:
    """Submit one task per group, at most ``max_pending_tasks`` in flight on Ray.

    Tasks are submitted in windows; each window is drained with one ``as_completed`` pass
    (calling it once per finished task would re-register callbacks on every running task).
    """
    window = spec.ray.max_pending_tasks if spec.runner == "ray" else len(prepared.groups)
    retries = spec.ray.max_retries if spec.runner == "ray" else 0
    task = run_case_group.with_options(retries=retries)
    remote = _remote_options(spec)
    pending = collections.deque(prepared.groups)
    nodes, errors = 0, []
    while pending:
        inflight: list[PrefectFuture[dict[str, Any]]] = []
        while pending and len(inflight) < max(1, window):
            group = pending.popleft()
            with remote(group.runtime_env):
                inflight.append(
                    task.submit(
                        prepared.payload, prepared.cases[group.case_id], list(group.leaf_keys)
                    )
                )
        for done in as_completed(inflight):
            try:
                nodes += int(done.result()["node_executions"])
            except Exception as exc:  # a task that failed after its retries: the batch goes on
                errors.append(f"{type(exc).__name__}: {str(exc)[:MAX_ERROR_CHARS]}")
    return nodes, errors


def _remote_options(spec: BatchSpec) -> Any:
    """Per-task Ray resources and runtime_env (a no-op on the ThreadPool runner)."""

    @contextlib.contextmanager
    def options(runtime_env: dict[str, Any] | None) -> Iterator[None]:
        if spec.runner != "ray":
            yield
            return
        from prefect_ray.context import remote_options

        kwargs: dict[str, Any] = {"num_cpus": spec.ray.num_cpus_per_task}
        if spec.ray.memory_per_task_gb:
            kwargs["memory"] = int(spec.ray.memory_per_task_gb * 1024**3)
        if runtime_env:
            kwargs["runtime_env"] = runtime_env
        with remote_options(**kwargs):
            yield

    return options


@flow(name="wtb-batch-test", log_prints=True)
def batch_test(spec: dict[str, Any], base_dir: str | None = None) -> State:
    """Run every variant combination x case x repeat of ``spec``; publish the matrix.

    Rerunning the same ``batch_id`` skips finished executions and continues the others.
    """
    logger = get_run_logger()
    parsed = BatchSpec.parse(spec)
    service = BatchService(sql_app(parsed.database_url, audit=False))
    prepared = service.prepare(
        parsed, Path(base_dir) if base_dir else None, workers=_workers(parsed)
    )
    logger.info(
        "batch %s: %d results to produce in %d tasks on %s",
        prepared.batch_id,
        prepared.total,
        len(prepared.groups),
        parsed.runner,
    )
    nodes, errors = _submit_all(prepared, parsed)
    summary = service.finish(prepared.batch_id, errors, nodes)
    matrix = service.matrix(prepared.batch_id)
    key = slug(f"wtb-{prepared.batch_id}")
    create_markdown_artifact(matrix.to_markdown(), key=f"{key}-matrix", description="WTB matrix")
    create_table_artifact(
        [
            {
                "rank": s.rank,
                "combination": s.name,
                "n": s.n,
                "mean": round(s.mean_score, 4),
                "pass_rate": round(s.pass_rate, 4),
                "p50_ms": round(s.p50_ms, 2),
                "p95_ms": round(s.p95_ms, 2),
                "cost": round(s.total_cost, 6),
            }
            for s in matrix.stats
        ],
        key=f"{key}-table",
        description="WTB comparison per combination",
    )
    result = summary.to_dict()
    logger.info("batch %s finished: %s", prepared.batch_id, result)
    if summary.status in (BatchStatus.FAILED, BatchStatus.CANCELLED):
        return Failed(message=f"batch {summary.status.value}: {errors[:3]}", data=result)
    if parsed.fail_on_error and summary.failed:
        return Failed(message=f"{summary.failed} of {summary.total} executions failed", data=result)
    return Completed(message=f"{summary.done} results, {summary.failed} failed", data=result)


def _workers(spec: BatchSpec) -> int:
    if spec.runner == "ray":
        return spec.ray.num_cpus or spec.max_workers
    return spec.max_workers


def run_batch(spec: BatchSpec, base_dir: Path | None = None) -> dict[str, Any]:
    """Run a batch test flow on the spec's runner; returns the summary dict.

    The database URL is made absolute so Ray workers (other working directories) find it.
    """
    spec = spec.model_copy(update={"database_url": absolute_url(spec.database_url)})
    # Spec errors that need the workflow (unknown variant, bad params, cases file) surface
    # here as SpecError, before Prefect starts a flow run.
    resolve(spec)
    spec.load_cases(base_dir)
    payload = spec.model_dump(mode="json")
    directory = str(base_dir) if base_dir else None
    with contextlib.ExitStack() as stack:
        api_url = stack.enter_context(prefect_api_for_ray()) if spec.runner == "ray" else None
        runner = build_task_runner(spec, api_url)
        state = batch_test.with_options(task_runner=runner)(
            spec=payload, base_dir=directory, return_state=True
        )
    data = state.result(raise_on_failure=False)
    if isinstance(data, dict):
        return {**data, "state": state.name, "message": state.message}
    return {"state": state.name, "message": state.message, "error": str(data)}
