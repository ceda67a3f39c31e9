"""prefect.yaml parses, and every deployment points at a flow that takes its parameters."""

from __future__ import annotations

import importlib
import importlib.util
import inspect

import yaml
from prefect import Flow
from prefect.utilities.callables import parameter_schema

from tests.conftest import REPO_ROOT


def _deployments() -> list[dict]:
    data = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    assert isinstance(data, dict) and data["deployments"]
    return data["deployments"]


def _flow(entrypoint: str) -> Flow:
    path, _, name = entrypoint.partition(":")
    file = REPO_ROOT / path
    assert file.is_file(), entrypoint
    module_name = path.removesuffix(".py").replace("/", ".")
    spec = importlib.util.find_spec(module_name)
    assert spec is not None and spec.origin == str(file), entrypoint
    obj = getattr(importlib.import_module(module_name), name)
    assert isinstance(obj, Flow), f"{entrypoint} is not a Prefect flow"
    return obj


def test_prefect_yaml_has_no_pull_step_that_needs_a_variable() -> None:
    data = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    assert "{{ $" not in (REPO_ROOT / "prefect.yaml").read_text()
    assert not data.get("pull"), "the deploy-time directory is recorded by prefect deploy"


def test_every_entrypoint_imports_and_takes_its_parameters() -> None:
    names = set()
    for deployment in _deployments():
        names.add(deployment["name"])
        assert deployment["work_pool"]["name"] == "wtb"
        flow = _flow(deployment["entrypoint"])
        signature = inspect.signature(flow.fn)
        for param in deployment.get("parameters") or {}:
            assert param in signature.parameters, f"{deployment['name']}: {param}"
        schema = parameter_schema(flow.fn)
        for param, prop in schema.properties.items():
            assert prop.get("description"), f"{deployment['entrypoint']}: {param} undocumented"
        spec_path = (deployment.get("parameters") or {}).get("spec_path")
        if spec_path:
            assert (REPO_ROOT / spec_path).is_file(), spec_path
    assert names == {"demo-batch", "nightly-regression"}


def test_nightly_regression_is_scheduled() -> None:
    nightly = next(d for d in _deployments() if d["name"] == "nightly-regression")
    assert nightly["schedules"] == [{"cron": "0 3 * * *", "timezone": "UTC"}]
