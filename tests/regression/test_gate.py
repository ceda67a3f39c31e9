"""End to end: `wtb baseline set/show`, `wtb regress` exit codes and reports, the `wtb` API.

Flows run for real against the session's Prefect harness: in this process for the Python API,
as `wtb` processes for `wtb regress` (the way CI calls it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import yaml
from typer.testing import CliRunner

import wtb
from tests.regression import workflows as wf
from wtb_cli.main import app
from wtb_domain import sql_app

NAME = "gate-nightly"


def wtb_process(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``wtb ARGS`` as its own process, reporting to the harness's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    assert api_url, "the prefect_harness fixture is not active"
    full_env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(cwd / "prefect-home"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-c", "from wtb_cli.main import app; app()", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def write_spec(directory: Path, **fields: Any) -> Path:
    path = directory / "spec.yaml"
    path.write_text(yaml.safe_dump(wf.spec(NAME, **fields)))
    return path


@pytest.mark.usefixtures("prefect_harness")
def test_wtb_regress_exits_by_the_verdict_against_the_pinned_baseline(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'wtb.db'}"
    spec = write_spec(tmp_path)

    # Nothing pinned: a user error that says how to pin one, and no batch runs.
    none = wtb_process("regress", str(spec), "--db", db, cwd=tmp_path)
    assert none.returncode == 2, (none.stdout, none.stderr)
    assert f"no baseline pinned for '{NAME}'" in none.stderr
    assert f"wtb baseline set {NAME} BATCH_ID" in none.stderr
    with sql_app(db).uow() as uow:
        assert uow.batches.latest(NAME) is None

    night_a = wtb.run_batch(spec, db=db)
    assert night_a.status == "completed" and night_a.ok
    blessed = cli("baseline", "set", NAME, night_a.batch_id, "--note", "green night", "--db", db)
    assert blessed.exit_code == 0, blessed.output
    assert f"baseline {NAME}: {night_a.batch_id}" in blessed.output

    # The same code again: not worse, exit 0.
    same = wtb_process("regress", str(spec), "--db", db, cwd=tmp_path)
    assert same.returncode == 0, (same.stdout, same.stderr)
    assert "not worse than the baseline" in same.stdout

    # The variant's code regressed: exit 1, a JUnit failure, the worst cases in the summary.
    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    worse = wtb_process(
        "regress", str(spec), "--db", db, "--junit", str(junit), "--summary-md", str(summary),
        cwd=tmp_path, env={wf.BROKEN_ENV: "1"},
    )  # fmt: skip
    assert worse.returncode == 1, (worse.stdout, worse.stderr)
    assert "verdict: regressed" in worse.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    failed = {
        (c.get("classname"), c.get("name"))
        for c in suite.findall("testcase")
        if c.find("failure") is not None
    }
    assert failed == {
        ("wtb.regression.answer=good", "score"),
        ("wtb.regression.answer=good", "pass_rate"),
    }
    text = summary.read_text()
    assert "REGRESSED" in text and "### Worst cases" in text
    assert '{"n": 1}' in text  # the case's input, read from its execution
    assert '{"answer": "2"}' in text and '{"answer": "3"}' in text  # baseline / current output

    # The regressed batch did not become the baseline.
    shown = cli("baseline", "show", NAME, "--format", "json", "--db", db)
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["current"] == night_a.batch_id
    assert [h["note"] for h in data["history"]] == ["green night"]

    # A baseline with no combination in common: incomparable, exit 2 (never a pass).
    other = wtb.run_batch(wf.spec("other", variants=["bad"]), db=db)
    junit_other = tmp_path / "other.xml"
    apart = wtb_process(
        "regress", str(spec), "--db", db, "--baseline", other.batch_id, "--junit",
        str(junit_other), cwd=tmp_path,
    )  # fmt: skip
    assert apart.returncode == 2, (apart.stdout, apart.stderr)
    assert "incomparable" in apart.stderr and "no combination in common" in apart.stderr
    other_suite = ET.parse(junit_other).getroot().find("testsuite")
    assert other_suite is not None and other_suite.get("failures") == "1"


@pytest.mark.usefixtures("prefect_harness")
def test_python_api_runs_and_regresses_with_typed_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = f"sqlite:///{tmp_path / 'wtb.db'}"
    run = wtb.run_batch(wf.spec(NAME, variants=["good", "bad"]), db=db)
    assert isinstance(run, wtb.BatchRun)
    assert run.status == "completed" and run.state == "Completed"
    assert run.summary["done"] == 16 and run.summary["batch_id"] == run.batch_id
    assert run.matrix is not None and run.matrix.best == "answer=good"
    with pytest.raises(AttributeError):
        run.batch_id = "x"  # type: ignore[misc]

    wtb.bless(NAME, run.batch_id, "first", db=db)
    passed = wtb.regress(wf.spec(NAME, variants=["good", "bad"]), db=db, bless_on_pass=True)
    assert isinstance(passed, wtb.RegressionResult)
    assert passed.status == "not_worse" and passed.passed and passed.exit_code == 0
    assert passed.baseline_id == run.batch_id
    assert passed.blessed is not None and passed.blessed.batch_test_id == passed.batch.batch_id

    monkeypatch.setenv(wf.BROKEN_ENV, "1")
    failed = wtb.regress(wf.spec(NAME, variants=["good", "bad"]), db=db, bless_on_pass=True)
    assert failed.status == "regressed" and failed.exit_code == 1 and failed.blessed is None
    assert failed.baseline_id == passed.batch.batch_id  # the one bless_on_pass pinned
    assert {j.combination for j in failed.verdict.regressions} == {"answer=good"}
    with sql_app(db).uow() as uow:
        current = uow.baselines.current(NAME)
    assert current is not None and current.batch_test_id == passed.batch.batch_id
