"""Batch tests on Prefect: prefix sharing, parallel efficiency, per-task overhead, a 10k batch.

Run from the repository root::

    python bench/batch.py               # full run (4-8 min with Ray), writes bench/results.md
    python bench/batch.py --quick       # smaller (2-3 min with Ray)
    python bench/batch.py --skip-ray    # ThreadPool only

Measures, with the deterministic sleep-based workflows of ``bench/workflows.py``:

1. prefix sharing: a 3-node linear workflow with 3 variants per node (27 combinations, 20 ms
   per node, one case); node executions and wall time without and with prefix sharing, at the
   domain level (``BatchService.prepare`` + ``run_group``, groups run one after another) and
   through the ``batch_test`` flow on the ThreadPool runner;
2. parallel efficiency: 100 variants of a 0.1 s node after a shared 0.1 s node, one case,
   8 workers, on the ThreadPool and the Ray runner: wall / ideal, where ideal = node
   executions x 0.1 s / 8; Ray also after subtracting its start-up;
3. Prefect's own per-task overhead: a bare flow submitting as many no-op tasks as (2) has WTB
   tasks, beside WTB's per-task overhead (wall - ideal) / tasks;
4. a 10,000-execution batch (100 combinations x 100 cases of a 2-node workflow, no sleep,
   ThreadPool 4 workers, SQLite file): RSS growth of this process and time per result in each
   decile of completion (``--quick``: 1,000 executions).

Every measurement is printed with the 1-minute load average at its end: the machine may be
shared, and a loaded machine makes every wall time longer.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_HOME = Path(tempfile.gettempdir()) / "wtb-bench-batch"

# Before Prefect or Ray is imported: no analytics, no Ray auth, quiet logs; a Prefect home of
# our own (the ephemeral server's SQLite file is not shared with other users of ~/.prefect);
# the repository on PYTHONPATH so Ray workers can import bench.workflows.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.setdefault("PREFECT_HOME", str(BENCH_HOME / "prefect-home"))
os.environ.setdefault("WTB_HOME", str(BENCH_HOME / "wtb-home"))
for _home in ("PREFECT_HOME", "WTB_HOME"):
    Path(os.environ[_home]).expanduser().mkdir(parents=True, exist_ok=True)
_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if str(REPO_ROOT) not in _paths:
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *_paths])
if __package__ in (None, ""):  # run as a script: make `bench`, `flows` and `wtb_domain` importable
    sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import heapq  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.futures import wait  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402
from sqlalchemy import event  # noqa: E402

from bench import workflows as wf  # noqa: E402
from bench.common import (  # noqa: E402
    machine_info,
    machine_line,
    markdown_table,
    print_table,
    update_results_section,
    verdict,
)
from flows.batch_test import run_batch  # noqa: E402
from flows.runners import build_task_runner, prefect_api_for_ray  # noqa: E402
from wtb_domain import sql_app  # noqa: E402
from wtb_domain.batch.plan import ResolvedBatch, plan_groups, resolve  # noqa: E402
from wtb_domain.batch.service import BatchService  # noqa: E402
from wtb_domain.batch.spec import BatchSpec  # noqa: E402

SECTION = "batch"
TITLE = "Batch tests on Prefect (prefix sharing, parallel efficiency, overhead, 10k executions)"
FAN_WORKERS = 8
BIG_WORKERS = 4
RATIO_TARGET_THREADPOOL = 1.25
RATIO_TARGET_RAY = 1.5
RSS_TARGET_MB = 150.0
LONG_TXN_S = 0.09  # a write transaction this long can only have a 0.1 s node inside it
RSS_SAMPLE_S = 0.2
PROGRESS_POLL_S = 0.25
EVALUATORS = [{"type": "exact_match", "field": "answer"}]


@dataclass(frozen=True)
class Params:
    tp_repeats: int  # ThreadPool runs of the 100-variant batch (each with its 1-task probe)
    ray_repeats: int  # Ray runs of it (each with its probe; every flow run starts a new Ray)
    bare_repeats: int  # ThreadPool bare-flow repeats
    prefix_repeats: int  # repeats of every section-1 row (median wall)
    big_cases: int  # section 4: cases x 100 combinations


FULL = Params(
    tp_repeats=3,
    ray_repeats=2,
    bare_repeats=3,
    prefix_repeats=3,
    big_cases=100,
)
QUICK = Params(
    tp_repeats=1,
    ray_repeats=1,
    bare_repeats=1,
    prefix_repeats=1,
    big_cases=10,
)


# --------------------------------------------------------------------------- small helpers


def load_avg() -> tuple[float, float, float]:
    return os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3


def fmt_load(load: tuple[float, float, float]) -> str:
    return f"{load[0]:.2f}"


def git_commit() -> str:
    """Commit of the checkout, flagged when product code has uncommitted changes."""
    try:

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-C", str(REPO_ROOT), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()

        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "wtb_domain", "flows", "tasks")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" + uncommitted changes in wtb_domain/flows/tasks" if dirty else "")


def rss_mb() -> float:
    """This process's resident set size (VmRSS of /proc/self/status), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def parse_ts(value: str | None) -> dt.datetime | None:
    """A timestamp as SQLAlchemy stores it in SQLite (UTC, no offset)."""
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Workdir:
    """Fresh SQLite files (absolute URLs: Ray workers run in other directories)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0

    def db(self, name: str) -> Path:
        self.n += 1
        return self.root / f"{self.n:02d}-{name}.db"


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def premigrate(path: Path) -> None:
    """Create and migrate the database before any timing (a user's store usually exists)."""
    sql_app(url_of(path), audit=False)


@dataclass
class DbFacts:
    node_checkpoints: int
    executions: int
    results: int
    failed: int
    batch_created: dt.datetime | None
    first_execution: dt.datetime | None
    first_result: dt.datetime | None
    last_result: dt.datetime | None


def db_facts(path: Path) -> DbFacts:
    """Counts and timestamps read straight from the SQLite file (independent of WTB's code)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:

        def one(sql: str) -> Any:
            return conn.execute(sql).fetchone()[0]

        return DbFacts(
            node_checkpoints=one("SELECT count(*) FROM wtb_checkpoints WHERE source = 'node'"),
            executions=one("SELECT count(*) FROM wtb_executions"),
            results=one("SELECT count(*) FROM wtb_batch_test_results"),
            failed=one("SELECT count(*) FROM wtb_batch_test_results WHERE NOT success"),
            batch_created=parse_ts(one("SELECT min(created_at) FROM wtb_batch_tests")),
            first_execution=parse_ts(one("SELECT min(created_at) FROM wtb_executions")),
            first_result=parse_ts(one("SELECT min(created_at) FROM wtb_batch_test_results")),
            last_result=parse_ts(one("SELECT max(created_at) FROM wtb_batch_test_results")),
        )
    finally:
        conn.close()


def task_spans(path: Path) -> list[tuple[dt.datetime, dt.datetime, int]]:
    """Per task (variant tree): (root execution created, last result written, results).

    A task's tree is its root execution (no parent) and the executions forked from it.
    """
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        parents = {
            eid: (parent, parse_ts(created))
            for eid, parent, created in conn.execute(
                "SELECT id, parent_execution_id, created_at FROM wtb_executions"
            )
        }
        results = conn.execute(
            "SELECT execution_id, created_at FROM wtb_batch_test_results"
        ).fetchall()
    finally:
        conn.close()

    def root(eid: str) -> str:
        while parents[eid][0] is not None:
            eid = parents[eid][0]
        return eid

    ends: dict[str, tuple[dt.datetime, int]] = {}
    for eid, created in results:
        r, ts = root(eid), parse_ts(created)
        assert ts is not None
        last, count = ends.get(r, (ts, 0))
        ends[r] = (max(last, ts), count + 1)
    spans = []
    for r, (end, count) in ends.items():
        start = parents[r][1]
        assert start is not None
        spans.append((start, end, count))
    return sorted(spans)


# --------------------------------------------------------------------------- specs


def prefix_spec(db: Path, sharing: bool, workers: int = 1) -> BatchSpec:
    return BatchSpec.parse(
        {
            "workflow": wf.PREFIX3,
            "variants": {n: list(wf.PREFIX_VARIANTS) for n in wf.PREFIX_NODES},
            "cases": [{"id": "case-0", "input": {}, "expected": {"answer": "a=x,b=x,c=x"}}],
            "evaluators": EVALUATORS,
            "runner": "threadpool",
            "max_workers": workers,
            "database_url": url_of(db),
            "prefix_sharing": sharing,
        }
    )


def fan_spec(db: Path, runner: str, probe: bool = False) -> BatchSpec:
    """The 100-variant batch; ``probe``: one combination with no sleep (a 1-task batch)."""
    if probe:
        variants: dict[str, list[Any]] = {
            "prep": [{"variant": "default", "params": {"sleep_s": 0}, "label": "prep0"}],
            "work": [{"variant": wf.fan_variant(0), "params": {"sleep_s": 0}, "label": "w0"}],
        }
    else:
        variants = {"work": [wf.fan_variant(i) for i in range(wf.FAN_VARIANTS)]}
    return BatchSpec.parse(
        {
            "workflow": wf.FAN100,
            "variants": variants,
            "cases": [{"id": "case-0", "input": {"x": 1}, "expected": {"answer": "2"}}],
            "evaluators": EVALUATORS,
            "runner": runner,
            "max_workers": FAN_WORKERS,
            "ray": {"num_cpus": FAN_WORKERS, "num_cpus_per_task": 1},
            "database_url": url_of(db),
        }
    )


def big_spec(db: Path, cases: int) -> BatchSpec:
    names = [wf.tiny_variant(i) for i in range(wf.TINY_VARIANTS)]
    return BatchSpec.parse(
        {
            "workflow": wf.TINY2,
            "variants": {"a": names, "b": names},
            "cases": [
                {"id": f"case-{i:04d}", "input": {"x": i}, "expected": {"answer": str(i * 10)}}
                for i in range(cases)
            ],
            "evaluators": EVALUATORS,
            "runner": "threadpool",
            "max_workers": BIG_WORKERS,
            "database_url": url_of(db),
            "prefix_sharing": True,
        }
    )


def spec_workers(spec: BatchSpec) -> int:
    """The ``workers`` the flow plans with (flows.batch_test._workers)."""
    if spec.runner == "ray":
        return spec.ray.num_cpus or spec.max_workers
    return spec.max_workers


def tree_node_count(resolved: ResolvedBatch, leaf_keys: Sequence[str], sharing: bool) -> int:
    """Node runs a variant tree needs for these leaves of a linear, deterministic workflow:
    the number of distinct variant prefixes at every depth (no sharing: leaves x nodes)."""
    order = list(resolved.workflow.nodes)
    wanted = set(leaf_keys)
    leaves = [lf for lf in resolved.leaves if lf.key in wanted]
    if not sharing:
        return len(leaves) * len(order)
    total = 0
    for depth in range(1, len(order) + 1):
        total += len(
            {
                tuple(lf.combination.selection.get(n, "default") for n in order[:depth])
                for lf in leaves
            }
        )
    return total


@dataclass(frozen=True)
class Plan:
    groups: list[tuple[str, ...]]  # leaf keys per task
    node_runs: list[int]  # expected node runs per task (tree count)

    @property
    def tasks(self) -> int:
        return len(self.groups)


def plan_of(spec: BatchSpec) -> Plan:
    """The task plan the flow will make for ``spec`` (pure: nothing stored)."""
    resolved = resolve(spec)
    groups = plan_groups(resolved, spec.load_cases(), spec_workers(spec))
    return Plan(
        [g.leaf_keys for g in groups],
        [tree_node_count(resolved, g.leaf_keys, spec.prefix_sharing) for g in groups],
    )


def lpt_makespan(durations: Sequence[float], workers: int) -> float:
    """Makespan of greedy longest-first scheduling on ``workers`` (zero overhead)."""
    loads = [0.0] * workers
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


# --------------------------------------------------------------------------- flow runs


@dataclass
class FlowRun:
    label: str
    runner: str
    wall: float
    summary: dict[str, Any]
    facts: DbFacts
    started: dt.datetime
    ended: dt.datetime
    load: tuple[float, float, float]
    tasks: int = 0
    spans: list[tuple[dt.datetime, dt.datetime, int]] = field(default_factory=list)

    @property
    def nodes(self) -> int:
        return int(self.summary.get("node_executions", 0) or 0)

    @property
    def ok(self) -> bool:
        return self.summary.get("state") == "Completed" and not self.summary.get("errors")

    def span(self, a: dt.datetime | None, b: dt.datetime | None) -> float:
        return (b - a).total_seconds() if a and b else float("nan")

    @property
    def to_first_execution(self) -> float:
        return self.span(self.started, self.facts.first_execution)

    @property
    def active(self) -> float:
        return self.span(self.facts.first_execution, self.facts.last_result)

    @property
    def after_last_result(self) -> float:
        return self.span(self.facts.last_result, self.ended)

    @property
    def ramp_up(self) -> float:
        """First task start -> start of the FAN_WORKERS-th task (all workers busy)."""
        starts = [a for a, _, _ in self.spans]
        if len(starts) < FAN_WORKERS:
            return float("nan")
        return (starts[FAN_WORKERS - 1] - starts[0]).total_seconds()

    def in_task_overhead(self, node_s: float) -> float:
        """Mean over tasks of (root created -> last result) - the task's node time.

        Node time of a task = node executions x node_s, with node executions spread over
        tasks by their results (fan100: 1 prep + 1 work per result).
        """
        if not self.spans:
            return float("nan")
        busy = sum((b - a).total_seconds() for a, b, _ in self.spans)
        return (busy - self.nodes * node_s) / len(self.spans)

    @property
    def mean_span(self) -> float:
        if not self.spans:
            return float("nan")
        return statistics.mean((b - a).total_seconds() for a, b, _ in self.spans)


def flow_run(label: str, spec: BatchSpec, db: Path, tasks: int = 0) -> FlowRun:
    premigrate(db)
    gc.collect()
    started = utcnow()
    t0 = time.perf_counter()
    summary = run_batch(spec)
    wall = time.perf_counter() - t0
    ended = utcnow()
    run = FlowRun(label, spec.runner, wall, summary, db_facts(db), started, ended, load_avg())
    run.tasks = tasks
    run.spans = task_spans(db)
    status = "ok" if run.ok else f"NOT OK: {summary.get('state')} {summary.get('errors')}"
    print(
        f"    {label}: {wall:.2f} s, {run.nodes} node executions, "
        f"{run.facts.results} results, load {fmt_load(run.load)} [{status}]",
        flush=True,
    )
    return run


# --------------------------------------------------------------------------- bare Prefect


@task(name="wtb-bench-bare", cache_policy=NO_CACHE, persist_result=False)
def bare_task(sleep_s: float) -> int:
    if sleep_s > 0:
        time.sleep(sleep_s)
    return 1


@flow(name="wtb-bench-bare-flow")
def bare_flow(waves: list[list[float]], ray_cpus_per_task: float | None = None) -> list[float]:
    """Submit a wave of tasks (one per entry: seconds to sleep), wait for all, next wave.

    Returns the wall seconds of each wave, measured inside the flow (so the flow run's own
    start and end, and on Ray the start of a local Ray, are not in them).
    """
    out = []
    for sleeps in waves:
        options: Any = contextlib.nullcontext()
        if ray_cpus_per_task is not None:
            from prefect_ray.context import remote_options

            options = remote_options(num_cpus=ray_cpus_per_task)
        t0 = time.perf_counter()
        with options:
            futures = [bare_task.submit(s) for s in sleeps]
        wait(futures)
        done = sum(f.result() for f in futures)
        out.append(time.perf_counter() - t0)
        assert done == len(sleeps), (done, len(sleeps))
    return out


def bare_run(
    waves: list[list[float]],
    runner: str,
    api_url: str | None = None,
    workers: int = FAN_WORKERS,
) -> tuple[float, list[float]]:
    """(wall of the flow run, wall of each wave) of one bare flow run on a fresh task runner."""
    if runner == "ray":
        spec = fan_spec(Path("/nonexistent.db"), "ray")
        task_runner: Any = build_task_runner(spec, api_url)
        cpus: float | None = spec.ray.num_cpus_per_task
    else:
        task_runner, cpus = ThreadPoolTaskRunner(max_workers=workers), None
    gc.collect()
    t0 = time.perf_counter()
    waves_s = bare_flow.with_options(task_runner=task_runner)(waves, cpus)
    return time.perf_counter() - t0, list(waves_s)


COLD, WARM, WARM10, SHAPED, SERIAL = "cold", "warm", "warm10", "shaped", "serial"


@dataclass
class Bare:
    runner: str
    tasks: int
    shaped_ideal: float
    empty: list[float] = field(default_factory=list)  # wall of a flow run with no task
    walls: list[float] = field(default_factory=list)  # wall of the flow run with the waves
    fixed: list[float] = field(default_factory=list)  # that wall minus its waves
    waves: dict[str, list[float]] = field(default_factory=dict)  # wave -> seconds per repeat
    loads: list[float] = field(default_factory=list)

    def wave(self, name: str) -> float:
        values = self.waves.get(name)
        return statistics.median(values) if values else float("nan")

    def per_task(self, name: str) -> float:
        n = {WARM10: 10 * self.tasks}.get(name, self.tasks)
        return self.wave(name) / n


def bare_measure(runner: str, plan: Plan, repeats: int, api_url: str | None = None) -> Bare:
    """Bare Prefect on ``runner``: waves of N no-op tasks (cold, then warm), 10 N (ThreadPool),
    N tasks sleeping as long as WTB's groups, and N no-op tasks on one thread (ThreadPool)."""
    n = plan.tasks
    sleeps = [k * wf.FAN_SLEEP_S for k in plan.node_runs]
    res = Bare(runner, n, shaped_ideal=sum(sleeps) / FAN_WORKERS)
    names = [COLD, WARM, SHAPED]
    waves = [[0.0] * n, [0.0] * n, sleeps]
    if runner == "threadpool":
        names.append(WARM10)
        waves.append([0.0] * (10 * n))
    for r in range(repeats):
        if runner == "threadpool":
            res.empty.append(bare_run([], runner)[0])
        wall, measured = bare_run(waves, runner, api_url)
        res.walls.append(wall)
        res.fixed.append(wall - sum(measured))
        for name, secs in zip(names, measured, strict=True):
            res.waves.setdefault(name, []).append(secs)
        if runner == "threadpool":
            res.waves.setdefault(SERIAL, []).append(bare_run([[0.0] * n], runner, workers=1)[1][0])
        res.loads.append(load_avg()[0])
        print(
            f"    bare {runner} #{r + 1}: flow {wall:.2f} s; waves "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in res.waves.items())
            + f"; load {res.loads[-1]:.2f}",
            flush=True,
        )
    return res


