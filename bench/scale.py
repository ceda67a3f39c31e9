"""Scale-out targets: 100 variants x 0.1 s nodes on 8 workers, Ray (a cluster) and ThreadPool.

    python bench/scale.py [--repeats 2] [--worker-path DIR] [--label TEXT] [--no-write]
                          [--skip-ray | --skip-threadpool]

One ``prefect server`` (started here) serves every run. Ray: a local cluster started here
with ``ray start --head --num-cpus 8`` (``tests.ray_cluster``, stopped by PID); its start is
not counted. *Warm job*: this process stays connected (``flows.ray_session``), one warm-up
batch (not counted) opens the job and starts its 8 worker processes, and each counted batch
runs in that job; the main table's Ray row is the warm job. *Cold job*: the connection is
closed before each batch (``flows.ray_session.disconnect``), so each batch opens a new job
and starts 8 new worker processes (what every batch did before kept connections; flow start
and ``ray.init`` counted). ThreadPool: each ``run_batch`` from flow start. ideal = node
executions x 0.1 s / 8. Per-task overhead = (wall - ideal) / tasks, for WTB and for a bare
Prefect flow whose tasks only sleep as long as WTB's planned groups, on the same task runner
and, on Ray, the same kind of job (a whole flow run each). Driver CPU: this
process's CPU seconds for the WTB run and the bare run (ThreadPool: all its threads; Ray: the
driver only, not the workers).

``--worker-path`` puts another checkout first on the Ray nodes' PYTHONPATH (e.g. the code
before warm workers) while the driver stays on this one; ``--label`` names the run.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# bench.batch sets the Prefect/Ray environment before Prefect is imported
import bench.batch as bb

# isort: split

import argparse
import contextlib
import gc
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from bench import workflows as wf
from bench.common import (
    machine_info,
    machine_line,
    markdown_table,
    print_table,
    update_results_section,
    verdict,
)
from flows.ray_session import disconnect
from flows.runners import build_task_runner, prefect_api_for_ray
from tests.ray_cluster import ray_cluster
from wtb_domain.batch.spec import BatchSpec, RayConfig

SECTION = "scale"
TITLE = "Scale-out targets (100 variants x 0.1 s, 8 workers; Ray on an existing cluster)"
TARGET = {"ray": 1.3, "threadpool": 1.2}
OVERHEAD_TARGET = 1.2
WORKERS = bb.FAN_WORKERS


@dataclass
class Row:
    runner: str
    walls: list[float] = field(default_factory=list)
    ideals: list[float] = field(default_factory=list)
    in_task: list[float] = field(default_factory=list)
    to_first: list[float] = field(default_factory=list)  # flow call -> first execution
    active: list[float] = field(default_factory=list)  # first execution -> last result
    bare: list[float] = field(default_factory=list)  # bare flow wall, same plan
    cpu: list[float] = field(default_factory=list)  # this process's CPU s of the WTB run
    bare_cpu: list[float] = field(default_factory=list)  # ... of the bare run
    tasks: int = 0
    loads: list[float] = field(default_factory=list)

    def ratio(self) -> float:
        return statistics.median(w / i for w, i in zip(self.walls, self.ideals, strict=True))

    def active_ratio(self) -> float:
        return statistics.median(a / i for a, i in zip(self.active, self.ideals, strict=True))

    def wtb_per_task(self) -> float:
        return statistics.median(
            (w - i) / self.tasks for w, i in zip(self.walls, self.ideals, strict=True)
        )

    def bare_per_task(self, ideal: float) -> float:
        return statistics.median((b - ideal) / self.tasks for b in self.bare)


def ray_spec(db: Path, address: str) -> BatchSpec:
    spec = bb.fan_spec(db, "ray")
    config = RayConfig(ray_address=address, max_pending_tasks=100, max_retries=0)
    return spec.model_copy(update={"ray": config})


def bare_wall(spec: BatchSpec, sleeps: list[float], api_url: str | None) -> float:
    """Wall of one bare Prefect flow run of tasks sleeping ``sleeps`` on ``spec``'s runner."""
    if spec.runner == "ray":
        runner: Any = build_task_runner(spec, api_url)
        cpus: float | None = spec.ray.num_cpus_per_task
    else:
        runner, cpus = ThreadPoolTaskRunner(max_workers=WORKERS), None
    gc.collect()
    t0 = time.perf_counter()
    bb.bare_flow.with_options(task_runner=runner)([sleeps], cpus)
    return time.perf_counter() - t0


