"""The batch-test flow: variant trees as tasks on a ThreadPool or Ray task runner."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed
from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings
from prefect.states import Completed, Failed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.artifacts import publish_matrix, slug
from flows.ray_session import CONNECTIONS
from flows.runners import build_task_runner, prefect_api_for_ray, ray_job
from tasks.batch import run_case_group
from tasks.secrets import app_for, prefect_secret
from wtb_domain import WtbError, sql_app
from wtb_domain.adapters.sql.database import absolute_url
from wtb_domain.batch.credentials import DatabaseRef
from wtb_domain.batch.environments import resolve_runtime_env
from wtb_domain.batch.service import BatchService, PreparedBatch, Registration
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.errors import RunError
from wtb_domain.metrics import push_if_configured
from wtb_domain.model import BatchStatus

MAX_ERROR_CHARS = 300
EPHEMERAL_START_TIMEOUT_S = 120


__all__ = ["batch_test", "run_batch", "slug"]


def _submit_all(prepared: PreparedBatch, spec: BatchSpec) -> tuple[int, int, list[str]]:
    """Submit one task per group, at most ``max_pending_tasks`` in flight on Ray.

    Tasks are submitted in windows; each window is drained with one ``as_completed`` pass
    (calling it once per finished task would re-register callbacks on every running task).
    """
    window = spec.ray.max_pending_tasks if spec.runner == "ray" else len(prepared.groups)
    retries = spec.ray.max_retries if spec.runner == "ray" else 0
    task = run_case_group.with_options(retries=retries)
    remote = _remote_options(spec)
    pending = collections.deque(prepared.groups)
    nodes, hits, errors = 0, 0, []
    while pending:
        inflight: list[PrefectFuture[dict[str, Any]]] = []
        while pending and len(inflight) < max(1, window):
            group = pending.popleft()
            named = task.with_options(task_run_name=task_run_name(group.case_id, group.leaf_keys))
            with remote(group.runtime_env):
                inflight.append(
                    named.submit(
                        prepared.payload,
                        group.case_id,
                        list(group.leaf_keys),
                        prepared.secrets or None,
                    )
                )
        for done in as_completed(inflight):
            try:
                outcome = done.result()
                nodes += int(outcome["node_executions"])
                hits += int(outcome.get("cache_hits", 0))
            except Exception as exc:  # a task that failed after its retries: the batch goes on
                errors.append(f"{type(exc).__name__}: {str(exc)[:MAX_ERROR_CHARS]}")
    return nodes, hits, errors


def task_run_name(case_id: str, leaf_keys: tuple[str, ...]) -> str:
    """What the Prefect UI shows for a task: the case and how many leaves it runs."""
    n = len(leaf_keys)
    return f"case {case_id[:80]} · {n} leaf" if n == 1 else f"case {case_id[:80]} · {n} leaves"


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
            # {secret: NAME} / {env: NAME} values are resolved here, as late as possible:
            # they go to Ray's runtime_env and never into a stored parameter.
            kwargs["runtime_env"] = resolve_runtime_env(runtime_env, prefect_secret)
        with remote_options(**kwargs):
            yield

    return options


@flow(name="wtb-batch-test", log_prints=True, persist_result=True, result_serializer="json")
def batch_test(
    batch_id: str,
    spec_hash: str,
    database: dict[str, Any] | None = None,
    publish_artifacts: bool = True,
) -> State:
    """Run every variant combination x case x repeat of a registered batch; publish the matrix.

    The batch (its spec and cases) is registered in the store before the flow starts
    (:func:`run_batch`), so the parameters stay small whatever the spec's size, and hold
    no secret. Rerunning the same ``batch_id`` skips finished executions and continues the
    others; a batch that already ended completed (every result in) runs nothing, stays as it
    ended and the run reports its outcome again.

    Args:
        batch_id: The registered batch.
        spec_hash: The hash of its stored spec (a run refuses a batch registered again since).
        database: ``{"url": ..., "password_secret": ...}``: the store's URL with its password
            masked; this worker fills it in (WTB_DATABASE_URL, PGPASSWORD/.pgpass, or the
            named Prefect Secret block).
        publish_artifacts: Attach the matrix artifacts to this run (a parent flow that runs
            the batch as a sub-flow attaches them to its own run instead).
    """
    logger = get_run_logger()
    service = BatchService(app_for(database))
    registration = Registration(batch_id, spec_hash, 0, DatabaseRef.from_param(database))
    summary = service.ended(batch_id)  # a rerun of a batch that completed: nothing to run
    if summary is not None:  # (no spec to restore: its secrets are not needed)
        fail_on_error = bool(service.status(batch_id).spec.get("fail_on_error"))
        logger.info(
            "batch %s already ended %s with all %d results (%d failed): nothing to run",
            batch_id,
            summary.status.value,
            summary.total,
            summary.failed,
        )
    else:
        parsed = service.load(batch_id, spec_hash)
        fail_on_error = parsed.fail_on_error
        prepared = service.plan(registration, workers=_workers(parsed))
        logger.info(
            "batch %s: %d results to produce in %d tasks on %s",
            prepared.batch_id,
            prepared.total,
            len(prepared.groups),
            parsed.runner,
        )
        nodes, hits, errors = _submit_all(prepared, parsed)
        summary = service.finish(prepared.batch_id, errors, nodes, hits)
    push_if_configured()  # the flow process's own metrics (tasks pushed theirs)
    if publish_artifacts:
        publish_matrix(service, batch_id)
    result = summary.to_dict()
    logger.info("batch %s finished: %s", batch_id, result)
    return batch_state(result, fail_on_error)


def batch_state(result: dict[str, Any], fail_on_error: bool) -> State:
    """The final state of a run that ran a batch: Failed unless the batch really succeeded.

    Failed when the batch failed or was cancelled, or when ``fail_on_error`` is set and an
    execution failed; the summary (with the batch id) is the state's data either way.
    """
    batch_id, status = result["batch_id"], result["status"]
    done, total, failed = result["done"], result["total"], result["failed"]
    if status in (BatchStatus.FAILED.value, BatchStatus.CANCELLED.value):
        errors = "; ".join(result.get("errors") or [])[:MAX_ERROR_CHARS]
        reason = f": {errors}" if errors else f" ({done} of {total} results)"
        return Failed(message=f"batch {batch_id} {status}{reason}", data=result)
    if fail_on_error and failed:
        return Failed(
            message=f"batch {batch_id}: {failed} of {total} executions failed (fail_on_error)",
            data=result,
        )
    return Completed(
        message=f"batch {batch_id}: {done} of {total} results, {failed} failed", data=result
    )


def _workers(spec: BatchSpec) -> int:
    if spec.runner == "ray":
        return spec.ray.num_cpus or spec.max_workers
    return spec.max_workers


def run_batch(spec: BatchSpec, base_dir: Path | None = None) -> dict[str, Any]:
    """Run a batch test flow on the spec's runner; returns the summary dict.

    The summary has the batch's ``batch_id``, ``status``, counts and ``errors``, plus the flow
    run's ``state`` (name), ``state_type`` and ``message``. Inside another flow run the batch
    runs as its sub-flow and the caller publishes the artifacts on its own run. A WtbError that
    stopped the flow before it had a summary (a bad spec, the store) is raised here.

    The batch and its cases are registered here, before Prefect starts a flow run (spec
    errors surface as SpecError); the flow receives the batch id, the stored spec's hash and
    the database URL with its password masked. The URL is made absolute so Ray workers
    (other working directories) find it.
    """
    spec = spec.model_copy(update={"database_url": absolute_url(spec.database_url)})
    registration = BatchService(sql_app(spec.database_url)).register(spec, base_dir)
    with contextlib.ExitStack() as stack:
        # Prefect's ephemeral server gets 20 s to start by default; a loaded 2-core machine
        # needs more (the first start takes 10-15 s on an idle one).
        timeout = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
        if timeout.value() < EPHEMERAL_START_TIMEOUT_S:
            stack.enter_context(temporary_settings({timeout: EPHEMERAL_START_TIMEOUT_S}))
        kept = spec.ray.ray_address is not None
        # A rerun of a batch that completed runs no task: no Ray connection, no server.
        on_ray = spec.runner == "ray" and not registration.ended
        api_url = None
        if on_ray:
            api_url = stack.enter_context(prefect_api_for_ray(keep=kept))
        runner: TaskRunner[Any] = (
            ThreadPoolTaskRunner(max_workers=1)
            if registration.ended
            else build_task_runner(spec, api_url)
        )
        if on_ray:
            # This process's Ray connection: a cluster's is kept for the next batch (its
            # worker processes stay warm), a local Ray ends with the run (flows.ray_session).
            stack.enter_context(CONNECTIONS.use(ray_job(spec, api_url)))
        state = batch_test.with_options(task_runner=runner)(
            **registration.payload,
            publish_artifacts=FlowRunContext.get() is None,
            return_state=True,
        )
    data = state.result(raise_on_failure=False)
    facts = {"state": state.name, "state_type": state.type.value, "message": state.message}
    if isinstance(data, dict):
        return {**data, **facts}
    if isinstance(data, WtbError):
        raise data
    raise RunError(f"batch flow ended {state.name} without a summary: {state.message or data}")