# --------------------------------------------------------------------------- 1: prefix sharing


@dataclass
class PrefixRow:
    level: str
    sharing: bool
    tasks: int
    reported: int
    in_db: int
    expected: int
    results: int
    walls: list[float]
    actives: list[float]  # DB: first execution created -> last result written
    load: float

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def active(self) -> float:
        return statistics.median(self.actives)


def repeated(make: Callable[[], PrefixRow], repeats: int) -> PrefixRow:
    """Run a section-1 measurement ``repeats`` times (fresh database each); keep every wall."""
    rows = [make() for _ in range(repeats)]
    first = rows[0]
    for other in rows[1:]:
        assert (other.reported, other.in_db, other.results) == (
            first.reported,
            first.in_db,
            first.results,
        ), (first, other)
    first.walls = [w for r in rows for w in r.walls]
    first.actives = [w for r in rows for w in r.actives]
    first.load = rows[-1].load
    return first


def domain_prefix(work: Workdir, sharing: bool, one_group: bool) -> PrefixRow:
    """BatchService.prepare(workers=1), then run_group per group, one after another."""
    db = work.db(f"prefix-domain-{'shared' if sharing else 'naive'}")
    spec = prefix_spec(db, sharing, workers=1)
    app = sql_app(url_of(db), audit=False)
    service = BatchService(app)
    prepared = service.prepare(spec, workers=1)
    groups = [g.leaf_keys for g in prepared.groups]
    if one_group:
        groups = [tuple(k for g in groups for k in g)]
    resolved = resolve(spec)
    expected = sum(tree_node_count(resolved, g, sharing) for g in groups)
    case = "case-0"
    gc.collect()
    t0 = time.perf_counter()
    nodes = sum(service.run_group(prepared.payload, case, list(g)).node_executions for g in groups)
    wall = time.perf_counter() - t0
    service.finish(prepared.batch_id, (), nodes)
    facts = db_facts(db)
    level = "domain, one group of all 27 leaves" if one_group else "domain, planned groups"
    row = PrefixRow(
        level,
        sharing,
        len(groups),
        nodes,
        facts.node_checkpoints,
        expected,
        facts.results,
        [wall],
        [(facts.last_result - facts.first_execution).total_seconds()]
        if facts.last_result and facts.first_execution
        else [float("nan")],
        load_avg()[0],
    )
    print(f"    {level}, sharing={sharing}: {nodes} node executions, {wall:.2f} s", flush=True)
    return row