def measure(
    row: Row, make: Any, work: bb.Workdir, repeats: int, sleeps: list[float], api: str | None
) -> None:
    for r in range(repeats):
        db = work.db(f"{row.runner}-{r}")
        cpu0 = time.process_time()
        run = bb.flow_run(f"{row.runner} #{r + 1}", make(db), db, row.tasks)
        row.cpu.append(time.process_time() - cpu0)
        if not run.ok:
            raise SystemExit(f"{row.runner} batch did not complete: {run.summary}")
        row.walls.append(run.wall)
        row.ideals.append(run.nodes * wf.FAN_SLEEP_S / WORKERS)
        row.in_task.append(run.in_task_overhead(wf.FAN_SLEEP_S))
        row.to_first.append(run.to_first_execution)
        row.active.append(run.active)
        cpu0 = time.process_time()
        row.bare.append(bare_wall(make(db), sleeps, api))
        row.bare_cpu.append(time.process_time() - cpu0)
        row.loads.append(bb.load_avg()[0])
        print(f"    bare {row.runner} #{r + 1}: {row.bare[-1]:.2f} s", flush=True)


# --------------------------------------------------------------------------- Ray: warm vs cold job


def tree_cpu() -> dict[int, float]:
    """CPU seconds (user + sys) of this process and every live descendant (the Ray cluster's
    daemons and worker processes, the Prefect server), by PID, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
    mine, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        pid = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == pid and c not in mine]
        mine.update(kids)
        frontier.extend(kids)
    return {pid: cpu[pid] for pid in mine if pid in cpu}


def cpu_since(before: dict[int, float]) -> float:
    """CPU the process tree used since ``before`` (processes that ended since are lost:
    measure before closing a job)."""
    return sum(c - before.get(pid, 0.0) for pid, c in tree_cpu().items())


@dataclass
class RayRow(Row):
    job: str = "warm"
    cpu: list[float] = field(default_factory=list)  # process tree CPU s per batch
    bare_cpu: list[float] = field(default_factory=list)


def measure_ray(
    row: RayRow,
    make: Any,
    work: bb.Workdir,
    repeats: int,
    sleeps: list[float],
    api: str | None,
) -> None:
    """Batches (and bare flows) in the kept job (warm) or each in a new job (cold)."""
    cold = row.job == "cold"
    for r in range(repeats):
        db = work.db(f"ray-{row.job}-{r}")
        if cold:
            disconnect()
        before = tree_cpu()
        run = bb.flow_run(f"ray {row.job} job #{r + 1}", make(db), db, row.tasks)
        row.cpu.append(cpu_since(before))
        if not run.ok:
            raise SystemExit(f"ray batch did not complete: {run.summary}")
        row.walls.append(run.wall)
        row.ideals.append(run.nodes * wf.FAN_SLEEP_S / WORKERS)
        row.in_task.append(run.in_task_overhead(wf.FAN_SLEEP_S))
        row.to_first.append(run.to_first_execution)
        row.active.append(run.active)
        if cold:
            disconnect()  # the bare flow's RayTaskRunner opens (and closes) its own job
        before = tree_cpu()
        row.bare.append(bare_wall(make(db), sleeps, api))
        row.bare_cpu.append(cpu_since(before))
        row.loads.append(bb.load_avg()[0])
        print(
            f"    bare ray {row.job} job #{r + 1}: {row.bare[-1]:.2f} s; CPU s batch "
            f"{row.cpu[-1]:.1f}, bare {row.bare_cpu[-1]:.1f}",
            flush=True,
        )


def ray_job_table(rows: list[RayRow], shaped_ideal: float) -> tuple[list[str], list[list[Any]]]:
    headers = [
        "Ray job",
        "runs",
        "tasks",
        "ideal s",
        "wall s (median)",
        "wall / ideal",
        "target",
        "",
        "flow call -> 1st execution s",
        "CPU s, all processes (median)",
        "bare Prefect wall s",
        "bare CPU s",
        "WTB ms / task",
        "bare ms / task",
        "WTB / bare",
        "target",
        "",
        "load (1 min)",
    ]
    table = []
    for row in rows:
        wtb, bare = row.wtb_per_task(), row.bare_per_task(shaped_ideal)
        table.append(
            [
                f"{row.job} job",
                len(row.walls),
                row.tasks,
                f"{statistics.median(row.ideals):.2f}",
                f"{statistics.median(row.walls):.2f}",
                f"{row.ratio():.2f}",
                f"<= {TARGET['ray']}",
                verdict(row.ratio() <= TARGET["ray"]),
                f"{statistics.median(row.to_first):.2f}",
                f"{statistics.median(row.cpu):.1f}",
                f"{statistics.median(row.bare):.2f}",
                f"{statistics.median(row.bare_cpu):.1f}",
                f"{wtb * 1e3:.0f}",
                f"{bare * 1e3:.0f}",
                f"{wtb / bare:.2f}" if bare > 0 else "n/a",
                f"<= {OVERHEAD_TARGET}",
                verdict(bare > 0 and wtb / bare <= OVERHEAD_TARGET),
                " / ".join(f"{x:.2f}" for x in row.loads),
            ]
        )
    return headers, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker-path", default=str(bb.REPO_ROOT))
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--skip-threadpool", action="store_true")
    parser.add_argument("--skip-ray", action="store_true", help="ThreadPool rows only")
    args = parser.parse_args(argv)

    info = machine_info(["prefect", "prefect-ray", "ray", "sqlalchemy"])
    info["load avg at start"] = bb.fmt_load(bb.load_avg())
    plan = bb.plan_of(bb.fan_spec(Path("/nonexistent.db"), "threadpool"))
    sleeps = [k * wf.FAN_SLEEP_S for k in plan.node_runs]
    shaped_ideal = sum(sleeps) / WORKERS
    rows: list[Row] = []
    node_path = os.pathsep.join([args.worker_path, str(bb.REPO_ROOT)])
    with tempfile.TemporaryDirectory(prefix="wtb-scale-") as tmp, prefect_api_for_ray() as api:
        work = bb.Workdir(Path(tmp))
        ray_part = contextlib.nullcontext(None)
        if not args.skip_ray:
            ray_part = ray_cluster(cpus_per_node=(WORKERS,), env={"PYTHONPATH": node_path})
        with ray_part as cluster:
            if cluster is not None:
                print(
                    f"  Ray cluster at {cluster.address}; warm-up batch (not counted)", flush=True
                )
                warm = work.db("ray-warmup")
                bb.flow_run("ray warm-up", ray_spec(warm, cluster.address), warm, plan.tasks)
                ray_rows = [RayRow("ray", tasks=plan.tasks, job=job) for job in ("warm", "cold")]
                try:
                    for ray_row in ray_rows:
                        measure_ray(
                            ray_row,
                            lambda db: ray_spec(db, cluster.address),
                            work,
                            args.repeats,
                            sleeps,
                            api,
                        )
                finally:
                    disconnect()  # before the cluster stops
                rows.append(ray_rows[0])
        if not args.skip_threadpool:
            tp_row = Row("threadpool", tasks=plan.tasks)
            measure(
                tp_row,
                lambda db: bb.fan_spec(db, "threadpool"),
                work,
                args.repeats,
                sleeps,
                api,
            )
            rows.append(tp_row)

    headers = [
        "runner",
        "code on workers",
        "runs",
        "tasks",
        "ideal s",
        "wall s (median)",
        "wall / ideal",
        "target",
        "",
        "flow call -> 1st execution s",
        "active / ideal",
        "in-task overhead ms",
        "WTB ms / task",
        "bare Prefect ms / task",
        "WTB / bare",
        "target",
        "",
        "driver CPU s: WTB / bare",
        "load (1 min)",
    ]
    table = []
    for row in rows:
        wtb, bare = row.wtb_per_task(), row.bare_per_task(shaped_ideal)
        table.append(
            [
                row.runner,
                args.label if row.runner == "ray" else "(driver)",
                len(row.walls),
                row.tasks,
                f"{statistics.median(row.ideals):.2f}",
                f"{statistics.median(row.walls):.2f}",
                f"{row.ratio():.2f}",
                f"<= {TARGET[row.runner]}",
                verdict(row.ratio() <= TARGET[row.runner]),
                f"{statistics.median(row.to_first):.2f}",
                f"{row.active_ratio():.2f}",
                f"{statistics.median(row.in_task) * 1e3:.0f}",
                f"{wtb * 1e3:.0f}",
                f"{bare * 1e3:.0f}",
                f"{wtb / bare:.2f}" if bare > 0 else "n/a",
                f"<= {OVERHEAD_TARGET}",
                verdict(bare > 0 and wtb / bare <= OVERHEAD_TARGET),
                f"{statistics.median(row.cpu):.2f} / {statistics.median(row.bare_cpu):.2f}",
                " / ".join(f"{x:.2f}" for x in row.loads),
            ]
        )
    print_table(TITLE, headers, table)
    job_headers, job_table = ray_job_table(ray_rows, shaped_ideal)
    print_table(
        "Ray: warm job (kept connection) vs cold job (new job per batch)", job_headers, job_table
    )
    cost = task_cost()
    cost_line = (
        "**Warm workers, per-task cost in one process** (`task_cost`: 40 one-leaf tasks of a "
        "no-sleep batch, `run_case_group` called directly, best of 2): "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in cost.items())
        + f"; load {bb.fmt_load(bb.load_avg())}."
    )
    print(cost_line)
    if not args.no_write:
        body = "\n\n".join(
            [
                f"Machine: {machine_line(info)}.",
                __doc__.split("\n\n", 2)[2].strip(),
                markdown_table(headers, table),
                "**Ray: warm job vs cold job** (CPU s = user + sys of this process and every "
                "live descendant: Ray's daemons and workers, the Prefect server; over the "
                "batch, and over the bare flow run):",
                markdown_table(job_headers, job_table),
                cost_line,
            ]
        )
        update_results_section(f"{SECTION}-{slug(args.label)}", f"{TITLE}: {args.label}", body)
    return 0


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def task_cost(cases: int = 40) -> dict[str, float]:
    """ms per task of ``run_case_group`` in one process: 1-leaf groups of a no-sleep batch.

    *warm*: the App and the resolved batch kept (this branch); *before*: both cleared before
    every task, as workers did before warm workers (the engine and the lru cache of
    ``resolve`` by spec JSON were already kept); *cold*: that lru cache cleared too."""
    from tasks.batch import run_case_group
    from wtb_domain.batch import service as svc
    from wtb_domain.batch import warm
    from wtb_domain.batch.service import BatchService

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="wtb-taskcost-") as tmp:
        for mode in ("cold", "before", "warm") * 2:
            db = Path(tmp) / f"{mode}-{len(out)}-{time.monotonic_ns()}.db"
            data = bb.fan_spec(db, "threadpool", probe=True).model_dump(mode="json")
            data["cases"] = [{"id": f"c{i}", "input": {"x": i}} for i in range(cases)]
            spec = BatchSpec.parse(data)
            bb.premigrate(db)
            prepared = BatchService(bb.sql_app(bb.url_of(db), audit=False)).prepare(spec, 1)
            t0 = time.perf_counter()
            for group in prepared.groups:
                if mode != "warm":
                    warm.APPS.clear()
                    warm.RESOLVED.clear()
                if mode == "cold":
                    svc._resolve_cached.cache_clear()
                run_case_group.fn(prepared.payload, group.case_id, list(group.leaf_keys))
            ms = (time.perf_counter() - t0) / len(prepared.groups) * 1e3
            out[mode] = min(out.get(mode, float("inf")), ms)
            print(f"    task cost {mode}: {ms:.1f} ms / task", flush=True)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
