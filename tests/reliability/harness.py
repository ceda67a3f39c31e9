"""Helpers of the kill tests: the CLI in a subprocess, a reference run, store invariants.

Queries go through SQLAlchemy Core with bound parameters, so the same checks run on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.reliability import workflows as wf
from wtb_domain import sql_app
from wtb_domain.batch.parity import compare_results
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.model import BatchResult

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2


def cli_env(home: Path, api_url: str, log: Path, gate: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(
        {
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(home / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]),
            wf.NODE_LOG_ENV: str(log),
            wf.GATE_ENV: str(gate),
        }
    )
    return env


def start_cli(
    home: Path,
    spec_file: Path,
    batch_id: str,
    db_url: str,
    api_url: str,
    log: Path,
    gate: Path,
    out: Path,
) -> subprocess.Popen[bytes]:
    """``wtb batch run SPEC --batch-id X --db URL --quiet`` in its own process group; its
    nodes log to ``log`` and wait for the file ``gate`` to exist."""
    command = [
        *(sys.executable, "-c", "from wtb_cli.main import app; app()"),
        *("batch", "run", str(spec_file), "--batch-id", batch_id, "--db", db_url, "--quiet"),
    ]
    return subprocess.Popen(
        command,
        cwd=home,
        env=cli_env(home, api_url, log, gate),
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


class Db:
    """Read-only views of one WTB database for the checks."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url, poolclass=NullPool)

    def rows(self, sql: str, **params: Any) -> list[sa.Row[Any]]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(sa.text(sql), params))
        except sa.exc.OperationalError:  # SQLite file not there or not migrated yet
            return []
        except sa.exc.ProgrammingError:  # PostgreSQL tables not migrated yet
            return []

    def registered(self, batch_id: str) -> bool:
        return bool(self.rows("SELECT id FROM wtb_batch_tests WHERE id = :b", b=batch_id))

    def batch_status(self, batch_id: str) -> str | None:
        rows = self.rows("SELECT status FROM wtb_batch_tests WHERE id = :b", b=batch_id)
        return str(rows[0][0]) if rows else None

    def batch_story(self, batch_id: str) -> list[str]:
        """The batch's own audit entries, oldest first (for a failure message)."""
        try:
            rows = self.rows(
                "SELECT event_type, message, created_at FROM wtb_outbox"
                " WHERE batch_id = :b AND execution_id IS NULL ORDER BY id",
                b=batch_id,
            )
        except Exception as exc:  # a diagnostic must not hide the assertion it explains
            return [f"(audit unreadable: {exc})"]
        return [f"{t} {m} {c}" for t, m, c in rows]

    def result_count(self, batch_id: str) -> int:
        rows = self.rows(
            "SELECT count(*) FROM wtb_batch_test_results WHERE batch_test_id = :b", b=batch_id
        )
        return int(rows[0][0]) if rows else 0

    def executions(self, batch_id: str) -> dict[str, sa.Row[Any]]:
        """The batch's executions (by the ``batch_test_id`` label every one carries)."""
        out = {}
        for row in self.rows(
            "SELECT id, parent_execution_id, forked_from_checkpoint_id, head_checkpoint_id, "
            "status, paused_at, claimed_by, labels FROM wtb_executions"
        ):
            labels = row.labels if isinstance(row.labels, Mapping) else json.loads(row.labels)
            if labels.get("batch_test_id") == batch_id:
                out[row.id] = row
        return out

    def checkpoints(self, execution_ids: set[str]) -> list[sa.Row[Any]]:
        rows = self.rows(
            "SELECT id, execution_id, parent_id, step, node, source FROM wtb_checkpoints"
        )
        return [r for r in rows if r.execution_id in execution_ids]

    def finished_nodes(self, batch_id: str) -> set[tuple[str, str]]:
        """(execution id, node) of every node checkpoint stored for the batch."""
        cps = self.checkpoints(set(self.executions(batch_id)))
        return {(r.execution_id, r.node) for r in cps if r.source == "node"}


def results(url: str, batch_id: str) -> list[BatchResult]:
    with sql_app(url, audit=False).uow() as uow:
        return list(uow.results.for_batch(batch_id))


def run_in_process(spec: BatchSpec) -> float:
    """Run (or resume) ``spec`` to the end with BatchService, as a flow would; seconds taken."""
    service = BatchService(sql_app(spec.database_url, audit=False))
    started = time.monotonic()
    prepared = service.prepare(spec, workers=WORKERS)
    with ThreadPoolExecutor(WORKERS) as pool:
        list(
            pool.map(
                lambda g: service.run_group(prepared.payload, g.case_id, list(g.leaf_keys)),
                prepared.groups,
            )
        )
    summary = service.finish(prepared.batch_id)
    assert summary.status.value == "completed", summary
    return time.monotonic() - started