def flow_prefix(work: Workdir, sharing: bool, workers: int) -> PrefixRow:
    db = work.db(f"prefix-flow-w{workers}-{'shared' if sharing else 'naive'}")
    spec = prefix_spec(db, sharing, workers)
    plan = plan_of(spec)
    run = flow_run(f"flow ThreadPool max_workers={workers}, sharing={sharing}", spec, db)
    return PrefixRow(
        f"flow, ThreadPool max_workers={workers}",
        sharing,
        plan.tasks,
        run.nodes,
        run.facts.node_checkpoints,
        sum(plan.node_runs),
        run.facts.results,
        [run.wall],
        [run.active],
        run.load[0],
    )


# --------------------------------------------------------------------------- 2: diagnostic


@dataclass
class LockStats:
    """Time between BEGIN (IMMEDIATE: the SQLite write lock) and COMMIT/ROLLBACK."""

    held: float = 0.0
    longest: float = 0.0
    transactions: int = 0
    long: int = 0  # transactions of LONG_TXN_S or more
    _open: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, conn: Any) -> None:
        self._open[id(conn)] = time.perf_counter()

    def end(self, conn: Any) -> None:
        start = self._open.pop(id(conn), None)
        if start is None:
            return
        d = time.perf_counter() - start
        with self._lock:
            self.held += d
            self.longest = max(self.longest, d)
            self.transactions += 1
            self.long += d >= LONG_TXN_S


