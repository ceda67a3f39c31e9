"""The nightly regression deployment on a real server, judged against a pinned baseline.

No baseline pinned: the run fails and says how to pin one. A batch run from the on-demand
deployment, blessed with ``wtb baseline set``, is then the bar: the same code passes, code that
regressed overnight (same variant, every answer wrong) fails the run the user started, and the
pinned baseline stays the one that was blessed; ``wtb regress`` against that server gates with
exit code 1 and a JUnit failure.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import yaml
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment

from tests.prefect_server.conftest import LiveStack
from tests.prefect_server.test_deployments import BATCH, NIGHTLY, _artifact_keys
from tests.regression.workflows import spec as gate_spec

pytestmark = pytest.mark.slow


def test_nightly_regression_against_a_pinned_baseline(api: LiveStack, tmp_path: Path) -> None:
    name = f"live-gate-{secrets.token_hex(3)}"
    spec_file = tmp_path / "gate.yaml"
    spec_file.write_text(yaml.safe_dump(gate_spec(name)))
    params = {"spec_path": str(spec_file)}

    unpinned = run_deployment(NIGHTLY, parameters=params, timeout=600)
    assert unpinned.state is not None and unpinned.state.type is StateType.FAILED
    assert f"wtb baseline set {name}" in (unpinned.state.message or "")

    first = run_deployment(BATCH, parameters=params, timeout=600)
    assert first.state is not None and first.state.type is StateType.COMPLETED
    baseline_id = first.state.result()["batch_id"]
    blessed = api.wtb("baseline", "set", name, baseline_id, "--note", "first green night")
    assert blessed.returncode == 0, blessed.stdout + blessed.stderr

    same = run_deployment(NIGHTLY, parameters=params, timeout=600)
    assert same.state is not None and same.state.type is StateType.COMPLETED, same.state.message
    verdict = same.state.result()
    assert verdict["status"] == "not_worse" and verdict["baseline"] == baseline_id
    assert f"wtb-regression-{name}" in _artifact_keys(same.id)

    api.broken_flag.touch()
    try:
        worse = run_deployment(NIGHTLY, parameters=params, timeout=600)
        assert worse.state is not None and worse.state.type is StateType.FAILED
        assert (worse.state.message or "").startswith("regressed")
        judged = worse.state.result(raise_on_failure=False)
        assert judged["status"] == "regressed" and judged["baseline"] == baseline_id
        assert f"wtb-regression-{name}" in _artifact_keys(worse.id)

        junit = tmp_path / "junit.xml"
        gate = api.wtb(
            "regress", str(spec_file), "--junit", str(junit), env={"PREFECT_API_URL": api.api_url}
        )
        assert gate.returncode == 1, gate.stdout + gate.stderr
        assert "<failure" in junit.read_text()
    finally:
        api.broken_flag.unlink(missing_ok=True)

    shown = api.wtb("baseline", "show", name, "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["current"] == baseline_id
