"""SIGKILL of a real ``wtb batch run`` at 10 seeded random moments, on SQLite and PostgreSQL.

Per store: one uninterrupted run of the spec (in process) gives the reference results and how
long the work takes; then 10 trials, each a ``wtb batch run SPEC --batch-id X`` subprocess
killed (SIGKILL, whole process group) ``Random(SEED)``-chosen seconds into its work, anywhere
across the work's duration, and rerun with the same batch id to completion. The processes
boot ahead of their trial (booting takes longer than the work) and wait at their first node
for a gate file; the delay counts from the moment the test opens the gate. After each rerun
(see :func:`tests.reliability.harness.check_after_rerun`):

* the results equal the uninterrupted run's (combination, case, repeat, success, score,
  metrics), one per leaf, and the batch is ``completed``;
* no node whose checkpoint was stored before the kill ran again; a node that ran twice was
  mid-run in the killed process (at most one per worker thread);
* one checkpoint per (execution, step), every parent in the same execution or the fork
  source, the head is the last checkpoint, nothing left running or claimed.

Reruns go through ``BatchService`` in this process (as a flow's tasks call it), except the
first trial's, which is a second ``wtb batch run`` (the real flow resuming) running while the
other trials go on. ``WTB_RELIABILITY_SEED`` picks other moments.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.reliability import harness as h
from tests.reliability import workflows as wf
from wtb_domain.batch.spec import BatchSpec

SEED = int(os.environ.get("WTB_RELIABILITY_SEED", "20261201"))
KILLS = 10
CASES = [
    {"id": f"k{i}", "input": {"q": f"q{i}"}, "expected": {"answer": f"q{i}|a:x-b:y-c:x"}}
    for i in range(3)
]
SPEC: dict[str, Any] = {
    "workflow": wf.CHAIN,
    "variants": {node: ["x", "y"] for node in wf.CHAIN_NODES},
    "cases": CASES,
    "evaluators": [{"type": "exact_match"}, {"type": "token_f1"}],
    "max_workers": h.WORKERS,
}
AHEAD = 2
"""``wtb batch run`` processes booting at once (each waits at its gate once registered)."""
REGISTER_TIMEOUT_S = 120
RERUN_TIMEOUT_S = 180


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wtb.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def kill_moments(work_s: float, seed: int = SEED) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.uniform(0.0, work_s), 3) for _ in range(KILLS)]


def test_kill_moments_are_seeded_and_spread() -> None:
    assert kill_moments(3.0) == kill_moments(3.0)
    assert kill_moments(3.0) != kill_moments(3.0, SEED + 1)
    moments = kill_moments(3.0)
    assert len(set(moments)) == KILLS and all(0 <= m <= 3.0 for m in moments)
    assert min(moments) < 1.0 and max(moments) > 2.0  # early and late in the run


@pytest.mark.slow
def test_killed_batches_rerun_to_the_uninterrupted_results(
    store_url: str,
    prefect_api_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = uuid.uuid4().hex[:8]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    db = h.Db(store_url)

    monkeypatch.setenv(wf.NODE_LOG_ENV, str(tmp_path / "reference.log"))
    ref_spec = BatchSpec.parse({**SPEC, "batch_id": f"ref-{run}", "database_url": store_url})
    work_s = h.run_in_process(ref_spec)
    ref_nodes = db.finished_nodes(f"ref-{run}")
    ref_calls = wf.call_counts(tmp_path / "reference.log")
    assert set(ref_calls) == ref_nodes and set(ref_calls.values()) == {1}
    ref = h.Reference(h.results(store_url, f"ref-{run}"), len(ref_nodes), work_s)
    assert len(ref.results) == 24 and ref.node_checkpoints == 42
    assert {r.passed for r in ref.results} == {True, False}

    moments = kill_moments(work_s)

    def start(i: int, out: str = "run") -> subprocess.Popen[bytes]:
        return h.start_cli(
            tmp_path, spec_file, f"kill-{run}-{i}", store_url, prefect_api_url,
            tmp_path / f"calls-{i}.log", tmp_path / f"gate-{i}", tmp_path / f"{out}-{i}.out",
        )  # fmt: skip

    figures: dict[int, dict[str, Any]] = {}
    procs: dict[int, subprocess.Popen[bytes]] = {}
    cli_rerun: subprocess.Popen[bytes] | None = None
    first: tuple[h.AtKill, dict[str, Any]] | None = None
    try:
        for i, delay in enumerate(moments):
            for j in range(i, min(i + AHEAD, KILLS)):  # boot ahead; they wait at their gate
                if j not in procs:  # (setdefault(j, start(j)) would boot a second, orphan CLI)
                    procs[j] = start(j)
            batch_id, log, proc = f"kill-{run}-{i}", tmp_path / f"calls-{i}.log", procs.pop(i)
            deadline = time.monotonic() + REGISTER_TIMEOUT_S
            while not db.registered(batch_id):
                assert proc.poll() is None, (tmp_path / f"run-{i}.out").read_text()[-3000:]
                assert time.monotonic() < deadline, f"batch {batch_id} not registered in time"
                time.sleep(0.02)
            (tmp_path / f"gate-{i}").touch()
            opened = time.monotonic()
            time.sleep(max(0.0, opened + delay - time.monotonic()))
            alive = proc.poll() is None
            h.kill(proc)
            assert alive, f"trial {i}: the run ended before the kill {delay} s in"
            at_kill = h.AtKill(proc.pid, db.result_count(batch_id), db.finished_nodes(batch_id))
            status = db.batch_status(batch_id)  # "completed": killed while printing the matrix
            assert status in ("running", "completed"), status
            facts = {"delay_s": delay, "status_at_kill": status}
            if i == 0:  # the real flow resumes it, while the other trials go on
                cli_rerun = start(0, "rerun")
                first = (at_kill, facts)
                continue
            monkeypatch.setenv(wf.NODE_LOG_ENV, str(log))
            h.run_in_process(
                BatchSpec.parse({**SPEC, "batch_id": batch_id, "database_url": store_url})
            )
            figures[i] = {**facts, **h.check_after_rerun(db, batch_id, ref, at_kill, log)}
            print(f"trial {i}: {figures[i]}", flush=True)

        assert cli_rerun is not None and first is not None
        code = cli_rerun.wait(RERUN_TIMEOUT_S)
        output = (tmp_path / "rerun-0.out").read_text()
        assert code == 0, output[-3000:]
        assert f"batch kill-{run}-0: completed - 24 of 24 results, 0 failed" in output
        checked = h.check_after_rerun(db, f"kill-{run}-0", ref, first[0], tmp_path / "calls-0.log")
        figures[0] = {**first[1], **checked}
        print(f"trial 0 (rerun by wtb batch run): {figures[0]}", flush=True)
    finally:
        for p in [*procs.values(), *([cli_rerun] if cli_rerun else [])]:
            h.kill(p)

    print(f"kills on {store_url.split(':')[0]}: work {work_s:.2f} s, moments {moments}")
    # the moments spread over the work: some kills before any result, some after several
    spread = [f["results_at_kill"] for f in figures.values()]
    assert 0 in spread and any(0 < n < 24 for n in spread), figures