@contextlib.contextmanager
def lock_accounting(engine: Any) -> Iterator[LockStats]:
    stats = LockStats()
    # Registered after WTB's own "begin" listener (which runs BEGIN IMMEDIATE), so the clock
    # starts once the lock is taken.
    event.listen(engine, "begin", stats.begin)
    event.listen(engine, "commit", stats.end)
    event.listen(engine, "rollback", stats.end)
    try:
        yield stats
    finally:
        event.remove(engine, "begin", stats.begin)
        event.remove(engine, "commit", stats.end)
        event.remove(engine, "rollback", stats.end)


@dataclass
class DiagRow:
    label: str
    tasks: int
    nodes: int
    wall: float
    ideal: float
    lock: LockStats
    load: float


def domain_fan(work: Workdir, label: str) -> DiagRow:
    """The 100-variant batch without Prefect: its planned groups on 8 plain threads."""
    from concurrent.futures import ThreadPoolExecutor

    db = work.db("fan-domain")
    spec = fan_spec(db, "threadpool")
    app = sql_app(url_of(db), audit=False)
    assert app.database is not None
    service = BatchService(app)
    prepared = service.prepare(spec, workers=FAN_WORKERS)
    case = "case-0"
    gc.collect()
    with (
        lock_accounting(app.database.engine) as lock,
        ThreadPoolExecutor(FAN_WORKERS) as pool,
    ):
        t0 = time.perf_counter()
        outcomes = list(
            pool.map(
                lambda g: service.run_group(prepared.payload, case, list(g.leaf_keys)),
                prepared.groups,
            )
        )
        wall = time.perf_counter() - t0
    nodes = sum(o.node_executions for o in outcomes)
    row = DiagRow(
        label,
        len(prepared.groups),
        nodes,
        wall,
        nodes * wf.FAN_SLEEP_S / FAN_WORKERS,
        lock,
        load_avg()[0],
    )
    print(
        f"    {label}: {wall:.2f} s, {nodes} node executions, write lock held "
        f"{lock.held:.2f} s, load {row.load:.2f}",
        flush=True,
    )
    return row


# --------------------------------------------------------------------------- 4: 10k batch


class Sampler:
    """Calls ``fn`` every ``every`` seconds on a daemon thread; keeps (seconds, value)."""

    def __init__(self, fn: Callable[[], Any], every: float) -> None:
        self.fn = fn
        self.every = every
        self.samples: list[tuple[float, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self.t0 = 0.0

    def _loop(self) -> None:
        while True:
            value = self.fn()
            if value is not None:
                self.samples.append((time.perf_counter() - self.t0, value))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> Sampler:
        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        value = self.fn()
        if value is not None:
            self.samples.append((time.perf_counter() - self.t0, value))


def result_counter(db: Path) -> Callable[[], int | None]:
    conn: list[sqlite3.Connection] = []

    def count() -> int | None:
        try:
            if not conn:
                conn.append(
                    sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
                )
            return int(conn[0].execute("SELECT count(*) FROM wtb_batch_test_results").fetchone()[0])
        except sqlite3.Error:
            return None

    return count


def db_files_mb(db: Path) -> tuple[float, float] | None:
    """(main file, -wal file) sizes in MiB."""
    try:
        main = db.stat().st_size
    except OSError:
        return None
    wal = db.with_name(db.name + "-wal")
    return main / 2**20, (wal.stat().st_size if wal.exists() else 0) / 2**20


def cpu_at(samples: Sequence[tuple[float, float]], when: float) -> float:
    """Process CPU seconds at ``when``, interpolated between samples."""
    prev_t, prev_v = samples[0]
    for t, v in samples:
        if t >= when:
            if t == prev_t:
                return v
            return prev_v + (v - prev_v) * (when - prev_t) / (t - prev_t)
        prev_t, prev_v = t, v
    return prev_v


def crossing(samples: Sequence[tuple[float, float]], target: float) -> float:
    """First time the sampled series reaches ``target`` (linear between samples)."""
    if not samples:
        return float("nan")
    prev_t, prev_v = samples[0]
    for t, v in samples:
        if v >= target:
            if v == prev_v:
                return t
            return prev_t + (t - prev_t) * (target - prev_v) / (v - prev_v)
        prev_t, prev_v = t, v
    return float("nan")


def value_at(samples: Sequence[tuple[float, float]], when: float) -> float:
    """Last sample at or before ``when``."""
    best = samples[0][1] if samples else float("nan")
    for t, v in samples:
        if t > when:
            break
        best = v
    return best


@dataclass
class BigRun:
    executions: int
    run: FlowRun
    rss_base: float
    rss_peak: float
    rss_end: float
    rss_end_gc: float
    cpu: float
    first_result: float
    deciles: list[tuple[int, float, float, float, str, float]]
    # (results, seconds, RSS at end, load, "db / wal MiB", CPU seconds of this process)
    db_mb: float

    @property
    def growth(self) -> float:
        return self.rss_peak - self.rss_base


def big_batch(work: Workdir, cases: int) -> BigRun:
    db = work.db(f"big-{cases * 100}")
    spec = big_spec(db, cases)
    total = cases * wf.TINY_VARIANTS**2
    premigrate(db)
    plan = plan_of(spec)
    loads: list[tuple[float, float]] = []
    gc.collect()
    base = rss_mb()
    cpu0 = cpu_s()
    with (
        Sampler(rss_mb, RSS_SAMPLE_S) as rss,
        Sampler(result_counter(db), PROGRESS_POLL_S) as progress,
        Sampler(lambda: load_avg()[0], 5.0) as load_sampler,
        Sampler(lambda: db_files_mb(db), 0.5) as files,
        Sampler(cpu_s, PROGRESS_POLL_S) as cpu_samples,
    ):
        started = utcnow()
        t0 = time.perf_counter()
        summary = run_batch(spec)
        wall = time.perf_counter() - t0
        ended = utcnow()
    cpu = cpu_s() - cpu0
    end = rss_mb()
    gc.collect()
    end_gc = rss_mb()
    loads = load_sampler.samples
    facts = db_facts(db)
    run = FlowRun(
        f"{total:,} executions", "threadpool", wall, summary, facts, started, ended, load_avg()
    )
    run.tasks = plan.tasks
    counts = [(t, float(v)) for t, v in progress.samples]
    first = run.span(started, facts.first_result)  # exact, from the stored timestamp
    deciles: list[tuple[int, float, float, float, str, float]] = []
    prev_t = first
    prev_cpu = cpu_at(cpu_samples.samples, first)
    for d in range(1, 11):
        target = total * d / 10
        t = crossing(counts, target)
        db_mb, wal_mb = value_at(files.samples, t) if files.samples else ("?", "?")
        deciles.append(
            (
                int(target),
                t - prev_t,
                value_at(rss.samples, t),
                value_at(loads, t),
                f"{db_mb:.1f} / {wal_mb:.1f}",
                cpu_at(cpu_samples.samples, t) - prev_cpu,
            )
        )
        prev_t = t
        prev_cpu = cpu_at(cpu_samples.samples, t)
    peak = max(v for _, v in rss.samples)
    db_bytes = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))
    print(
        f"    {total:,} executions: {wall:.1f} s, RSS {base:.0f} -> peak {peak:.0f} MiB, "
        f"{facts.results} results, load {fmt_load(run.load)}",
        flush=True,
    )
    return BigRun(total, run, base, peak, end, end_gc, cpu, first, deciles, db_bytes / 2**20)


