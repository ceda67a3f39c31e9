"""Where the cost of watching goes on SQLite: one node write and its events, taken apart.

``python bench/event_cost.py [--executions N] [--rounds R] [--pg-url URL] [--no-write]``
(~3 min; ~10 more with ``--pg-url``)

Since migration 0012 a ``NodeCompleted`` is stored as its node's checkpoint (no event row;
``wtb_domain/adapters/sql/node_events.py``): what watching adds to a node is the metrics,
the event rows of the execution's start and end (0.2 per node on this graph), and marking
the events published (one conditional upsert per execution per publisher flush). This
script measures each on the 10-node linear graph of ``bench/checkpoint_overhead.py``
(1 KB state), after a figure that does not move with the machine's load:

0. **Instructions per node** (when valgrind is installed): each mode (nothing watched,
   metrics only, audit + outbox + metrics) runs in a process under valgrind's cachegrind,
   with and without ``N`` executions after a warm-up; the difference divided by the nodes
   is the mode's user-space instructions per node (the kernel's share, such as the WAL's
   writes, is not counted). Part 1's replays are counted the same way. With ``--pg-url``
   the same count on PostgreSQL (the client's share: **0b**) and the CPU time per node of
   the client and of its PostgreSQL backends (**0c**, interleaved rounds).

1. **SQLite's own work.** The node writes of ``N`` executions with ``audit=True`` are
   captured (the one ``INSERT INTO wtb_sqlite_writes`` statement per write, with its
   parameters, see ``wtb_domain/adapters/sql/sqlite_writes.py``) and replayed with the plain
   ``sqlite3`` module, in autocommit and with WTB's pragmas, on fresh copies of the migrated
   empty database: as captured, with the event rows taken out of each statement, and with
   the outbox's secondary indexes dropped one after the other. The difference is the
   engine's cost of the event rows (now only the execution's start and end). No Python of
   WTB runs in the timed loop.
2. **Building and binding an event row** (Python): ``event_rows`` and the column types'
   bind processors for one ``ExecutionStarted``, as the write does it.
3. **Marking published**: the publisher's batched marks of 200 events (what
   ``Publisher.flush`` sends: one upsert per execution for its node events, one ``UPDATE``
   for the rows), per event.

CPU time (``time.process_time``), medians over rounds; the contenders of part 1 are
interleaved round by round.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `wtb_domain` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event

from bench.checkpoint_overhead import NODES, linear_workflow, make_input
from bench.common import (
    machine_info,
    machine_line,
    markdown_table,
    print_table,
    update_results_section,
)
from wtb_domain import sql_app
from wtb_domain.adapters.sql.event_store import event_rows
from wtb_domain.adapters.sql.sqlite_writes import LAYOUTS, VIEW, _processors
from wtb_domain.events import ExecutionStarted

SECTION = "event_cost"
TITLE = "Cost of watching on SQLite, taken apart"
INDEXES = ("ix_wtb_outbox_unpublished", "ix_wtb_outbox_execution_id")
PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL")
_ROW = re.compile(r"\('(\w+)'((?:, (?:\?|NULL))*)\)")

Statement = tuple[str, tuple[Any, ...]]


def capture(tmp: Path, executions: int) -> tuple[Path, list[Statement]]:
    """An empty migrated database, and the write statements of ``executions`` runs."""
    app = sql_app(f"sqlite:///{tmp}/capture.db", audit=True)
    assert app.database is not None
    empty = tmp / "empty.db"
    with sqlite3.connect(tmp / "capture.db") as src, sqlite3.connect(empty) as dst:
        src.backup(dst)
    statements: list[Statement] = []

    def keep(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        if sql.startswith(f"INSERT INTO {VIEW}"):
            statements.append((sql, tuple(params)))

    event.listen(app.database.engine, "before_cursor_execute", keep)
    workflow = linear_workflow(NODES)
    for k in range(executions):
        app.controller.run(workflow, make_input(1_000, k))
    app.flush()
    app.database.dispose()
    return empty, statements


def without_events(statement: Statement) -> Statement:
    """The same write with its ``event`` rows (and their parameters) taken out."""
    sql, params = statement
    rows: list[str] = []
    kept: list[Any] = []
    i = 0
    for kind, rest in _ROW.findall(sql):
        width = len(LAYOUTS[kind])
        if kind != "event":
            rows.append(f"('{kind}'{rest})")
            kept.extend(params[i : i + width])
        i += width
    return f"INSERT INTO {VIEW} VALUES {', '.join(rows)}", tuple(kept)


def replay(empty: Path, tmp: Path, statements: Sequence[Statement], drop: Sequence[str]) -> float:
    """CPU seconds per statement, replayed on a fresh copy of ``empty``."""
    path = Path(tempfile.mkstemp(suffix=".db", dir=tmp)[1])
    with sqlite3.connect(empty) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in PRAGMAS:
            conn.execute(f"PRAGMA {pragma}")
        for index in drop:
            conn.execute(f"DROP INDEX {index}")
        start = time.process_time()
        for sql, params in statements:
            conn.execute(sql, params)
        return (time.process_time() - start) / max(len(statements), 1)
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def replay_one(path: str, which: str, drops: int, count: int) -> None:
    """The subprocess of :func:`_replay_refs`: replay the first ``count`` statements of
    ``which`` (``plain`` / ``events``) stored in ``path`` (JSON), with the first ``drops``
    outbox indexes dropped."""
    stored = json.loads(Path(path).read_text())
    seq = [(sql, tuple(params)) for sql, params in stored[which][:count]]
    replay(Path(stored["empty"]), Path(path).parent, seq, INDEXES[:drops])


def _replay_refs(path: Path, which: str, drops: int, count: int) -> int:
    return _valgrind_refs(["--replay-one", str(path), which, str(drops), str(count)])


def engine_rows(
    empty: Path, tmp: Path, statements: list[Statement], rounds: int
) -> list[list[str]]:
    plain = [without_events(s) for s in statements]
    events = sum(s[0].count("'event'") for s in statements) / len(statements)
    contenders: dict[str, tuple[list[Statement], tuple[str, ...]]] = {
        "node write without its event rows": (plain, ()),
        "as written (event rows, every index)": (statements, ()),
        f"... without {INDEXES[0]}": (statements, INDEXES[:1]),
        f"... also without {INDEXES[1]}": (statements, INDEXES),
    }
    refs: dict[str, float] = {}
    if shutil.which("valgrind"):
        stored = tmp / "statements.json"
        stored.write_text(json.dumps({"empty": str(empty), "plain": plain, "events": statements}))
        for name, (seq, drop) in contenders.items():
            which = "plain" if seq is plain else "events"
            full = _replay_refs(stored, which, len(drop), len(seq))
            refs[name] = (full - _replay_refs(stored, which, len(drop), 0)) / len(seq)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seq, drop = contenders[name]
            times[name].append(replay(empty, tmp, seq, drop))
    base = statistics.median(times[names[0]])
    ref_base = refs.get(names[0], 0.0)
    rows = []
    for name in names:
        med = statistics.median(times[name])
        ir = refs.get(name)
        rows.append(
            [
                name,
                f"{med * 1e6:.1f}",
                f"{min(times[name]) * 1e6:.1f}-{max(times[name]) * 1e6:.1f}",
                f"{(med - base) * 1e6:+.1f} ({(med - base) / base:+.1%})",
                "n/a" if ir is None else f"{ir / 1000:.1f}k",
                "n/a" if ir is None else f"{(ir - ref_base) / ref_base:+.1%}",
            ]
        )
    rows.append([f"(event rows per write: {events:.2f})", "", "", "", "", ""])
    return rows


def build_us() -> float:
    """Python: the row of one ExecutionStarted, bound as the write binds it (us)."""
    e = ExecutionStarted("e" * 32, "linear", {"node_3": "default"})
    procs = _processors(sqlite3_dialect())["event"]

    def build() -> list[Any]:
        params: list[Any] = []
        for values in event_rows([e]):
            params.extend(values[k] if p is None else p(values[k]) for k, p in procs)
        return params

    n = 20_000
    return min(timeit.repeat(build, number=n, repeat=5)) / n * 1e6


def sqlite3_dialect() -> Any:
    from sqlalchemy.dialects import sqlite

    return sqlite.dialect()


def mark_us(tmp: Path, executions: int) -> float:
    """The publisher's batched marks (200 events per flush), CPU us per event."""
    app = sql_app(f"sqlite:///{tmp}/mark.db", audit=True)
    assert app.publisher is not None
    app.publisher._mark_every = 10**9  # keep every id: marked below, timed
    app.publisher._mark_after_s = 1e9
    workflow = linear_workflow(NODES)
    for k in range(executions):
        app.controller.run(workflow, make_input(1_000, k))
    publisher = app.publisher
    events, publisher._unmarked = publisher._unmarked, []
    start = time.process_time()
    for i in range(0, len(events), 200):
        with app.uow() as uow:
            uow.outbox.mark_published(events[i : i + 200])
            uow.commit()
    spent = time.process_time() - start
    with app.uow(read_only=True) as uow:
        assert uow.outbox.unpublished_count() == 0
    assert app.database is not None
    app.database.dispose()
    return spent / len(events) * 1e6