@dataclass(frozen=True)
class Reference:
    """What one uninterrupted run of the spec stored."""

    results: list[BatchResult]
    node_checkpoints: int
    work_s: float


@dataclass(frozen=True)
class AtKill:
    """What the store held right after the SIGKILL."""

    pid: int
    results: int
    finished: set[tuple[str, str]]


def check_after_rerun(
    db: Db, batch_id: str, ref: Reference, at_kill: AtKill, log: Path
) -> dict[str, int]:
    """Every invariant of a killed-and-rerun batch; returns figures for the report."""
    # results identical to an uninterrupted run, one per leaf
    mine = results(db.url, batch_id)
    report = compare_results("uninterrupted", ref.results, "killed+rerun", mine)
    assert report.ok, (report.missing[:5], report.differences[:5])
    assert report.compared == len(ref.results)
    keys = Counter((r.combination_name, r.case_id, r.repeat) for r in mine)
    assert set(keys.values()) == {1}, [k for k, n in keys.items() if n > 1]
    status = db.batch_status(batch_id)
    assert status == "completed", (status, db.batch_story(batch_id))

    executions = db.executions(batch_id)
    cps = db.checkpoints(set(executions))
    check_chains(executions, cps)
    node_cps = {(r.execution_id, r.node) for r in cps if r.source == "node"}
    assert len(node_cps) == sum(1 for r in cps if r.source == "node")  # linear: node once each
    assert len(node_cps) == ref.node_checkpoints, (
        f"{len(node_cps)} node checkpoints, an uninterrupted run writes {ref.node_checkpoints}"
    )

    # no finished node ran again; only a node killed mid-run ran twice (killed, then rerun)
    counts = wf.call_counts(log)
    assert set(counts) == node_cps, "a node call without a checkpoint, or a checkpoint without one"
    for key in at_kill.finished:
        assert counts[key] == 1, f"{key} had its checkpoint before the kill but ran {counts[key]}x"
    first_pid = {}
    for e, n, pid in wf.calls(log):
        first_pid.setdefault((e, n), pid)
    twice = {k for k, c in counts.items() if c > 1}
    for key in twice:
        assert counts[key] == 2, f"{key} ran {counts[key]} times"
        assert first_pid[key] == at_kill.pid, f"{key} ran twice, not because of the kill"
    assert len(twice) <= WORKERS, f"{len(twice)} nodes reran; at most {WORKERS} were mid-run"
    return {"results_at_kill": at_kill.results, "nodes_rerun": len(twice)}


def check_chains(executions: Mapping[str, sa.Row[Any]], cps: list[sa.Row[Any]]) -> None:
    """One checkpoint per (execution, step); parents in the same execution or the fork source;
    the head is the last checkpoint; nothing is left running or claimed."""
    by_id = {r.id: r for r in cps}
    by_exec: dict[str, list[sa.Row[Any]]] = {}
    for r in cps:
        by_exec.setdefault(r.execution_id, []).append(r)
    for eid, e in executions.items():
        mine = by_exec.get(eid, [])
        assert mine, f"execution {eid} has no checkpoint"
        steps = Counter(r.step for r in mine)
        assert set(steps.values()) == {1}, f"execution {eid}: duplicate steps {steps}"
        firsts = [r for r in mine if r.source in ("input", "fork")]
        assert len(firsts) == 1, f"execution {eid}: {len(firsts)} first checkpoints"
        first = firsts[0]
        if first.source == "input":
            assert first.parent_id is None and first.step == 0 and e.parent_execution_id is None
        else:
            assert first.parent_id == e.forked_from_checkpoint_id
            source = by_id.get(first.parent_id)
            assert source is not None and source.execution_id == e.parent_execution_id, eid
            assert source.step == first.step
        for r in mine:
            if r is first:
                continue
            parent = by_id.get(r.parent_id)
            assert parent is not None and parent.execution_id == eid, f"{r.id}: broken parent"
            assert parent.step == r.step - 1
        last = max(mine, key=lambda r: r.step)
        assert e.head_checkpoint_id == last.id, f"execution {eid}: head is not the last one"
        assert e.status in ("completed", "paused"), (eid, e.status)
        if e.status == "paused":
            assert str(e.paused_at).startswith("split:"), (eid, e.paused_at)
        assert e.claimed_by is None, f"execution {eid} still claimed by {e.claimed_by}"