# --------------------------------------------------------------------------- orchestration


@dataclass
class Results:
    info: dict[str, str]
    params: Params
    quick: bool
    skip_ray: bool
    warmup_s: float = 0.0
    prefix: list[PrefixRow] = field(default_factory=list)
    fan_plan: Plan | None = None
    fan_runs: list[tuple[FlowRun, FlowRun]] = field(default_factory=list)  # (probe, batch)
    diag: list[DiagRow] = field(default_factory=list)
    bare: list[Bare] = field(default_factory=list)
    big: BigRun | None = None
    ray_server_s: float | None = None
    ray_error: str | None = None
    notes: list[str] = field(default_factory=list)
    elapsed: float = 0.0


def run(args: argparse.Namespace) -> Results:
    p = QUICK if args.quick else FULL
    info = {
        "wtb commit": git_commit(),
        **machine_info(["prefect", "prefect-ray", "ray", "sqlalchemy"]),
    }
    res = Results(info, p, args.quick, args.skip_ray)
    t_all = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="wtb-bench-batch-"))
    work = Workdir(root)

    def stamp(what: str) -> None:
        print(f"  [{time.perf_counter() - t_all:6.1f}s] {what}", flush=True)

    try:
        stamp("warm-up: first flow run (starts Prefect's ephemeral server)")
        t0 = time.perf_counter()
        bare_run([[0.0]], "threadpool")
        res.warmup_s = time.perf_counter() - t0
        stamp(f"warm-up done in {res.warmup_s:.1f} s")

        stamp("1) prefix sharing")
        reps = p.prefix_repeats
        for one_group in (True, False):
            for sharing in (False, True):
                res.prefix.append(
                    repeated(functools.partial(domain_prefix, work, sharing, one_group), reps)
                )
        for workers in (1, 4):
            for sharing in (False, True):
                res.prefix.append(
                    repeated(functools.partial(flow_prefix, work, sharing, workers), reps)
                )

        stamp("2) parallel efficiency, ThreadPool")
        res.fan_plan = plan_of(fan_spec(work.db("plan"), "threadpool"))
        fan_threadpool(work, res, p.tp_repeats)
        stamp("2) check without Prefect: 8 threads, SQLite write-lock accounting")
        res.diag.append(domain_fan(work, "BatchService.run_group on 8 threads"))

        stamp("3) bare Prefect flow, ThreadPool")
        res.bare.append(bare_measure("threadpool", res.fan_plan, p.bare_repeats))

        stamp(f"4) {p.big_cases * 100:,}-execution batch")
        res.big = big_batch(work, p.big_cases)

        if not args.skip_ray:
            stamp("2+3) Ray")
            try:
                ray_part(work, res, p)
            except Exception as exc:  # reported, the rest of the results stand
                res.ray_error = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
        stamp("done")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    res.elapsed = time.perf_counter() - t_all
    load = " ".join(f"{x:.2f}" for x in load_avg())
    res.notes.append(
        f"Load average (1/5/15 min) at the end: {load} on {os.cpu_count()} CPUs; the whole "
        f"script took {res.elapsed / 60:.1f} min."
    )
    return res


def fan_threadpool(work: Workdir, res: Results, repeats: int) -> None:
    assert res.fan_plan is not None
    for r in range(repeats):
        db = work.db("fan-probe-tp")
        probe = flow_run(
            f"ThreadPool 1-task probe #{r + 1}", fan_spec(db, "threadpool", True), db, 1
        )
        db = work.db("fan-tp")
        batch = flow_run(
            f"ThreadPool 100 variants #{r + 1}",
            fan_spec(db, "threadpool"),
            db,
            res.fan_plan.tasks,
        )
        res.fan_runs.append((probe, batch))


def ray_part(work: Workdir, res: Results, p: Params) -> None:
    assert res.fan_plan is not None
    t0 = time.perf_counter()
    with prefect_api_for_ray() as api_url:
        res.ray_server_s = time.perf_counter() - t0
        print(f"    Prefect API for Ray workers: {api_url} ({res.ray_server_s:.1f} s)", flush=True)
        for r in range(p.ray_repeats):
            db = work.db("fan-probe-ray")
            probe = flow_run(f"Ray 1-task probe #{r + 1}", fan_spec(db, "ray", True), db, 1)
            db = work.db("fan-ray")
            batch = flow_run(
                f"Ray 100 variants #{r + 1}", fan_spec(db, "ray"), db, res.fan_plan.tasks
            )
            res.fan_runs.append((probe, batch))
        res.bare.append(bare_measure("ray", res.fan_plan, 1, api_url))


# --------------------------------------------------------------------------- report


def prefix_table(res: Results) -> tuple[list[str], list[list[str]]]:
    headers = [
        "level",
        "prefix sharing",
        "tasks (groups)",
        "node executions (reported)",
        "node checkpoints in DB",
        "expected (tree count)",
        "results",
        "wall s (median)",
        "wall spread s",
        "DB: 1st execution -> last result s (median)",
        "load 1m",
    ]
    rows = [
        [
            r.level,
            "yes" if r.sharing else "no (naive)",
            str(r.tasks),
            str(r.reported),
            str(r.in_db),
            str(r.expected),
            str(r.results),
            f"{r.wall:.2f}",
            f"{min(r.walls):.2f}-{max(r.walls):.2f} (n={len(r.walls)})",
            f"{r.active:.2f}",
            f"{r.load:.2f}",
        ]
        for r in res.prefix
    ]
    return headers, rows


