"""The Prefect way in, on a real server: deploy prefect.yaml, trigger from Python, schedules.

What a user relies on: both deployments exist with described parameters; a run started with
``run_deployment`` ends in the state its batch earned (Completed only when the batch really
succeeded), returns the summary with the batch id, carries the matrix artifacts, and its
results are in the WTB database; task runs name their case; the nightly regression
deployment's schedule produces SCHEDULED runs.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment

from tests.prefect_server.conftest import LiveStack
from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService

pytestmark = pytest.mark.slow

BATCH = "wtb-batch-from-file/demo-batch"
NIGHTLY = "wtb-regression/nightly-regression"


def _artifact_keys(flow_run_id: Any) -> set[str]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {a.key for a in artifacts if a.key}


def _task_run_names(parent_flow_run_id: Any) -> list[str]:
    """Names of the batch's task runs (in the sub-flow that runs the batch)."""
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_flow_run_id])
            )
        )
        ids = [c.id for c in children]
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=200
        )
    return [t.name for t in runs]


def test_both_deployments_exist_with_described_parameters(api: LiveStack) -> None:
    with get_client(sync_client=True) as client:
        for name in (BATCH, NIGHTLY):
            deployment = client.read_deployment_by_name(name)
            assert deployment.work_pool_name == "wtb"
            props = deployment.parameter_openapi_schema["properties"]
            assert props, name
            for param, schema in props.items():
                assert schema.get("description"), f"{name}: parameter {param} has no description"


def test_demo_batch_triggered_from_python_tells_the_truth(api: LiveStack) -> None:
    flow_run = run_deployment(BATCH, timeout=900)
    assert flow_run.state is not None
    assert flow_run.state.type is StateType.COMPLETED, flow_run.state.message
    summary = flow_run.state.result()
    assert summary["status"] == "completed"
    assert summary["done"] == summary["total"] == 27 * 40
    batch_id = summary["batch_id"]
    assert batch_id in (flow_run.state.message or "")
    # The artifacts sit on the run the user started, not only on a sub-flow.
    keys = _artifact_keys(flow_run.id)
    assert {f"wtb-{batch_id}-matrix", f"wtb-{batch_id}-table"} <= keys
    # The results really are in the WTB database the worker was given.
    progress = BatchService(sql_app(api.database_url)).progress(batch_id)
    assert (progress.done, progress.failed, progress.total) == (1080, 0, 1080)
    names = _task_run_names(flow_run.id)
    pattern = re.compile(r"case q\d+ · (1 leaf|\d+ leaves)")
    assert len(names) == 40 and all(pattern.fullmatch(n) for n in names), names[:5]


def test_a_failed_batch_fails_the_run_the_user_started(api: LiveStack, tmp_path: Path) -> None:
    spec = tmp_path / "failing.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "failing-nightly",
                "workflow": "tests.batch.workflows:failing",
                "variants": {"work": ["ok", "boom"]},
                "cases": [{"id": f"c{i}", "input": {"q": f"q{i}"}} for i in range(3)],
                "fail_on_error": True,
            }
        )
    )
    flow_run = run_deployment(BATCH, parameters={"spec_path": str(spec)}, timeout=600)
    assert flow_run.state is not None
    assert flow_run.state.type is StateType.FAILED
    assert "fail_on_error" in (flow_run.state.message or "")
    summary = flow_run.state.result(raise_on_failure=False)
    assert summary["failed"] == 3 and summary["done"] == 6
    assert f"wtb-{summary['batch_id']}-matrix" in _artifact_keys(flow_run.id)


def test_nightly_schedule_produces_scheduled_runs(api: LiveStack) -> None:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(NIGHTLY)
        assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
        deadline = time.monotonic() + 90
        scheduled: list[Any] = []
        while time.monotonic() < deadline and not scheduled:
            scheduled = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                    )
                ),
            )
            time.sleep(1)
    assert scheduled, "the scheduler created no run for the nightly deployment"
    assert all(r.expected_start_time.hour == 3 for r in scheduled)
