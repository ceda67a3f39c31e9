"""Shared helpers for the bench scripts: machine facts, timing, tables and ``results.md``.

Every bench script owns one section of ``bench/results.md``, delimited by
``<!-- name:start -->`` and ``<!-- name:end -->``; :func:`update_results_section` rewrites only
the text between those markers and keeps the rest of the file as it is.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import platform
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_MD = BENCH_DIR / "results.md"
RESULTS_HEADER = (
    "# WTB benchmark results\n\n"
    "Written by the scripts in `bench/`; each script rewrites only its own section "
    "(between its `<!-- name:start -->` / `<!-- name:end -->` markers).\n"
)

# --------------------------------------------------------------------------- machine


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(packages: Sequence[str] = ()) -> dict[str, str]:
    """Facts worth printing next to any timing: date, CPUs, Python, SQLite, package versions."""
    info = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "cpu": f"{os.cpu_count()} x {cpu_model()}",
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
    }
    if hasattr(os, "getloadavg"):
        info["load avg (1/5/15 min) at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for name in packages:
        info[name] = package_version(name)
    return info


def machine_line(info: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in info.items())


# --------------------------------------------------------------------------- timing


def timed_rounds(
    fn: Callable[[Any], object], items: Sequence[Any], rounds: int, warmup: int = 0
) -> list[float]:
    """Call ``fn`` on each item; return the mean seconds per call of each of ``rounds`` rounds.

    The first ``warmup`` items are run untimed; the rest are split into ``rounds`` equal
    consecutive slices (a remainder is dropped). Take the median of the result.
    """
    for item in items[:warmup]:
        fn(item)
    measured = items[warmup:]
    per_round = len(measured) // rounds
    if per_round < 1:
        raise ValueError(f"need at least {rounds} measured items, got {len(measured)}")
    out: list[float] = []
    for r in range(rounds):
        chunk = measured[r * per_round : (r + 1) * per_round]
        gc.collect()
        start = time.perf_counter()
        for item in chunk:
            fn(item)
        out.append((time.perf_counter() - start) / len(chunk))
    return out


def interleaved_rounds(
    fns: Mapping[str, Callable[[Any], object]],
    items: Sequence[Any],
    rounds: int,
    warmup: int = 0,
    cpu: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Like :func:`timed_rounds` for several contenders, interleaved round by round.

    With ``cpu``, each round's CPU seconds per call of this process (``time.process_time``)
    go there too, per contender: a figure a loaded machine inflates far less than wall time.
    A contender with an ``other_cpu()`` method (CPU seconds of the processes serving it, such
    as its PostgreSQL backends) has that added.

    Round ``r`` runs slice ``r`` of the items through every contender in turn (the order
    rotates each round), so a burst of background load hits all of them alike instead of
    one whole scenario. Returns the per-round seconds per call of each contender.
    """
    names = list(fns)
    for name in names:
        for item in items[:warmup]:
            fns[name](item)
    measured = items[warmup:]
    per_round = len(measured) // rounds
    if per_round < 1:
        raise ValueError(f"need at least {rounds} measured items, got {len(measured)}")
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        chunk = measured[r * per_round : (r + 1) * per_round]
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = fns[name]
            gc.collect()
            other = getattr(fn, "other_cpu", None)  # CPU of other processes (a DB server)
            start, cpu_start = time.perf_counter(), time.process_time()
            other_start = other() if other is not None else 0.0
            for item in chunk:
                fn(item)
            out[name].append((time.perf_counter() - start) / len(chunk))
            if cpu is not None:
                spent = time.process_time() - cpu_start
                if other is not None:
                    spent += other() - other_start
                cpu.setdefault(name, []).append(spent / len(chunk))
    return out


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time in seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def spread(samples: Sequence[float]) -> str:
    """``min-max`` of samples in ms, for showing how noisy a median is."""
    return f"{min(samples) * 1e3:.2f}-{max(samples) * 1e3:.2f}"


# --------------------------------------------------------------------------- sqlite files


def sqlite_file_bytes(path: str | Path) -> int:
    """Size of a SQLite database after folding its WAL into the main file.

    Runs ``PRAGMA wal_checkpoint(TRUNCATE)`` on a separate connection (idle pooled connections
    of the code under test do not block it) and returns the size of the db plus -wal file.
    """
    path = Path(path)
    conn = sqlite3.connect(path)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    if busy:
        raise RuntimeError(f"wal_checkpoint(TRUNCATE) on {path} was blocked by another connection")
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def sqlite_row_bytes(path: str | Path, skip: Sequence[str] = ("alembic_version",)) -> int:
    """Sum of ``length()`` of every column of every row of every user table (payload bytes).

    Independent of page layout, indexes and free pages; integers count as their decimal text.
    """
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
            if r[0] not in skip
        ]
        total = 0
        for table in tables:
            cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            expr = " + ".join(f'coalesce(length("{c}"), 0)' for c in cols) or "0"
            total += conn.execute(f'SELECT coalesce(sum({expr}), 0) FROM "{table}"').fetchone()[0]
        return int(total)
    finally:
        conn.close()


# --------------------------------------------------------------------------- formatting


def fmt_ms(seconds: float, digits: int = 3) -> str:
    return f"{seconds * 1e3:.{digits}f}"


def fmt_bytes(n: float) -> str:
    if abs(n) >= 1024 * 1024:
        return f"{n / (1024 * 1024):.2f} MiB"
    if abs(n) >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n:.0f} B"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        return str(v).replace("|", "\\|")

    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a table with rich when it is installed, else as plain aligned text."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
        print(f"\n{title}")
        print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)))
        print("  ".join("-" * w for w in widths))
        for row in rows:
            print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
        return
    table = Table(title=title, title_justify="left")
    for h in headers:
        table.add_column(str(h))
    for row in rows:
        table.add_row(*(str(v) for v in row))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


# --------------------------------------------------------------------------- results.md


def _markers(name: str) -> tuple[str, str]:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"section name {name!r} must be letters, digits, '_', '.' or '-'")
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def update_results_section(name: str, title: str, body: str, path: str | Path = RESULTS_MD) -> Path:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``.

    Everything outside the markers is kept. If the file is missing it is created with a
    header; if the markers are missing, ``## title`` and the marked section are appended.
    """
    path = Path(path)
    start, end = _markers(name)
    text = path.read_text() if path.exists() else RESULTS_HEADER
    block = f"{start}\n{body.strip()}\n{end}"
    i = text.find(start)
    j = text.find(end, i + len(start)) if i >= 0 else -1
    if i >= 0 and j >= 0:
        text = text[:i] + block + text[j + len(end) :]
    elif i >= 0 or text.find(end) >= 0:
        raise ValueError(f"{path}: only one of the markers {start} / {end} is present")
    else:
        text = text.rstrip("\n") + f"\n\n## {title}\n\n{block}\n"
    path.write_text(text)
    return path