def prefix_verdicts(res: Results) -> list[str]:
    out = []
    by_level: dict[str, dict[bool, PrefixRow]] = {}
    for r in res.prefix:
        by_level.setdefault(r.level, {})[r.sharing] = r
    for level, pair in by_level.items():
        naive, shared = pair.get(False), pair.get(True)
        if naive is None or shared is None:
            continue
        ok = naive.reported == 81 and shared.reported == 39
        out.append(
            f"{level}: {naive.reported} vs {shared.reported} node executions "
            f"(expected 81 vs 39: {verdict(ok)}); wall {naive.wall:.2f} s vs {shared.wall:.2f} s "
            f"({naive.wall / shared.wall:.2f}x); DB active span {naive.active:.2f} s vs "
            f"{shared.active:.2f} s ({naive.active / shared.active:.2f}x)"
        )
    return out


def fan_pairs(res: Results) -> list[tuple[str, FlowRun, FlowRun]]:
    """(runner, probe, batch) of every section-2 run."""
    return [(b.runner, pr, b) for pr, b in res.fan_runs]


def fan_rows(res: Results) -> tuple[list[str], list[list[str]]]:
    headers = [
        "runner",
        "run",
        "tasks",
        "node executions",
        "ideal s",
        "wall s",
        "wall / ideal",
        "1-task probe wall s (start-up)",
        "(wall - start-up) / ideal",
        "load 1m",
    ]
    rows = []
    for label, probe, batch in fan_pairs(res):
        ideal = batch.nodes * wf.FAN_SLEEP_S / FAN_WORKERS
        rows.append(
            [
                label,
                batch.label + ("" if batch.ok else " [NOT OK]"),
                str(batch.tasks),
                str(batch.nodes),
                f"{ideal:.2f}",
                f"{batch.wall:.2f}",
                f"{batch.wall / ideal:.2f}",
                f"{probe.wall:.2f}",
                f"{(batch.wall - probe.wall) / ideal:.2f}",
                f"{batch.load[0]:.2f}",
            ]
        )
    return headers, rows


def timeline_rows(res: Results) -> tuple[list[str], list[list[str]]]:
    headers = [
        "runner",
        "run",
        "flow call -> 1st execution s",
        f"1st -> {FAN_WORKERS}th task start s (ramp-up)",
        "1st execution -> last result s (active)",
        "active / ideal",
        "last result -> return s",
        "mean task span s",
        "WTB in-task overhead ms / task",
    ]
    rows = []
    for label, _, batch in fan_pairs(res):
        ideal = batch.nodes * wf.FAN_SLEEP_S / FAN_WORKERS
        rows.append(
            [
                label,
                batch.label,
                f"{batch.to_first_execution:.2f}",
                f"{batch.ramp_up:.2f}",
                f"{batch.active:.2f}",
                f"{batch.active / ideal:.2f}",
                f"{batch.after_last_result:.2f}",
                f"{batch.mean_span:.2f}",
                f"{batch.in_task_overhead(wf.FAN_SLEEP_S) * 1e3:.0f}",
            ]
        )
    return headers, rows


def fan_summary(res: Results) -> tuple[list[str], list[list[str]]]:
    headers = [
        "runner",
        "runs",
        "measure (median of runs)",
        "value",
        "target",
        "verdict",
        "plan floor (zero overhead)",
    ]
    rows = []
    plan = res.fan_plan
    floor = ""
    if plan is not None:
        durations = [n * wf.FAN_SLEEP_S for n in plan.node_runs]
        floor = f"{lpt_makespan(durations, FAN_WORKERS) / (sum(durations) / FAN_WORKERS):.2f}"
    groups = [
        ("threadpool", RATIO_TARGET_THREADPOOL, "raw", res.fan_runs),
        ("ray", RATIO_TARGET_RAY, "after", res.fan_runs),
    ]
    for label, target, primary, pairs in groups:
        runner = label.split()[0]
        runs = [(pr, b) for pr, b in pairs if b.runner == runner]
        if not runs:
            continue
        ideals = [b.nodes * wf.FAN_SLEEP_S / FAN_WORKERS for _, b in runs]
        pairs_i = list(zip(runs, ideals, strict=True))
        measures = {
            "raw": ("wall / ideal", statistics.median(b.wall / i for (_, b), i in pairs_i)),
            "after": (
                "(wall - 1-task probe) / ideal",
                statistics.median((b.wall - pr.wall) / i for (pr, b), i in pairs_i),
            ),
            "active": (
                "DB: active / ideal",
                statistics.median(b.active / i for (_, b), i in pairs_i),
            ),
        }
        for key, (measure, value) in measures.items():
            is_target = target is not None and key == primary
            rows.append(
                [
                    label,
                    str(len(runs)),
                    measure,
                    f"{value:.2f}",
                    f"<= {target}" if is_target else "(info)",
                    verdict(value <= target) if is_target and target is not None else "",
                    floor,
                ]
            )
    return headers, rows


def diag_table(res: Results) -> tuple[list[str], list[list[str]]]:
    headers = [
        "8 plain threads, no Prefect",
        "tasks",
        "node executions",
        "wall s",
        "wall / ideal",
        "write lock held, sum s",
        "longest write transaction s",
        f"transactions >= {LONG_TXN_S * 1e3:.0f} ms",
        "no write transaction spans a node",
        "load 1m",
    ]
    rows = [
        [
            d.label,
            str(d.tasks),
            str(d.nodes),
            f"{d.wall:.2f}",
            f"{d.wall / d.ideal:.2f}",
            f"{d.lock.held:.2f}",
            f"{d.lock.longest:.3f}",
            f"{d.lock.long} of {d.lock.transactions}",
            verdict(d.lock.long == 0),
            f"{d.load:.2f}",
        ]
        for d in res.diag
    ]
    return headers, rows


def overhead_table(res: Results) -> tuple[list[str], list[list[str]]]:
    headers = [
        "runner",
        "tasks N",
        "flow run fixed cost s",
        "bare ms / task: first N (cold)",
        "bare ms / task: next N (warm)",
        "bare ms / task: 10 N (warm)",
        "bare ms / task: N on 1 thread",
        "bare, N tasks as long as WTB's groups: wall / ideal",
        "WTB wall s (median)",
        "WTB ms / task ((wall - ideal) / N)",
        "WTB ms / task after start-up",
        "load 1m (max)",
    ]

    def ms(seconds: float) -> str:
        return "not run" if seconds != seconds else f"{seconds * 1e3:.0f}"

    rows = []
    for b in res.bare:
        runs = [(pr, x) for pr, x in res.fan_runs if x.runner == b.runner]
        wtb = wtb_after = wall = "n/a"
        if runs:
            walls = [x.wall for _, x in runs]
            ideals = [x.nodes * wf.FAN_SLEEP_S / FAN_WORKERS for _, x in runs]
            per = [(w - i) / b.tasks for w, i in zip(walls, ideals, strict=True)]
            after = [
                (x.wall - pr.wall - i) / b.tasks for (pr, x), i in zip(runs, ideals, strict=True)
            ]
            wall = f"{statistics.median(walls):.2f}"
            wtb = f"{statistics.median(per) * 1e3:.0f}"
            wtb_after = f"{statistics.median(after) * 1e3:.0f}"
        fixed = statistics.median(b.empty) if b.empty else statistics.median(b.fixed)
        shaped = b.wave(SHAPED)
        rows.append(
            [
                b.runner,
                str(b.tasks),
                f"{fixed:.2f}" + (" (empty flow)" if b.empty else " (flow - waves)"),
                ms(b.per_task(COLD)),
                ms(b.per_task(WARM)),
                ms(b.per_task(WARM10)),
                ms(b.per_task(SERIAL)),
                f"{shaped / b.shaped_ideal:.2f} ({shaped:.2f} s)",
                wall,
                wtb,
                wtb_after,
                f"{max(b.loads):.2f}" if b.loads else "",
            ]
        )
    return headers, rows