MODES = {
    "nothing watched": "bare",
    "metrics only (audit=False)": "metrics",
    "audit + outbox + metrics": "on",
}


def run_one(mode: str, executions: int, url: str | None = None) -> None:
    """The subprocess measured by :func:`instructions`: an App in ``mode`` (on ``url``,
    default a SQLite file of its own), 20 warm-up executions, then ``executions`` more."""
    from bench.checkpoint_overhead import WtbContender

    with tempfile.TemporaryDirectory(prefix="wtb-event-ir-") as d:
        contender = WtbContender(d, audit=mode == "on", url=url, metrics=mode != "bare")
        workflow = linear_workflow(NODES)
        for k in range(20 + executions):
            contender.app.controller.run(workflow, make_input(1_000, k))
        assert contender.app.database is not None
        contender.app.database.dispose()


def _refs(mode: str, executions: int, url: str | None = None) -> int:
    """User-space instructions of one ``run_one`` process."""
    return _valgrind_refs(["--run-one", mode, str(executions), *([url] if url else [])])


def _valgrind_refs(args: list[str]) -> int:
    """User-space instructions of this script run with ``args`` (valgrind's cachegrind)."""
    cmd = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        *args,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    found = re.search(r"I\s+refs:\s+([\d,]+)", out)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {out[-500:]}")
    return int(found.group(1).replace(",", ""))


