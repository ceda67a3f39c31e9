"""A 100,000-execution batch on PostgreSQL (ThreadPool, tiny nodes): memory, throughput per
decile, and how fast ``wtb batch status`` / ``wtb matrix`` answer from another process while
it runs.

Run from the repository root (PostgreSQL at ``WTB_BENCH_PG_ADMIN_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``)::

    python bench/big_batch.py                       # 100,000 executions, writes bench/results.md
    python bench/big_batch.py --executions 5000     # smaller (a multiple of 100)

The workflow is ``bench.workflows:tiny2`` (``a -> b``, 10 variants each, no sleep): 100
combinations x ``executions / 100`` cases, prefix sharing, ``--workers`` ThreadPool workers, on
a throwaway database ``wtb_bench_<hex>`` (dropped at the end). RSS is this process's VmRSS (the
flow, its tasks and WTB run in it), sampled every 0.5 s; results are counted from the rollups
every 0.5 s on a connection of the bench's own. When the results cross 10/30/50/70/90 % and
after the end, a probe thread runs ``wtb batch status`` and ``wtb matrix --format csv`` as
subprocesses (process start to exit) and checks their output.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_HOME = Path(tempfile.gettempdir()) / "wtb-bench-big-batch"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.setdefault("PREFECT_HOME", str(BENCH_HOME / "prefect-home"))
os.environ.setdefault("WTB_HOME", str(BENCH_HOME / "wtb-home"))
for _home in ("PREFECT_HOME", "WTB_HOME"):
    Path(os.environ[_home]).expanduser().mkdir(parents=True, exist_ok=True)
if __package__ in (None, ""):  # run as a script: make `bench`, `flows` and `wtb_domain` importable
    sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402
import gc  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from bench import workflows as wf  # noqa: E402
from bench.batch import Sampler, cpu_s, crossing, rss_mb, value_at  # noqa: E402
from bench.common import (  # noqa: E402
    machine_info,
    machine_line,
    markdown_table,
    print_table,
    update_results_section,
    verdict,
)
from bench.postgres import throwaway_database  # noqa: E402
from flows.batch_test import run_batch  # noqa: E402
from wtb_domain import sql_app  # noqa: E402
from wtb_domain.batch.service import BatchService  # noqa: E402
from wtb_domain.batch.spec import BatchSpec  # noqa: E402

SECTION = "big-batch"
TITLE = "A 100,000-execution batch on PostgreSQL (memory, deciles, status/matrix while it runs)"
BATCH_ID = "bench-big-batch"
SAMPLE_S = 0.5
PROBE_AT = (0.1, 0.3, 0.5, 0.7, 0.9)
RSS_TARGET_MB = 150.0
STEADY_TARGET = 1.5  # last two deciles' time per result / first two deciles'
EVALUATORS = [{"type": "exact_match", "field": "answer"}]


def load1() -> float:
    return os.getloadavg()[0]


def spec_for(url: str, executions: int, workers: int) -> BatchSpec:
    names = [wf.tiny_variant(i) for i in range(wf.TINY_VARIANTS)]
    cases = executions // wf.TINY_VARIANTS**2
    return BatchSpec.parse(
        {
            "batch_id": BATCH_ID,
            "workflow": wf.TINY2,
            "variants": {"a": names, "b": names},
            "cases": [
                {"id": f"case-{i:05d}", "input": {"x": i}, "expected": {"answer": str(i * 10)}}
                for i in range(cases)
            ],
            "evaluators": EVALUATORS,
            "runner": "threadpool",
            "max_workers": workers,
            "database_url": url,
            "prefix_sharing": True,
        }
    )


def result_counter(url: str) -> object:
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn: list[psycopg.Connection] = []

    def count() -> int | None:
        try:
            if not conn:
                conn.append(psycopg.connect(dsn, autocommit=True))
            row = (
                conn[0]
                .execute(
                    "SELECT coalesce(sum(n), 0) FROM wtb_result_rollups WHERE batch_test_id = %s",
                    (BATCH_ID,),
                )
                .fetchone()
            )
            return int(row[0]) if row else 0
        except psycopg.Error:
            conn.clear()
            return None

    return count


@dataclass
class Probe:
    at: str  # "10%" ... or "end"
    results: int
    status_s: float
    matrix_s: float
    load: float
    status_line: str


def wtb_command() -> list[str]:
    exe = shutil.which("wtb")
    return [exe] if exe else [sys.executable, "-m", "wtb_cli.main"]


def run_cli(args: list[str], url: str) -> tuple[float, str]:
    env = {**os.environ, "WTB_DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [*wtb_command(), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"wtb {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
    return took, done.stdout


def probe(at: str, results: int, url: str) -> Probe:
    status_s, out = run_cli(["batch", "status", BATCH_ID], url)
    line = out.strip().splitlines()[-1].strip() if out.strip() else ""
    assert " of " in line and "results" in line, out
    matrix_s, csv = run_cli(["matrix", BATCH_ID, "--format", "csv"], url)
    rows = [r for r in csv.splitlines() if r.strip()]
    assert len(rows) >= 2, csv  # a header and at least one combination
    return Probe(at, results, status_s, matrix_s, load1(), line)


class Prober:
    """Probes from a thread of its own when the counter crosses each fraction of ``total``."""

    def __init__(self, url: str, total: int, counter: object) -> None:
        self.url, self.total, self.counter = url, total, counter
        self.probes: list[Probe] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-prober", daemon=True)

    def _loop(self) -> None:
        todo = list(PROBE_AT)
        while todo and not self._stop.is_set():
            n = self.counter()  # type: ignore[operator]
            if n is not None and n >= todo[0] * self.total and n < self.total:
                fraction = todo.pop(0)
                try:
                    self.probes.append(probe(f"{fraction:.0%}", n, self.url))
                except Exception as exc:
                    self.errors.append(f"{fraction:.0%}: {exc}")
                continue
            while todo and n is not None and n >= self.total:
                todo.pop(0)  # finished before this point
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Run:
    executions: int
    workers: int
    summary: dict[str, object]
    wall: float
    rss_base: float
    rss_peak: float
    rss_end_gc: float
    cpu: float
    rss_warm: float = float("nan")  # at the end of the first decile (Prefect and WTB warm)
    deciles: list[list[str]] = field(default_factory=list)
    steady: float = float("nan")
    probes: list[Probe] = field(default_factory=list)
    probe_errors: list[str] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Deadline:
    """Asks the batch to stop (``BatchService.cancel``, what ``wtb batch cancel`` does) after
    ``seconds``; the tasks stop after their current execution and the flow ends Cancelled."""

    def __init__(self, url: str, seconds: float | None) -> None:
        self.url, self.seconds = url, seconds
        self.fired_at: float | None = None
        self._timer: threading.Timer | None = None
        self._t0 = 0.0

    def _fire(self) -> None:
        self.fired_at = time.perf_counter() - self._t0
        BatchService(sql_app(self.url, audit=False)).cancel(BATCH_ID)
        print(f"  [{self.fired_at:.0f} s] --max-seconds reached: cancel requested", flush=True)

    def __enter__(self) -> Deadline:
        self._t0 = time.perf_counter()
        if self.seconds:
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()


def log_progress(counter: object, total: int) -> object:
    """A sampler function printing a progress line every ~30 s (a partial run is reportable)."""
    t0 = time.perf_counter()
    last = [0.0]

    def tick() -> None:
        now = time.perf_counter() - t0
        if now - last[0] >= 30:
            last[0] = now
            n = counter()  # type: ignore[operator]
            print(
                f"  [{now:5.0f} s] {n} of {total:,} results, RSS {rss_mb():.1f} MiB, "
                f"CPU {cpu_s():.1f} s, load {load1():.2f}",
                flush=True,
            )

    return tick


def run(executions: int, workers: int, max_seconds: float | None = None) -> Run:
    info = machine_info(["prefect", "sqlalchemy", "psycopg"])
    with throwaway_database() as url:
        sql_app(url, audit=False)  # migrate before any timing
        spec = spec_for(url, executions, workers)
        total = executions
        counter = result_counter(url)
        gc.collect()
        base, cpu0 = rss_mb(), cpu_s()
        with (
            Sampler(rss_mb, SAMPLE_S) as rss,
            Sampler(counter, SAMPLE_S) as progress,  # type: ignore[arg-type]
            Sampler(cpu_s, SAMPLE_S) as cpu,
            Sampler(load1, 5.0) as loads,
            Prober(url, total, result_counter(url)) as prober,
            Sampler(log_progress(result_counter(url), total), 5.0),  # type: ignore[arg-type]
            Deadline(url, max_seconds) as deadline,
        ):
            t0 = time.perf_counter()
            summary = run_batch(spec)
            wall = time.perf_counter() - t0
        cpu_used = cpu_s() - cpu0
        gc.collect()
        res = Run(executions, workers, summary, wall, base, 0.0, rss_mb(), cpu_used, info=info)
        res.rss_peak = max(v for _, v in rss.samples)
        first_decile = crossing([(t, float(v)) for t, v in progress.samples], total / 10)
        res.rss_warm = value_at(rss.samples, first_decile)
        try:
            res.probes = [*prober.probes, probe("end", int(summary.get("done") or 0), url)]
        except Exception as exc:
            res.probes = prober.probes
            res.probe_errors.append(f"end: {exc}")
        res.probe_errors += prober.errors
        counts = [(t, float(v)) for t, v in progress.samples]
        reached = int(max(v for _, v in counts)) if counts else 0
        if reached < total:  # cancelled by --max-seconds: deciles of what was reached
            res.notes.append(
                f"stopped by --max-seconds {max_seconds:.0f} (cancel requested at "
                f"{deadline.fired_at or 0:.0f} s): {reached:,} of {total:,} results; deciles "
                f"below are tenths of the {reached:,} results reached"
            )
            total = reached - reached % 10
        first = crossing(counts, 1.0)
        prev_t, prev_cpu = first, value_at(cpu.samples, first)
        per_result = []
        for d in range(1, 11):
            t = crossing(counts, total * d / 10)
            secs = t - prev_t
            c = value_at(cpu.samples, t) - prev_cpu
            per_result.append(secs / (total / 10))
            res.deciles.append(
                [
                    f"{(d - 1) * 10}-{d * 10}%",
                    f"{total // 10:,}",
                    f"{secs:.1f}",
                    f"{total / 10 / secs:,.0f}" if secs > 0 else "-",
                    f"{c * 1e3 / (total / 10):.2f}",
                    f"{value_at(rss.samples, t):.1f}",
                    f"{value_at(loads.samples, t):.2f}",
                ]
            )
            prev_t, prev_cpu = t, value_at(cpu.samples, t)
        head = statistics.mean(per_result[:2])
        tail = statistics.mean(per_result[-2:])
        res.steady = tail / head
        res.notes.append(
            f"time per result, first two deciles {head * 1e3:.2f} ms -> last two "
            f"{tail * 1e3:.2f} ms ({res.steady:.2f}x)"
        )
    return res


def tables(res: Run) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    s = res.summary
    growth = res.rss_peak - res.rss_base
    summary = [
        ["results done / expected", f"{s.get('done')} / {s.get('total')}", "", ""],
        ["failed results", f"{s.get('failed')}", "", ""],
        ["batch status", f"{s.get('status')} ({s.get('state')})", "", ""],
        ["wall s (flow run)", f"{res.wall:.1f}", "", ""],
        ["results / s (whole run)", f"{res.executions / res.wall:,.0f}", "", ""],
        ["CPU s of this process", f"{res.cpu:.1f}", "", ""],
        [
            "RSS before / peak / after gc MiB",
            f"{res.rss_base:.1f} / {res.rss_peak:.1f} / {res.rss_end_gc:.1f}",
            "",
            "",
        ],
        [
            "RSS growth (peak - before) MiB",
            f"{growth:.1f}",
            f"< {RSS_TARGET_MB:.0f}",
            verdict(growth < RSS_TARGET_MB),
        ],
        [
            "RSS growth after the first decile (peak - at 10%) MiB",
            f"{res.rss_peak - res.rss_warm:.1f}",
            "",
            "",
        ],
        [
            "time per result, last 2 deciles / first 2",
            f"{res.steady:.2f}",
            f"<= {STEADY_TARGET}",
            verdict(res.steady <= STEADY_TARGET),
        ],
    ]
    probes = [
        [
            p.at,
            f"{p.results:,}",
            f"{p.status_s * 1e3:.0f}",
            f"{p.matrix_s * 1e3:.0f}",
            f"{p.load:.2f}",
            p.status_line,
        ]
        for p in res.probes
    ]
    return summary, res.deciles, probes


SUMMARY_HEAD = ["measure", "value", "target", "verdict"]
DECILE_HEAD = [
    "decile",
    "results",
    "seconds",
    "results / s",
    "CPU ms / result (this process)",
    "RSS at decile end MiB",
    "load 1m",
]
PROBE_HEAD = [
    "at",
    "results then",
    "`wtb batch status` ms",
    "`wtb matrix --format csv` ms",
    "load 1m",
    "status output",
]


def markdown(res: Run) -> str:
    summary, deciles, probes = tables(res)
    cases = res.executions // wf.TINY_VARIANTS**2
    parts = [
        f"Generated by `python bench/big_batch.py --executions {res.executions}`.",
        "",
        f"Machine: {machine_line(res.info)}.",
        "",
        f"`tiny2` (`a -> b`, 10 variants each, no sleep): 100 combinations x {cases:,} cases, "
        f"prefix sharing, ThreadPool {res.workers} workers, a throwaway PostgreSQL database on "
        "the local server. RSS = VmRSS of this process (flow, tasks and WTB; Prefect's "
        "ephemeral server is another process). Results counted from the rollups every "
        f"{SAMPLE_S} s; decile times interpolated between samples from the first result. "
        "Probes: `wtb batch status` and `wtb matrix --format csv` run as new processes (process "
        "start to exit, Python start-up and imports included) when the results cross each "
        "point, competing for the same 2 CPUs as the batch.",
        "",
        markdown_table(SUMMARY_HEAD, summary),
        "",
        markdown_table(DECILE_HEAD, deciles),
        "",
        markdown_table(PROBE_HEAD, probes),
    ]
    notes = [*res.notes, *[f"probe failed: {e}" for e in res.probe_errors]]
    parts += ["", *[f"- {n}" for n in notes]]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--executions", type=int, default=100_000, help="a multiple of 100")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument(
        "--max-seconds", type=float, default=None, help="cancel the batch after this long"
    )
    ap.add_argument("--no-write", action="store_true", help="do not update bench/results.md")
    args = ap.parse_args(argv)
    if args.executions < 100 or args.executions % 100:
        ap.error("--executions: a multiple of 100 (100 combinations x cases)")
    res = run(args.executions, args.workers, args.max_seconds)
    summary, deciles, probes = tables(res)
    print(f"\nMachine: {machine_line(res.info)}")
    print_table("Big batch", SUMMARY_HEAD, summary)
    print_table("Deciles", DECILE_HEAD, deciles)
    print_table("Probes", PROBE_HEAD, probes)
    for note in [*res.notes, *res.probe_errors]:
        print(f"- {note}")
    if not args.no_write:
        print(f"\nwrote {update_results_section(SECTION, TITLE, markdown(res))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
