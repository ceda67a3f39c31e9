"""A real ``wtb batch run`` process killed (SIGKILL) mid-batch, then rerun to completion."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.batch import workflows as wf
from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES = [{"id": f"c{i}", "input": {"q": f"q{i}"}} for i in range(4)]
VARIANTS = {node: list(wf.VARIANTS) for node in ("a", "b", "c")}
TOTAL = 27 * len(CASES)
BATCH_ID = "crash-resume"


def spec_data(workflow: str) -> dict[str, object]:
    return {
        "workflow": workflow,
        "variants": VARIANTS,
        "cases": CASES,
        "evaluators": [{"type": "exact_match"}],
        "max_workers": 2,
    }


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(
        {
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]),
        }
    )
    return env


def start(tmp_path: Path, spec_file: Path, db_url: str, log: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-c",
        "from wtb_cli.main import app; app()",
        "batch",
        "run",
        str(spec_file),
        "--batch-id",
        BATCH_ID,
        "--db",
        db_url,
        "--quiet",
    ]
    out = (tmp_path / log).open("wb")
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=cli_env(tmp_path),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def query(db_file: Path, sql: str) -> list[tuple[object, ...]]:
    if not db_file.exists():
        return []
    conn = sqlite3.connect(db_file, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # tables not migrated yet
        return []
    finally:
        conn.close()


def result_count(db_file: Path) -> int:
    rows = query(db_file, "SELECT count(*) FROM wtb_batch_test_results")
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def node_checkpoints(db_file: Path) -> int:
    rows = query(db_file, "SELECT count(*) FROM wtb_checkpoints WHERE source = 'node'")
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def fresh_run_node_checkpoints(tmp_path: Path) -> int:
    """Node checkpoints of one uninterrupted run of the same plan (in-process, no sleeps)."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    spec = BatchSpec.parse({**spec_data(wf.LINEAR3), "batch_id": "fresh"})
    service = BatchService(sql_app(url, audit=False))
    prepared = service.prepare(spec, workers=spec.max_workers)
    for group in prepared.groups:
        service.run_group(prepared.payload, group.case_id, list(group.leaf_keys))
    assert service.progress("fresh").done == TOTAL
    return node_checkpoints(tmp_path / "fresh.db")


@pytest.mark.slow
def test_killed_batch_resumes_where_it_stopped(tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec_data(wf.SLOW_LINEAR3)))
    db_file = tmp_path / "wtb.db"
    db_url = f"sqlite:///{db_file}"

    first = start(tmp_path, spec_file, db_url, "first.log")
    try:
        deadline = time.monotonic() + 180
        while result_count(db_file) < 3:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no results within 180 s"
            time.sleep(0.05)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    assert first.returncode == -signal.SIGKILL

    partial = result_count(db_file)
    assert 0 < partial < TOTAL, f"kill came too late: {partial} of {TOTAL} results"
    after_kill = node_checkpoints(db_file)
    unfinished = {
        row[0]
        for row in query(
            db_file,
            "SELECT id FROM wtb_executions WHERE status NOT IN ('completed', 'failed') "
            "AND (paused_at IS NULL OR paused_at NOT LIKE 'split:%')",
        )
    }
    status = query(db_file, f"SELECT status FROM wtb_batch_tests WHERE id = '{BATCH_ID}'")
    assert status == [("running",)]

    second = start(tmp_path, spec_file, db_url, "second.log")
    try:
        assert second.wait(300) == 0, (tmp_path / "second.log").read_text()[-3000:]
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait(30)
    output = (tmp_path / "second.log").read_text()
    assert f"batch {BATCH_ID}: completed - {TOTAL} of {TOTAL} results, 0 failed" in output

    rows = query(
        db_file,
        "SELECT combination_name, case_id, repeat, count(*) FROM wtb_batch_test_results "
        "GROUP BY combination_name, case_id, repeat",
    )
    assert len(rows) == TOTAL
    assert {row[3] for row in rows} == {1}
    expected = {
        (f"a={a},b={b},c={c}", case["id"], 0)
        for a in wf.VARIANTS
        for b in wf.VARIANTS
        for c in wf.VARIANTS
        for case in CASES
    }
    assert {(row[0], row[1], row[2]) for row in rows} == expected
    assert query(db_file, f"SELECT status FROM wtb_batch_tests WHERE id = '{BATCH_ID}'") == [
        ("completed",)
    ]

    # the executions the kill interrupted were continued (to their end or to the point where
    # they fork into branches), not started over
    still_open = {
        row[0]
        for row in query(
            db_file,
            "SELECT id FROM wtb_executions WHERE status NOT IN ('completed', 'failed') "
            "AND (paused_at IS NULL OR paused_at NOT LIKE 'split:%')",
        )
    }
    assert not (still_open & unfinished)
    total = node_checkpoints(db_file)
    fresh = fresh_run_node_checkpoints(tmp_path)
    assert after_kill < fresh
    assert total == fresh, (
        f"kill + rerun wrote {total} node checkpoints ({after_kill} before the kill), one "
        f"uninterrupted run writes {fresh}: the rerun redid finished work"
    )