def instructions(executions: int, url: str | None = None) -> list[list[str]]:
    """Instructions per node of each mode: (count with ``executions`` more runs - count
    without them) / nodes; the start-up of the process cancels out. On PostgreSQL
    (``url``) these are the client's only."""
    per_node = {}
    for label, mode in MODES.items():
        more, none = _refs(mode, executions, url), _refs(mode, 0, url)
        per_node[label] = (more - none) / (executions * NODES)
    base = per_node["nothing watched"]
    return [
        [label, f"{n / 1000:.1f}k", f"{(n - base) / 1000:+.1f}k", f"{(n - base) / base:+.1%}"]
        for label, n in per_node.items()
    ]


class _ServerShare:
    """A contender whose ``other_cpu`` (read by ``interleaved_rounds`` before and after each
    of its chunks) also sums the server CPU of its own chunks: the contenders share one
    engine (``database_for`` is per URL), so only a chunk's difference is its own."""

    def __init__(self, contender: Any) -> None:
        self._c = contender
        self.server = 0.0
        self._start: float | None = None

    def __call__(self, item: Any) -> None:
        self._c(item)

    def other_cpu(self) -> float:
        now = float(self._c.other_cpu())
        if self._start is None:
            self._start = now
        else:
            self.server += now - self._start
            self._start = None
        return now


