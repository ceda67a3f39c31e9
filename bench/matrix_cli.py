"""``wtb matrix`` on a 1,000,000-row PostgreSQL batch, end to end (process start to output) and
in-process, with the Python start-up and import floors beside it.

Run from the repository root (PostgreSQL at ``WTB_BENCH_PG_ADMIN_URL``)::

    python bench/matrix_cli.py              # 1,000,000 rows, writes bench/results.md
    python bench/matrix_cli.py --rows 200000 --no-write

The batch (20 combinations x 500 cases x repeats) is generated in SQL by ``bench/postgres.py``'s
``generate`` on a throwaway database, its rollups rebuilt, then ``VACUUM (ANALYZE)``. Every
figure is the median of ``--repeats`` runs, interleaved; subprocess CPU is the children's
user + sys time from ``getrusage`` (on a shared 2-core machine wall time includes waiting for
a CPU; CPU time does not). The repository's modules are byte-compiled first into a throwaway
``PYTHONPYCACHEPREFIX`` (as an installed package is), so no process pays for compiling them
even where ``PYTHONDONTWRITEBYTECODE`` is set.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `wtb_domain` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    machine_info,
    machine_line,
    markdown_table,
    print_table,
    update_results_section,
    verdict,
)
from bench.postgres import generate, throwaway_database
from wtb_domain import sql_app
from wtb_domain.adapters.sql.aggregates import build_matrix_from_inputs, matrix_inputs
from wtb_domain.adapters.sql.database import database_for
from wtb_domain.batch.service import BatchService

REPO_ROOT = Path(__file__).resolve().parents[1]
SECTION = "matrix-cli"
TITLE = "`wtb matrix` on a 1,000,000-row PostgreSQL batch, end to end"
BATCH = "bench-matrix-cli"
TARGET_S = 0.300
# What `wtb matrix` cannot do without: typer (which coerces every parameter through pydantic,
# hence typer._adapters), rich's console for the output, SQLAlchemy Core with the psycopg
# dialect, psycopg, and numpy for the statistics. `wtb batch status` needs all but numpy.
THIRD_PARTY = (
    "import typer, typer._adapters, rich.console, sqlalchemy, "
    "sqlalchemy.dialects.postgresql.psycopg, psycopg, numpy"
)
DRIVER = "import sqlalchemy, sqlalchemy.dialects.postgresql.psycopg, psycopg"
PACKAGES = ("wtb_domain", "wtb_cli", "migrations")


def byte_compile(env: dict[str, str]) -> None:
    """Compile the repository's packages into ``env``'s ``PYTHONPYCACHEPREFIX``."""
    dirs = [str(REPO_ROOT / p) for p in PACKAGES]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *dirs], env=env, check=True)


def wtb_exe() -> list[str]:
    exe = shutil.which("wtb")
    return [exe] if exe else [sys.executable, "-m", "wtb_cli.main"]


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def subprocess_timer(args: list[str], env: dict[str, str], check: Callable[[str], None]) -> Any:
    def run() -> tuple[float, float]:
        cpu0 = child_cpu()
        started = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{args} exited {done.returncode}: {done.stderr[-400:]}")
        check(done.stdout)
        return wall, child_cpu() - cpu0

    return run


def in_process(url: str, part: str) -> Any:
    service = BatchService(sql_app(url, audit=False))

    def run() -> tuple[float, float]:
        cpu0, started = time.process_time(), time.perf_counter()
        if part == "matrix":
            service.matrix(BATCH)
        else:
            with service.app.uow() as uow:
                got = matrix_inputs(uow.connection, BATCH)  # type: ignore[attr-defined]
            if part == "build":
                cpu0, started = time.process_time(), time.perf_counter()
                build_matrix_from_inputs(got, BATCH)
        return time.perf_counter() - started, time.process_time() - cpu0

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    info = machine_info(["sqlalchemy", "psycopg", "numpy", "typer"])
    rows_out: list[list[str]] = []
    with throwaway_database() as url:
        sql_app(url, audit=False)
        db = database_for(url)
        with db.engine.connect() as conn:
            t_gen, t_roll = generate(conn, BATCH, args.rows)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("wtb_batch_test_results", "wtb_result_rollups", "wtb_metric_rollups"):
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
        print(f"  generated {args.rows:,} rows in {t_gen:.1f} s, rollups {t_roll:.1f} s")

        def matrix_ok(out: str) -> None:
            combos = [x for x in out.splitlines() if x.startswith('"retrieve=')]
            assert len(combos) == 20, out[:500]  # one CSV row per combination

        pycache = tempfile.mkdtemp(prefix="wtb-pycache-")
        env = {
            **os.environ,
            "WTB_DATABASE_URL": url,
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONPYCACHEPREFIX": pycache,
        }
        byte_compile(env)
        py = sys.executable

        def status_ok(out: str) -> None:
            assert f"{args.rows} of {args.rows} results" in out, out[:500]

        contenders: dict[str, Any] = {
            "process: `python -c pass` (interpreter start-up floor)": subprocess_timer(
                [py, "-c", "pass"], env, lambda out: None
            ),
            "process: import SQLAlchemy Core + psycopg (the driver alone)": subprocess_timer(
                [py, "-c", DRIVER], env, lambda out: None
            ),
            "process: import the third-party libraries the command needs [floor]": (
                subprocess_timer([py, "-c", THIRD_PARTY], env, lambda out: None)
            ),
            "process: `import wtb_cli.main` (all of the CLI's imports)": subprocess_timer(
                [py, "-c", "import wtb_cli.main"], env, lambda out: None
            ),
            "**process: `wtb matrix BATCH --format csv`, start to exit**": subprocess_timer(
                [*wtb_exe(), "matrix", BATCH, "--format", "csv"], env, matrix_ok
            ),
            "process: `wtb batch status BATCH`, start to exit": subprocess_timer(
                [*wtb_exe(), "batch", "status", BATCH], env, status_ok
            ),
            "in-process: `BatchService.matrix()` (warm engine)": in_process(url, "matrix"),
            "in-process: `matrix_inputs()` (the SQL)": in_process(url, "inputs"),
            "in-process: `build_matrix_from_inputs()` (the statistics)": in_process(url, "build"),
        }
        for fn in contenders.values():
            fn()  # warm-up: caches, the server's buffers, the draws of the statistics
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in contenders}
        load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
        for _ in range(args.repeats):
            for name, fn in contenders.items():
                samples[name].append(fn())
        load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
        shutil.rmtree(pycache, ignore_errors=True)
    for name, got in samples.items():
        wall = statistics.median(w for w, _ in got)
        cpu = statistics.median(c for _, c in got)
        is_target = name.startswith("**process: `wtb matrix")
        rows_out.append(
            [
                name,
                f"{wall * 1e3:.0f}",
                f"{min(w for w, _ in got) * 1e3:.0f}",
                f"{cpu * 1e3:.0f}",
                verdict(cpu < TARGET_S) if is_target else "",
            ]
        )
    head = ["step", "wall ms (median)", "wall ms (min)", "CPU ms (median)", "CPU < 300 ms"]
    print(f"\nMachine: {machine_line(info)}")
    print_table("wtb matrix", head, rows_out)
    print(f"load before {load_before}, after {load_after}")
    if not args.no_write:
        body = "\n".join(
            [
                f"Generated by `python bench/matrix_cli.py --rows {args.rows}`.",
                "",
                f"Machine: {machine_line(info)}; load average (1/5/15 min) {load_before} "
                f"before the timings, {load_after} after, on {os.cpu_count()} CPUs.",
                "",
                f"Batch: {args.rows:,} result rows, 20 combinations x 500 cases, generated in "
                f"SQL ({t_gen:.0f} s) with its rollups rebuilt ({t_roll:.0f} s), then "
                f"`VACUUM (ANALYZE)`. Medians of {args.repeats} interleaved runs after one "
                "warm-up. Process rows: a new process per run against the local server (CPU = "
                "the child's user + sys); the CSV output is checked (20 combinations), and the "
                "status line's counts. The repository's modules were byte-compiled first (into "
                "a throwaway `PYTHONPYCACHEPREFIX`), as an installed package's are. The "
                "verdict is on CPU time: on this shared machine wall time is mostly waiting "
                "for a CPU.",
                "",
                markdown_table(head, rows_out),
            ]
        )
        print(f"wrote {update_results_section(SECTION, TITLE, body)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
