"""``wtb batch run/status/cancel``, ``wtb matrix`` and ``wtb parity``.

Commands that run a flow run as real ``wtb`` processes against the session's Prefect test
harness (in-process, Prefect's log handlers outlive CliRunner's captured streams); the others
run in-process with typer's CliRunner.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.batch import workflows as wf
from wtb_cli.main import app
from wtb_domain.comparison import CSV_COLUMNS

BATCH_ID = "cli-batch"
CASES = [
    {"id": "c1", "input": {"q": "one"}, "expected": {"answer": "one|a:x-b:x-c:x"}},
    {"id": "c2", "input": {"q": "two"}, "expected": {"answer": "two|a:x-b:x-c:x"}},
]


def tiny_spec(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "cli-tiny",
        "workflow": wf.LINEAR3,
        "variants": {"a": ["x", "y"]},
        "cases": CASES,
        "evaluators": [{"type": "exact_match"}],
        "baseline": "a=y",
        "max_workers": 2,
    }
    data.update(fields)
    return data


def write_spec(directory: Path, name: str = "spec.yaml", **fields: Any) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(tiny_spec(**fields)))
    return path


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None


def wtb(*args: str) -> Result:
    """``wtb ARGS`` in this process (only for commands that run no flow)."""
    return CliRunner().invoke(app, list(args))


def wtb_process(*args: str, cwd: Path) -> Outcome:
    """``wtb ARGS`` as its own process, reporting to the harness's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    assert api_url, "the prefect_harness fixture is not active"
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(cwd / "prefect-home"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from wtb_cli.main import app; app()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def error_lines(result: Result | Outcome) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def finished_batch(
    prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One tiny batch run through ``wtb batch run`` (shared by the read-only tests)."""
    directory = tmp_path_factory.mktemp("cli")
    db = f"sqlite:///{directory / 'wtb.db'}"
    spec = write_spec(directory)
    result = wtb_process(
        "batch", "run", str(spec), "--batch-id", BATCH_ID, "--db", db, "--quiet", cwd=directory
    )
    yield {"db": db, "result": result, "dir": directory}


# --- wtb batch run -------------------------------------------------------------------------------


def test_batch_run_exits_0_and_prints_the_matrix(finished_batch: dict[str, Any]) -> None:
    result = finished_batch["result"]
    assert result.exit_code == 0, (result.stdout, result.stderr)
    out = result.stdout
    assert f"comparison matrix: {BATCH_ID}" in out
    assert "baseline: a=y" in out
    assert f"batch {BATCH_ID}: completed - 4 of 4 results, 0 failed" in out


def test_batch_run_again_of_a_completed_batch_prints_its_outcome_and_runs_nothing(
    finished_batch: dict[str, Any],
) -> None:
    directory, db = finished_batch["dir"], finished_batch["db"]
    again = wtb_process(
        "batch", "run", str(directory / "spec.yaml"), "--batch-id", BATCH_ID, "--db", db,
        "--quiet", cwd=directory,
    )  # fmt: skip
    assert again.exit_code == 0, (again.stdout, again.stderr)
    assert f"batch {BATCH_ID}: completed - 4 of 4 results, 0 failed, 0 node runs" in again.stdout
    assert f"comparison matrix: {BATCH_ID}" in again.stdout
    status = wtb("batch", "status", BATCH_ID, "--db", db)
    assert f"{wf.LINEAR3}): completed" in status.stdout


@pytest.mark.usefixtures("prefect_harness")
def test_batch_run_options_and_exit_1_when_the_flow_fails(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        workflow=wf.FAILING,
        variants={"work": ["ok", "boom"], "finish": ["f1", "f2"]},
        baseline=None,
        fail_on_error=True,
    )
    db = f"sqlite:///{tmp_path / 'wtb.db'}"
    result = wtb_process(
        "batch", "run", str(spec), "--batch-id", "fails", "--db", db, "--quiet",
        "--no-prefix-sharing", "--workers", "1", "--format", "csv",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.exit_code == 1, (result.stdout, result.stderr)
    header, *rows = list(csv.reader(io.StringIO(result.stdout)))[:5]
    assert tuple(header) == CSV_COLUMNS
    assert {row[0] for row in rows} == {
        "work=ok,finish=f1", "work=ok,finish=f2", "work=boom,finish=f1", "work=boom,finish=f2"
    }  # fmt: skip
    # without prefix sharing every leaf runs on its own: 4 ok leaves x 2 nodes (a node that
    # raises writes no checkpoint and is not counted); shared, it would be 2 x (1 + 2) = 6
    assert "batch fails: completed_with_failures - 8 of 8 results, 4 failed, 8 node runs" in (
        result.stdout
    )
    assert "from the cache" not in result.stdout  # the batch uses no cache: no count of it


# --- wtb matrix ----------------------------------------------------------------------------------


def test_matrix_csv(finished_batch: dict[str, Any]) -> None:
    result = wtb("matrix", BATCH_ID, "--format", "csv", "--db", finished_batch["db"])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["name"] for r in rows] == ["a=x", "a=y"]  # a=x answers right: rank 1
    assert [r["rank"] for r in rows] == ["1", "2"]
    assert float(rows[0]["mean"]) == 1.0
    assert float(rows[1]["mean"]) == 0.0
    assert rows[1]["p_vs_baseline_adj"] == ""  # the baseline itself


def test_matrix_json(finished_batch: dict[str, Any]) -> None:
    result = wtb("matrix", BATCH_ID, "--format", "json", "--db", finished_batch["db"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["batch_id"] == BATCH_ID
    assert data["best"] == "a=x"
    assert data["baseline"] == "a=y"
    assert [s["name"] for s in data["stats"]] == ["a=x", "a=y"]
    assert [s["n"] for s in data["stats"]] == [2, 2]
    assert [c["combination"] for c in data["vs_baseline"]] == ["a=x"]


def test_matrix_markdown_and_baseline_override(finished_batch: dict[str, Any]) -> None:
    result = wtb(
        "matrix", BATCH_ID, "--format", "markdown", "--baseline", "a=x",
        "--db", finished_batch["db"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert f"## Comparison of batch `{BATCH_ID}`" in result.stdout
    assert "| rank | combination |" in result.stdout
    assert "### vs baseline `a=x`" in result.stdout


def test_matrix_errors_exit_2(finished_batch: dict[str, Any]) -> None:
    db = finished_batch["db"]
    bad_format = wtb("matrix", BATCH_ID, "--format", "xml", "--db", db)
    assert bad_format.exit_code == 2
    assert error_lines(bad_format)[0].startswith("error: --format")
    unknown = wtb("matrix", "no-such-batch", "--db", db)
    assert unknown.exit_code == 2
    assert "no-such-batch" in unknown.stderr
    bad_baseline = wtb("matrix", BATCH_ID, "--baseline", "a=q", "--db", db)
    assert bad_baseline.exit_code == 2
    assert error_lines(bad_baseline)[0].startswith("error: baseline:")


# --- wtb batch status / cancel -------------------------------------------------------------------


def test_batch_status(finished_batch: dict[str, Any]) -> None:
    result = wtb("batch", "status", BATCH_ID, "--db", finished_batch["db"])
    assert result.exit_code == 0, result.stderr
    assert f"batch {BATCH_ID} ({wf.LINEAR3}): completed" in result.stdout
    assert "4 of 4 results, 0 failed, 0 pending" in result.stdout

    missing = wtb("batch", "status", "no-such-batch", "--db", finished_batch["db"])
    assert missing.exit_code == 2
    assert error_lines(missing) == ["error: no batch test 'no-such-batch'"]


def test_batch_cancel_of_a_finished_batch(finished_batch: dict[str, Any]) -> None:
    db = finished_batch["db"]
    result = wtb("batch", "cancel", BATCH_ID, "--db", db)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"cancel requested for {BATCH_ID} (not running)"
    status = wtb("batch", "status", BATCH_ID, "--db", db)
    assert f"{wf.LINEAR3}): completed" in status.stdout  # a finished batch stays finished
    assert "4 of 4 results" in status.stdout
    matrix = wtb("matrix", BATCH_ID, "--format", "csv", "--db", db)
    assert matrix.exit_code == 0


# --- errors: exit 2, one line naming the field ---------------------------------------------------


def test_missing_spec_file_exits_2(tmp_path: Path) -> None:
    result = wtb("batch", "run", str(tmp_path / "nope.yaml"), "--db", f"sqlite:///{tmp_path}/x")
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert line.startswith("error: spec file ") and line.endswith("nope.yaml does not exist")


def _invalid_spec(tmp_path: Path, fields: dict[str, Any]) -> tuple[Path, str]:
    spec = write_spec(tmp_path, **{"baseline": None, **fields})
    return spec, f"sqlite:///{tmp_path / 'wtb.db'}"


def _assert_one_line_naming(result: Result | Outcome, field: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {field}") or f" {field}:" in lines[0], lines
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"repeats": 0}, "repeats"), ({"ray": "huge"}, "ray")],
    ids=["repeats", "ray-preset"],
)
def test_unparsable_spec_exits_2_with_one_line_naming_the_field(
    tmp_path: Path, fields: dict[str, Any], field: str
) -> None:
    spec, db = _invalid_spec(tmp_path, fields)
    result = wtb("batch", "run", str(spec), "--batch-id", "invalid", "--db", db)
    _assert_one_line_naming(result, field)


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"variants": {"a": ["x", "nope"]}}, "variants.a[1].variant"),
        (
            {
                "workflow": wf.SCHEMA,
                "variants": {"retrieve": [{"variant": "bm25", "params": {"k": -1}}]},
            },
            "variants.retrieve[0].params.k",
        ),
    ],
    ids=["unknown-variant", "param-schema"],
)
def test_spec_that_does_not_fit_its_workflow_exits_2_with_one_line_naming_the_field(
    tmp_path: Path, fields: dict[str, Any], field: str
) -> None:
    spec, db = _invalid_spec(tmp_path, fields)
    result = wtb_process(
        "batch", "run", str(spec), "--batch-id", "invalid", "--db", db, cwd=tmp_path
    )
    _assert_one_line_naming(result, field)


# --- wtb parity ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_parity_without_ray_is_ok_for_a_deterministic_workflow(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, variants={"a": ["x", "y"], "b": ["x", "z"]}, baseline=None)
    db = f"sqlite:///{tmp_path / 'wtb.db'}"
    result = wtb_process("parity", str(spec), "--no-ray", "--db", db, cwd=tmp_path)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "parity ok: threadpool == threadpool-unshared (8 results)" in result.stdout
    assert "ray" not in result.stdout.replace("threadpool", "")


def test_the_summary_line_counts_cache_hits_only_when_the_batch_uses_a_cache() -> None:
    from wtb_cli.batch import summary_line

    summary = {"status": "completed", "done": 4, "total": 4, "failed": 0}
    summary |= {"node_executions": 6, "cache_hits": 2}
    with_cache = summary_line("b", summary, uses_cache=True)
    assert (
        with_cache
        == "batch b: completed - 4 of 4 results, 0 failed, 6 node runs (2 from the cache)"
    )
    assert summary_line("b", summary, uses_cache=False) == (
        "batch b: completed - 4 of 4 results, 0 failed, 6 node runs"
    )