def big_tables(res: Results) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    big = res.big
    assert big is not None
    run_ = big.run
    h1 = ["measure", "value", "target", "verdict"]
    r1 = [
        ["executions (results) / expected", f"{run_.facts.results:,} / {big.executions:,}", "", ""],
        ["failed results", str(run_.facts.failed), "", ""],
        ["tasks (one per case)", str(run_.tasks), "", ""],
        [
            "node executions (reported / DB)",
            f"{run_.nodes:,} / {run_.facts.node_checkpoints:,}",
            "",
            "",
        ],
        ["wall s", f"{run_.wall:.1f}", "", ""],
        ["time to first result s", f"{big.first_result:.2f}", "", ""],
        ["ms / result (first -> last result)", f"{run_.active / big.executions * 1e3:.2f}", "", ""],
        ["CPU s of this process (user + sys)", f"{big.cpu:.1f}", "", ""],
        ["RSS before MiB", f"{big.rss_base:.1f}", "", ""],
        ["RSS peak MiB", f"{big.rss_peak:.1f}", "", ""],
        [
            "RSS growth (peak - before) MiB",
            f"{big.growth:.1f}",
            f"< {RSS_TARGET_MB:.0f}",
            verdict(big.growth < RSS_TARGET_MB),
        ],
        [
            "RSS at end / after gc.collect() MiB",
            f"{big.rss_end:.1f} / {big.rss_end_gc:.1f}",
            "",
            "",
        ],
        ["SQLite db + wal MiB", f"{big.db_mb:.1f}", "", ""],
        ["load 1m at end", f"{run_.load[0]:.2f}", "", ""],
    ]
    h2 = [
        "decile",
        "results",
        "seconds",
        "ms / result",
        "CPU ms / result (this process)",
        "RSS at decile end MiB",
        "db / wal file MiB at decile end",
        "load 1m",
    ]
    step = big.executions // 10
    r2 = [
        [
            f"{i * 10}-{(i + 1) * 10}%",
            f"{step:,}",
            f"{secs:.2f}",
            f"{secs / step * 1e3:.2f}",
            f"{cpu / step * 1e3:.2f}",
            f"{rss:.1f}",
            files,
            f"{load:.2f}",
        ]
        for i, (_, secs, rss, load, files, cpu) in enumerate(big.deciles)
    ]
    return h1, r1, h2, r2


def decile_trend(res: Results) -> str:
    big = res.big
    if big is None:
        return ""
    step = big.executions // 10
    per = [secs / step * 1e3 for _, secs, _, _, _, _ in big.deciles]
    cpu = [c / step * 1e3 for *_, c in big.deciles]
    first, last = statistics.mean(per[:2]), statistics.mean(per[-2:])
    cfirst, clast = statistics.mean(cpu[:2]), statistics.mean(cpu[-2:])
    return (
        f"time per result, first two deciles {first:.2f} ms -> last two {last:.2f} ms "
        f"({last / first:.2f}x); CPU of this process per result {cfirst:.2f} -> {clast:.2f} ms "
        f"({clast / cfirst:.2f}x)"
    )