def pg_cpu(url: str, executions: int, rounds: int) -> list[list[str]]:
    """PostgreSQL: CPU us per node of each mode, the client (this process) and the server
    (the contender's backends, from ``/proc``: clock ticks, so summed over every measured
    run) apart; the total is the median of interleaved rounds."""
    from bench.checkpoint_overhead import WtbContender
    from bench.common import interleaved_rounds

    with tempfile.TemporaryDirectory(prefix="wtb-event-pg-") as d:
        contenders = {
            label: WtbContender(d, audit=mode == "on", url=url, metrics=mode != "bare")
            for label, mode in MODES.items()
        }
        items = [(k, make_input(1_000, k)) for k in range(executions)]
        for c in contenders.values():  # warm-up, not counted
            for item in items[:20]:
                c(item)
        measured = {label: _ServerShare(c) for label, c in contenders.items()}
        cpu: dict[str, list[float]] = {}
        interleaved_rounds(dict(measured), items, rounds, 0, cpu)
        runs = len(items) // rounds * rounds
        server = {label: m.server / runs for label, m in measured.items()}
        for c in contenders.values():
            c.check_and_close()
    rows = []
    base = 0.0
    for label in contenders:
        total = statistics.median(cpu[label]) / NODES * 1e6
        srv = server[label] / NODES * 1e6
        base = base or total
        rows.append(
            [
                label,
                f"{total - srv:.0f}",
                f"{srv:.0f}",
                f"{total:.0f}",
                f"{total - base:+.0f} ({(total - base) / base:+.1%})",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executions", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--no-write", action="store_true", help="do not update bench/results.md")
    ap.add_argument(
        "--pg-url", help="also measure the three modes on this (throwaway) PostgreSQL database"
    )
    ap.add_argument("--pg-executions", type=int, default=100, help="under valgrind (slow)")
    ap.add_argument("--run-one", nargs="+", metavar="MODE N [URL]", help=argparse.SUPPRESS)
    ap.add_argument("--replay-one", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_one:
        run_one(args.run_one[0], int(args.run_one[1]), *args.run_one[2:3])
        return 0
    if args.replay_one:
        path, which, drops, count = args.replay_one
        replay_one(path, which, int(drops), int(count))
        return 0
    info = machine_info()
    ir_headers = ["mode (1 KB state)", "instructions/node", "extra", "extra, % of nothing watched"]
    ir = instructions(args.executions) if shutil.which("valgrind") else []
    if ir:
        print_table("0. instructions per node (user space, valgrind)", ir_headers, ir)
    pg_ir: list[list[str]] = []
    pg_rows: list[list[str]] = []
    pg_headers = ["mode (1 KB state)", "client", "server", "total", "extra, % of nothing"]
    if args.pg_url:
        if shutil.which("valgrind"):
            pg_ir = instructions(args.pg_executions, args.pg_url)
            print_table("0b. PostgreSQL: client instructions per node", ir_headers, pg_ir)
        pg_rows = pg_cpu(args.pg_url, 20 + 600, 6)
        print_table("0c. PostgreSQL: CPU us per node", pg_headers, pg_rows)
    with tempfile.TemporaryDirectory(prefix="wtb-event-cost-") as d:
        tmp = Path(d)
        empty, statements = capture(tmp, args.executions)
        engine = engine_rows(empty, tmp, statements, args.rounds)
        build = build_us()
        mark = mark_us(tmp, args.executions)
    headers = [
        "SQLite replay",
        "CPU us/write",
        "spread",
        "CPU vs without events",
        "instructions/write",
        "instructions vs without events",
    ]
    print_table("1. SQLite's own work per node write", headers, engine)
    python = [["build + bind one event row (Python, ExecutionStarted)", f"{build:.1f}"]]
    python.append(["mark published, per event (flushes of 200)", f"{mark:.1f}"])
    print_table("2-3. per event", ["part", "CPU us"], python)
    if not args.no_write:
        body = "\n\n".join(
            [
                f"Generated by `python bench/event_cost.py{' --pg-url ...' if args.pg_url else ''}`"
                f" ({len(statements)} node writes "
                f"of {args.executions} executions, {args.rounds} rounds).",
                machine_line(info),
                *(
                    [
                        "**0. Instructions per node** (valgrind `--tool=cachegrind`, user "
                        "space only: the kernel's share of the WAL writes is not in it; the "
                        "same figure on every run of the same code, unlike CPU time):",
                        markdown_table(ir_headers, ir),
                    ]
                    if ir
                    else ["(valgrind not installed: no instruction counts)"]
                ),
                *(
                    [
                        f"**0b. PostgreSQL, the client's instructions per node** (the same "
                        f"count, {args.pg_executions} executions; the server's work is not in "
                        "it):",
                        markdown_table(ir_headers, pg_ir),
                    ]
                    if pg_ir
                    else []
                ),
                *(
                    [
                        "**0c. PostgreSQL, CPU us per node** (600 executions in 6 interleaved "
                        "rounds; client: this process's CPU time; server: its backends' "
                        "(`/proc`, clock ticks, summed over the runs); total: the median "
                        "round of both):",
                        markdown_table(pg_headers, pg_rows),
                    ]
                    if pg_rows
                    else []
                ),
                "**1. SQLite's own work per node write** (the captured statements replayed "
                "with `sqlite3`: CPU time per write, median of the rounds; instructions per "
                "write under valgrind, user space, the same on every run):",
                markdown_table(headers, engine),
                "**2-3. Per event** (CPU time):",
                markdown_table(["part", "CPU us"], python),
            ]
        )
        print(f"wrote {update_results_section(SECTION, TITLE, body)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