def markdown(res: Results) -> str:
    p = res.params
    mode = "`--quick`" if res.quick else "full run"
    flags = (" --quick" if res.quick else "") + (" --skip-ray" if res.skip_ray else "")
    plan = res.fan_plan
    parts = [
        f"Generated by `python bench/batch.py{flags}` ({mode}).",
        "",
        f"Machine: {machine_line(res.info)}.",
        "",
        "**Setup.** Workflows: `bench/workflows.py` (deterministic; nodes sleep, state is a few "
        "bytes). Every batch uses a fresh, pre-migrated SQLite file in a temporary directory, "
        "evaluators `[exact_match on answer]`. Flow runs are `flows.batch_test.run_batch(spec)` "
        "timed from the call to its return (prepare, tasks, finish, matrix and artifacts "
        "included). `PREFECT_HOME` is a directory of the bench's own; the first flow run of the "
        f"process (a bare one, not counted) started Prefect's ephemeral server: "
        f"{res.warmup_s:.1f} s. Every row shows the 1-minute load average at its end "
        f"({os.cpu_count()} CPUs; other people's jobs may be running).",
        "",
        "### 1. Prefix sharing (27 combinations, 3 nodes x 3 variants, 20 ms per node, 1 case)",
        "",
        "*Domain* rows: `BatchService(sql_app(sqlite file)).prepare(spec, workers=1)`, then "
        "`run_group` for each group, one after another (wall = the run_group calls). *Planned "
        "groups* are what `plan_groups` makes; *one group* passes all 27 leaves to a single "
        "`run_group` call (the whole case as one tree). *Flow* rows: `run_batch` on the "
        "ThreadPool runner; node executions from the flow's summary. *Expected (tree count)* "
        "is computed from the plan: distinct variant prefixes at each depth per task (no "
        "sharing: leaves x nodes); *node checkpoints in DB* counts `source='node'` rows. "
        "*DB: 1st execution -> last result* is the span between timestamps the run stored (the "
        "node work plus WTB's per-execution work, without Prefect's flow start and end). Flow "
        "walls carry up to ~1 s of Prefect's own end-of-run wait: Prefect 3.8's flow engine "
        "joins its heartbeat thread, which sleeps in 1 s steps (`prefect/flow_engine.py`, "
        "`_send_heartbeats`), so short flow runs end on a ~1 s grid and small differences "
        "between them are lost; compare the DB span instead.",
        "",
        markdown_table(*prefix_table(res)),
        "",
        *[f"- {line}" for line in prefix_verdicts(res)],
        "",
        f"### 2. Parallel efficiency (100 variants, {FAN_WORKERS} workers, 0.1 s nodes)",
        "",
        "Workflow `prep -> work`, 100 variants of `work` (`add_variant` with params), one case: "
        "with prefix sharing each task runs `prep` once and then its slice of `work` variants. "
        f"The plan has {plan.tasks if plan else '?'} tasks of "
        f"{', '.join(str(n) for n in plan.node_runs) if plan else '?'} node runs. "
        f"**ideal** = node executions (from the summary) x 0.1 s / {FAN_WORKERS}. "
        "**Start-up** (Ray: a new local Ray per flow run) is measured as the wall of a 1-task "
        "batch on the same runner just before (same workflow, one combination, no sleep); the "
        "Ray target applies to (wall - start-up) / ideal. This subtracts one task's overhead "
        "too, and it under-counts Ray's start-up for 8 workers, because each new Ray worker "
        "process imports Prefect and WTB on its first task (the probe starts only one). As a "
        "cross-check, *DB* columns split the wall with timestamps the run stored: flow call -> "
        "first execution created (flow start, prepare, task submission, worker start), first "
        "execution -> last result (*active*). *Plan floor* = greedy longest-first makespan of "
        "the planned tasks with zero overhead / ideal: the best any runner can do with this "
        "plan.",
        "",
        markdown_table(*fan_rows(res)),
        "",
        markdown_table(*fan_summary(res)),
        "",
        "Timeline of the same runs from the timestamps stored in the database (task = variant "
        "tree: from its root execution's creation to its last result; *in-task overhead* = "
        "mean task span minus its node time, i.e. WTB's own work plus waiting for the SQLite "
        "lock inside the task):",
        "",
        markdown_table(*timeline_rows(res)),
        "",
        "**Check without Prefect.** The same planned groups run by `BatchService.run_group` "
        f"on {FAN_WORKERS} plain threads, with SQLAlchemy `begin`/`commit`/`rollback` "
        "listeners timing every SQLite write transaction (WTB starts each one with `BEGIN "
        "IMMEDIATE`, i.e. takes the database's write lock; the clock starts once it is taken). "
        f"A transaction of {LONG_TXN_S * 1e3:.0f} ms or more can only have a 0.1 s node inside "
        "it, serialising every other thread and process behind that node. Before commit "
        "9dbaed0 `Engine.advance` kept the head-checkpoint read's transaction open through the "
        "first node; this bench then measured 115 such transactions of 925 (one per node run), "
        "the write lock held 12.1 s of a 12.8 s run, wall / ideal 8.9 here, 9.9 through the "
        "ThreadPool flow and 27.7 (after start-up) on Ray.",
        "",
        markdown_table(*diag_table(res)),
        "",
        "### 3. Prefect's per-task overhead",
        "",
        "A bare flow (`@task` with `NO_CACHE`, `persist_result=False`, returning 1) runs "
        f"waves of tasks and times each wave inside the flow (submit all, wait for all): N = "
        f"{plan.tasks if plan else '?'} no-op tasks (the number of WTB tasks in 2) on a fresh "
        "task runner (*cold*: on Ray this includes starting the worker processes, each "
        "importing Prefect), N no-op tasks again (*warm*), on ThreadPool 10 N no-op tasks, and "
        "N tasks that only sleep as long as WTB's groups need (node runs x 0.1 s; what Prefect "
        "alone achieves with WTB's plan, on warm workers). *ms / task* = wave wall / tasks with "
        f"{FAN_WORKERS} workers in parallel (a throughput cost, not one task's latency); *N on "
        "1 thread* is a separate flow run on `ThreadPoolTaskRunner(1)`, i.e. one task's "
        f"latency. Runners: `ThreadPoolTaskRunner({FAN_WORKERS})` and the `RayTaskRunner` "
        "WTB builds (`flows.runners.build_task_runner`, `num_cpus=1` per task via "
        "`remote_options`). *Flow run fixed cost*: ThreadPool = wall of a flow run with no "
        "task; Ray = wall of the wave flow run minus its waves (Ray start and shutdown, flow "
        "run creation and end). WTB ms / task = (WTB wall - ideal) / N from section 2 (and "
        f"the same minus the 1-task probe). ThreadPool: median of {p.bare_repeats} "
        "repeat(s); Ray: one run.",
        "",
        markdown_table(*overhead_table(res)) if res.bare else "Not run.",
        "",
    ]
    if res.big is not None:
        h1, r1, h2, r2 = big_tables(res)
        parts += [
            f"### 4. A {res.big.executions:,}-execution batch",
            "",
            f"`tiny2` (`a -> b`, 10 variants each, no sleep): 100 combinations x "
            f"{res.big.executions // 100} cases, prefix sharing, ThreadPool {BIG_WORKERS} "
            "workers, one SQLite file. RSS = VmRSS of this process (the flow, its tasks and "
            f"WTB all run in it; Prefect's ephemeral server is a separate process), sampled "
            f"every {RSS_SAMPLE_S} s from a thread. Progress: rows of `wtb_batch_test_results` "
            f"counted every {PROGRESS_POLL_S} s on a read-only connection; decile times are "
            "interpolated between samples, starting at the first result.",
            "",
            markdown_table(h1, r1),
            "",
            markdown_table(h2, r2),
            "",
            f"- {decile_trend(res)}",
            "",
        ]
    notes = list(res.notes)
    tp_bare = next((b for b in res.bare if b.runner == "threadpool" and b.empty), None)
    tp_runs = [x for _, x in res.fan_runs if x.runner == "threadpool"]
    if tp_bare is not None and tp_runs:
        fixed = statistics.median(tp_bare.empty)
        ideal = statistics.median(x.nodes for x in tp_runs) * wf.FAN_SLEEP_S / FAN_WORKERS
        notes.insert(
            0,
            f"A flow run with no task costs {fixed:.2f} s on ThreadPool ({fixed / ideal:.2f} x "
            f"the {ideal:.2f} s ideal of section 2), most of it Prefect's end-of-run heartbeat "
            f"wait; wall / ideal <= {RATIO_TARGET_THREADPOOL} would need the whole flow run, "
            f"that cost included, within {RATIO_TARGET_THREADPOOL * ideal:.2f} s. The "
            "after-start-up and DB-active ratios show the rest.",
        )
    if res.skip_ray:
        notes.insert(0, "Ray was skipped (`--skip-ray`).")
    if res.ray_error:
        notes.insert(0, f"The Ray part failed: {res.ray_error}")
    if res.ray_server_s is not None:
        notes.insert(
            0,
            "Ray runs used one `prefect server` started by `flows.runners.prefect_api_for_ray` "
            f"for all of them ({res.ray_server_s:.1f} s to start, not in any wall time); "
            "`run_batch` alone would start one per call.",
        )
    parts += ["### Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(parts)


def print_all(res: Results) -> None:
    print(f"\nMachine: {machine_line(res.info)}")
    print_table("1. Prefix sharing (27 combinations)", *prefix_table(res))
    for line in prefix_verdicts(res):
        print(f"  {line}")
    print_table("2. Parallel efficiency (100 variants, 8 workers)", *fan_rows(res))
    print_table("2. Summary", *fan_summary(res))
    print_table("2. Timeline from the database", *timeline_rows(res))
    print_table("2. Diagnostic: 8 plain threads, no Prefect", *diag_table(res))
    if res.bare:
        print_table("3. Per-task overhead", *overhead_table(res))
    if res.big is not None:
        h1, r1, h2, r2 = big_tables(res)
        print_table(f"4. {res.big.executions:,}-execution batch", h1, r1)
        print_table("4. Time per result by decile of completion", h2, r2)
        print(f"  {decile_trend(res)}")
    if res.ray_error:
        print(f"\nRay part failed: {res.ray_error}")
    for n in res.notes:
        print(f"  note: {n}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, 1,000 executions in 4")
    ap.add_argument("--skip-ray", action="store_true", help="ThreadPool runner only")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/results.md")
    args = ap.parse_args(argv)
    res = run(args)
    print_all(res)
    if not args.no_write:
        path = update_results_section(SECTION, TITLE, markdown(res))
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
