"""Checkpoint overhead of WTB on SQLite, compared with LangGraph's SqliteSaver.

Run from the repository root::

    python bench/checkpoint_overhead.py            # full run (~1-3 min), writes bench/results.md
    python bench/checkpoint_overhead.py --quick    # fewer executions (< 40 s)
    python bench/checkpoint_overhead.py --profile  # also cProfile WTB's per-node path

Measures (each scenario on a fresh SQLite file in a temporary directory):

1. per-node overhead of checkpointing a 10-node linear graph whose nodes each change one small
   key (a counter) of a state that also holds ~1 KB or ~100 KB of documents, against the same
   node functions called in a plain loop;
2. the same for LangGraph (SqliteSaver vs. no checkpointer) and the WTB/LangGraph ratio;
3. bytes added to the database per node checkpoint of a 100 KB state;
4. ``history()`` of an execution with 1,000 checkpoints and reading one checkpoint's state.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

if __package__ in (None, ""):  # run as a script: make `bench` and `wtb_domain` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event

from bench.common import (
    fmt_ms,
    interleaved_rounds,
    machine_info,
    machine_line,
    markdown_table,
    median_time,
    print_table,
    spread,
    sqlite_file_bytes,
    sqlite_row_bytes,
    update_results_section,
    verdict,
)
from wtb_domain import END, GraphBuilder, Workflow, sql_app
from wtb_domain.adapters.sql.uow import SqlUnitOfWork
from wtb_domain.controller import ExecutionController
from wtb_domain.events import MessageBus

SECTION = "checkpoint_overhead"
AUDIT_SECTION = "checkpoint_overhead_audit"
AUDIT_TITLE = "Audit trail + outbox: on vs off (per node)"
TITLE = "Checkpoint overhead (SQLite)"
NODES = 10
SIZES = {"1 KB": 1_000, "100 KB": 100_000}
BIG = "100 KB"
HISTORY_CHECKPOINTS = 1_000
RATIO_TARGET = 0.5
BYTES_TARGET = 0.05

# --------------------------------------------------------------------------- workload

_WORDS = [
    "checkpoint",
    "state",
    "node",
    "graph",
    "variant",
    "fork",
    "replay",
    "rollback",
    "history",
    "audit",
    "retrieval",
    "answer",
    "question",
    "context",
    "document",
    "passage",
    "score",
    "metric",
    "token",
    "latency",
    "batch",
    "workflow",
    "engine",
    "store",
]
_LINES = [" ".join(_WORDS[(i * 7 + j * 13) % len(_WORDS)] for j in range(12)) for i in range(997)]


def make_docs(size: int, salt: int) -> list[str]:
    """About ``size`` bytes of JSON text (a list of ~100-character strings), unique per salt."""
    docs: list[str] = []
    total = 2
    i = 0
    while total < size:
        line = f"{salt}:{i} {_LINES[(salt * 31 + i) % len(_LINES)]}"
        docs.append(line)
        total += len(line) + 4  # quotes, comma, space of json.dumps
        i += 1
    return docs


def make_input(size: int, salt: int) -> dict[str, Any]:
    # Counter and docs are unique per execution so no value is shared (deduplicated) between
    # executions: the byte counts are what one execution really costs.
    return {"counter": salt * 1_000_000, "docs": make_docs(size, salt)}


def make_node(i: int) -> Callable[[Mapping[str, Any], Any], dict[str, Any]]:
    def node(state: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
        return {"counter": state["counter"] + 1}

    node.__name__ = node.__qualname__ = f"node_{i}"
    return node


NODE_FNS = [make_node(i) for i in range(2 * NODES)]


def linear_workflow(n: int) -> Workflow:
    g = GraphBuilder(f"linear{n}")
    for i in range(n):
        g.add_node(f"n{i}", NODE_FNS[i])
        if i:
            g.add_edge(f"n{i - 1}", f"n{i}")
    g.add_edge(f"n{n - 1}", END)
    g.set_entry("n0")
    return g.build()


def cyclic_workflow(steps: int) -> Workflow:
    g = GraphBuilder("cycle", max_steps=steps + 10)
    g.add_node("loop", NODE_FNS[0])
    g.add_conditional_edges(
        "loop",
        lambda s: "again" if s["counter"] < steps else "done",
        {"again": "loop", "done": END},
    )
    g.set_entry("loop")
    return g.build()


def run_plain(inp: Mapping[str, Any], n: int = NODES) -> dict[str, Any]:
    """The baseline: the same node functions in a loop, merging each update into the state."""
    state = dict(inp)
    for fn in NODE_FNS[:n]:
        state = {**state, **fn(state, None)}
    return state


# --------------------------------------------------------------------------- LangGraph


class LGState(TypedDict):
    counter: int
    docs: list[str]


def lg_graph(n: int, saver: Any = None, cycle_steps: int | None = None) -> Any:
    from langgraph.graph import END as LG_END
    from langgraph.graph import START, StateGraph

    sg: Any = StateGraph(LGState)
    if cycle_steps is not None:
        fn = NODE_FNS[0]
        sg.add_node("loop", lambda s, fn=fn: fn(s, None))
        sg.add_edge(START, "loop")
        sg.add_conditional_edges(
            "loop",
            lambda s: "again" if s["counter"] < cycle_steps else "done",
            {"again": "loop", "done": LG_END},
        )
        return sg.compile(checkpointer=saver)
    for i in range(n):
        fn = NODE_FNS[i]
        sg.add_node(f"n{i}", lambda s, fn=fn: fn(s, None))
        sg.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    sg.add_edge(f"n{n - 1}", LG_END)
    return sg.compile(checkpointer=saver)


def lg_saver(path: Path, synchronous: str | None = None) -> tuple[Any, sqlite3.Connection]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(path, check_same_thread=False)
    if synchronous:
        conn.execute(f"PRAGMA synchronous={synchronous}")
    saver = SqliteSaver(conn)
    saver.setup()
    return saver, conn


@dataclass(frozen=True)
class LGMode:
    label: str
    durability: str | None  # None: LangGraph's default ("async")
    synchronous: str | None  # None: SQLite's default (FULL)
    info_only: bool


LG_DEFAULT = LGMode("LangGraph SqliteSaver (defaults)", None, None, False)
LG_SYNC = LGMode(
    "LangGraph SqliteSaver, durability=sync + synchronous=NORMAL", "sync", "NORMAL", True
)
WTB_OFF = "WTB sql_app(audit=False)"
WTB_ON = "WTB sql_app(audit=True)"
WTB_PG_OFF = "WTB PostgreSQL sql_app(audit=False)"
WTB_PG_ON = "WTB PostgreSQL sql_app(audit=True)"
WTB_BARE = "WTB sql_app(audit=False), no metrics"
WTB_PG_BARE = "WTB PostgreSQL sql_app(audit=False), no metrics"
AUDIT_TARGET = 0.10
"""Audit trail + outbox (audit=True) may add at most 10% to the checkpoint write per node."""
AUDIT_PAIRS = {"SQLite": (WTB_OFF, WTB_ON), "PostgreSQL": (WTB_PG_OFF, WTB_PG_ON)}
BARE = {"SQLite": WTB_BARE, "PostgreSQL": WTB_PG_BARE}
"""Nothing watched: no audit, no outbox, and no metrics (the checkpoint write alone)."""


def langgraph_available() -> bool:
    try:
        import langgraph.checkpoint.sqlite
        import langgraph.graph  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- scenarios


@dataclass
class Params:
    executions: int
    warmup: int
    rounds: int
    byte_executions: int
    history_repeats: int


FULL = Params(executions=200, warmup=20, rounds=10, byte_executions=40, history_repeats=20)
QUICK = Params(executions=40, warmup=5, rounds=5, byte_executions=10, history_repeats=10)


@dataclass
class Timing:
    label: str
    size: str
    samples: list[float]  # seconds per execution, one per round
    baseline: list[float]
    info_only: bool = False
    cpu_samples: list[float] = field(default_factory=list)  # CPU seconds of this process
    cpu_baseline: list[float] = field(default_factory=list)

    @property
    def cpu_per_node(self) -> float:
        """CPU time per node (mean per round minus the plain loop's): this process, plus the
        PostgreSQL backends serving it (whose /proc counters tick in 10 ms, hence the mean)."""
        return (statistics.fmean(self.cpu_samples) - statistics.fmean(self.cpu_baseline)) / NODES

    @property
    def per_exec(self) -> float:
        return statistics.median(self.samples)

    @property
    def base(self) -> float:
        return statistics.median(self.baseline)

    @property
    def per_node(self) -> float:
        return (self.per_exec - self.base) / NODES


@dataclass
class Results:
    info: dict[str, str]
    params: Params
    quick: bool
    timings: list[Timing] = field(default_factory=list)
    bytes_rows: list[dict[str, Any]] = field(default_factory=list)
    history: list[tuple[str, float, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def inputs_for(size: int, p: Params) -> list[tuple[int, dict[str, Any]]]:
    return [(k, make_input(size, k)) for k in range(p.warmup + p.executions)]


class WtbContender:
    """A fresh ``sql_app`` on its own SQLite file; calling it runs one execution."""

    def __init__(
        self, tmp: str, audit: bool, url: str | None = None, *, metrics: bool = True
    ) -> None:
        self.app = sql_app(url or f"sqlite:///{tmp}/wtb.db", audit=audit)
        if not metrics:  # the controller on the bare unit of work, a bus nobody listens to
            assert not audit and self.app.database is not None
            engine = self.app.database.engine

            def bare_uow(*, read_only: bool = False) -> SqlUnitOfWork:
                return SqlUnitOfWork(engine, record_events=False, read_only=read_only)

            self.app.controller = ExecutionController(bare_uow, MessageBus(), self.app.retry)
        self.workflow = linear_workflow(NODES)
        self.last: tuple[Any, dict[str, Any]] | None = None
        self.backends: set[int] = set()
        assert self.app.database is not None
        engine = self.app.database.engine
        if engine.dialect.name == "postgresql":
            engine.dispose()  # connections made from now on report their backend's pid
            event.listen(engine, "connect", self._backend_pid)
            self.other_cpu = self._backend_cpu

    def _backend_pid(self, dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        self.backends.add(int(cur.fetchone()[0]))
        cur.close()
        dbapi_conn.commit()

    def _backend_cpu(self) -> float:
        """CPU seconds (user + system) of this contender's PostgreSQL backends so far (they
        run on this machine); a backend that has exited counts no more."""
        total = 0
        for pid in self.backends:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return total / os.sysconf("SC_CLK_TCK")

    def __call__(self, item: tuple[int, dict[str, Any]]) -> None:
        self.last = (self.app.controller.run(self.workflow, item[1]), item[1])

    def check_and_close(self) -> None:
        assert self.last is not None
        execution, inp = self.last
        ctl = self.app.controller
        state = ctl.state(execution.id)
        assert execution.status.value == "completed", execution
        assert state["counter"] == inp["counter"] + NODES and state["docs"] == inp["docs"]
        assert len(ctl.history(execution.id)) == NODES + 1
        assert self.app.database is not None
        self.app.database.dispose()


class LangGraphContender:
    """The LangGraph graph, with a SqliteSaver on its own file (or none for the baseline)."""

    def __init__(self, tmp: str | None, mode: LGMode | None) -> None:
        self.conn: sqlite3.Connection | None = None
        saver = None
        if tmp is not None and mode is not None:
            saver, self.conn = lg_saver(Path(tmp) / "lg.db", mode.synchronous)
        self.graph = lg_graph(NODES, saver)
        self.kwargs = {"durability": mode.durability} if mode and mode.durability else {}
        self.last: tuple[Any, dict[str, Any]] | None = None

    def __call__(self, item: tuple[int, dict[str, Any]]) -> None:
        if self.conn is None:
            self.last = (self.graph.invoke(item[1]), item[1])
            return
        cfg = {"configurable": {"thread_id": f"t{item[0]}"}}
        self.last = (self.graph.invoke(item[1], cfg, **self.kwargs), item[1])

    def check_and_close(self) -> None:
        assert self.last is not None
        result, inp = self.last
        assert result["counter"] == inp["counter"] + NODES
        if self.conn is not None:
            self.conn.close()


def time_size(
    size_label: str, p: Params, with_langgraph: bool, pg_url: str | None = None
) -> list[Timing]:
    """Time every contender on the same inputs, interleaved round by round."""
    items = inputs_for(SIZES[size_label], p)
    with ExitStack() as stack:

        def tmpdir() -> str:
            return stack.enter_context(tempfile.TemporaryDirectory(prefix="wtb-bench-"))

        contenders: dict[str, Any] = {
            "plain": lambda item: run_plain(item[1]),
            WTB_OFF: WtbContender(tmpdir(), audit=False),
            WTB_ON: WtbContender(tmpdir(), audit=True),
            WTB_BARE: WtbContender(tmpdir(), audit=False, metrics=False),
        }
        if pg_url is not None:
            contenders[WTB_PG_OFF] = WtbContender(tmpdir(), audit=False, url=pg_url)
            contenders[WTB_PG_ON] = WtbContender(tmpdir(), audit=True, url=pg_url)
            contenders[WTB_PG_BARE] = WtbContender(tmpdir(), audit=False, url=pg_url, metrics=False)
        if with_langgraph:
            contenders["lg-plain"] = LangGraphContender(None, None)
            for mode in (LG_DEFAULT, LG_SYNC):
                contenders[mode.label] = LangGraphContender(tmpdir(), mode)
        cpu: dict[str, list[float]] = {}
        samples = interleaved_rounds(contenders, items, p.rounds, p.warmup, cpu)
        for c in contenders.values():
            if hasattr(c, "check_and_close"):
                c.check_and_close()
    labels = [WTB_OFF, WTB_ON, WTB_BARE]
    labels += [WTB_PG_OFF, WTB_PG_ON, WTB_PG_BARE] if pg_url is not None else []
    timings = [
        Timing(
            label,
            size_label,
            samples[label],
            samples["plain"],
            cpu_samples=cpu[label],
            cpu_baseline=cpu["plain"],
        )
        for label in labels
    ]
    if with_langgraph:
        timings += [
            Timing(m.label, size_label, samples[m.label], samples["lg-plain"], m.info_only)
            for m in (LG_DEFAULT, LG_SYNC)
        ]
    return timings


Growth = tuple[int, int, dict[str, float]]


def wtb_bytes(m: int, nodes: int) -> Growth:
    """(file growth, row-payload growth, details) of ``m`` executions of a ``nodes``-node graph."""
    wf = linear_workflow(nodes)
    with tempfile.TemporaryDirectory(prefix="wtb-bench-bytes-") as tmp:
        path = Path(tmp) / "wtb.db"
        app = sql_app(f"sqlite:///{path}", audit=False)
        assert app.database is not None
        app.database.dispose()
        file0, rows0 = sqlite_file_bytes(path), sqlite_row_bytes(path)
        for k in range(m):
            app.controller.run(wf, make_input(SIZES[BIG], k))
        app.database.dispose()
        return sqlite_file_bytes(path) - file0, sqlite_row_bytes(path) - rows0, {}


def lg_bytes(m: int, nodes: int) -> Growth:
    with tempfile.TemporaryDirectory(prefix="wtb-bench-lg-bytes-") as tmp:
        path = Path(tmp) / "lg.db"
        saver, conn = lg_saver(path)
        file0, rows0 = sqlite_file_bytes(path), sqlite_row_bytes(path)
        graph = lg_graph(nodes, saver)
        for k in range(m):
            graph.invoke(make_input(SIZES[BIG], k), {"configurable": {"thread_id": f"t{k}"}})
        conn.close()
        return sqlite_file_bytes(path) - file0, sqlite_row_bytes(path) - rows0, {}


def bytes_row(label: str, measure: Callable[[int, int], Growth], m: int) -> dict[str, Any]:
    f10, r10, details = measure(m, NODES)
    f20, r20, _ = measure(m, 2 * NODES)
    checkpoints = m * NODES
    return {
        "label": label,
        "snapshot": len(json.dumps(make_input(SIZES[BIG], 0))),
        "gross_file": f10 / checkpoints,
        "gross_rows": r10 / checkpoints,
        "marginal_file": (f20 - f10) / checkpoints,
        "marginal_rows": (r20 - r10) / checkpoints,
        "details": details,
    }


def wtb_history(p: Params) -> list[tuple[str, float, str]]:
    wf = cyclic_workflow(HISTORY_CHECKPOINTS)
    with tempfile.TemporaryDirectory(prefix="wtb-bench-hist-") as tmp:
        app = sql_app(f"sqlite:///{tmp}/wtb.db", audit=False)
        ctl = app.controller
        started = time.perf_counter()
        execution = ctl.run(wf, {"counter": 0, "docs": make_docs(SIZES["1 KB"], 0)})
        build = time.perf_counter() - started
        assert execution.status.value == "completed", execution
        history = ctl.history(execution.id)
        assert len(history) == HISTORY_CHECKPOINTS + 1
        last, middle = history[-1].id, history[len(history) // 2].id
        assert ctl.checkpoint(last).state["counter"] == HISTORY_CHECKPOINTS  # type: ignore[index]
        rows = [
            (
                f"build: run() of the cyclic graph ({HISTORY_CHECKPOINTS} node checkpoints)",
                build,
                f"{fmt_ms(build / HISTORY_CHECKPOINTS)} ms per node, single run",
            ),
            (
                f"controller.history(id) -> {len(history)} checkpoints",
                median_time(lambda: ctl.history(execution.id), p.history_repeats, 2),
                f"median of {p.history_repeats}; states not loaded",
            ),
            (
                "controller.checkpoint(id) with full state (last checkpoint)",
                median_time(lambda: ctl.checkpoint(last), p.history_repeats, 2),
                f"median of {p.history_repeats}",
            ),
            (
                "controller.checkpoint(id) with full state (middle checkpoint)",
                median_time(lambda: ctl.checkpoint(middle), p.history_repeats, 2),
                f"median of {p.history_repeats}",
            ),
        ]
        assert app.database is not None
        app.database.dispose()
    return rows


def lg_history(p: Params) -> list[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory(prefix="wtb-bench-lg-hist-") as tmp:
        saver, conn = lg_saver(Path(tmp) / "lg.db")
        graph = lg_graph(1, saver, cycle_steps=HISTORY_CHECKPOINTS)
        cfg: dict[str, Any] = {
            "configurable": {"thread_id": "h"},
            "recursion_limit": HISTORY_CHECKPOINTS + 10,
        }
        graph.invoke({"counter": 0, "docs": make_docs(SIZES["1 KB"], 0)}, cfg)
        listed = list(saver.list(cfg))
        reps = max(3, p.history_repeats // 4)
        rows = [
            (
                f"LangGraph saver.list(config) -> {len(listed)} checkpoints (context)",
                median_time(lambda: list(saver.list(cfg)), reps, 1),
                f"median of {reps}; deserialises every full checkpoint",
            ),
            (
                "LangGraph graph.get_state(config) (context)",
                median_time(lambda: graph.get_state(cfg), p.history_repeats, 2),
                f"median of {p.history_repeats}",
            ),
        ]
        conn.close()
    return rows


# --------------------------------------------------------------------------- profile


def profile_wtb(size_label: str, n: int, top: int = 18) -> None:
    """cProfile ``n`` WTB executions and print the top functions per node (µs per node)."""
    wf = linear_workflow(NODES)
    with tempfile.TemporaryDirectory(prefix="wtb-bench-prof-") as tmp:
        app = sql_app(f"sqlite:///{tmp}/wtb.db", audit=False)
        inputs = [make_input(SIZES[size_label], k) for k in range(n + 5)]
        for inp in inputs[:5]:
            app.controller.run(wf, inp)
        prof = cProfile.Profile()
        prof.enable()
        for inp in inputs[5:]:
            app.controller.run(wf, inp)
        prof.disable()
        assert app.database is not None
        app.database.dispose()
    stats: Any = pstats.Stats(prof)
    per_node = n * NODES
    total = stats.total_tt
    print(f"\ncProfile, WTB {size_label}: {total / per_node * 1e6:.0f} µs per node (profiled)")
    entries = stats.stats.items()
    for key, title in ((3, "cumulative"), (2, "own time")):
        print(f"  top by {title}:  calls/node  own µs/node  cum µs/node  function")
        ranked = sorted(entries, key=lambda kv: kv[1][key], reverse=True)[:top]
        for (file, line, func), (_cc, nc, tt, ct, _callers) in ranked:
            short = "/".join(Path(file).parts[-2:]) if file != "~" else ""
            print(
                f"  {nc / per_node:10.2f}  {tt / per_node * 1e6:11.1f}  {ct / per_node * 1e6:11.1f}"
                f"  {short}:{line}({func})"
            )


# --------------------------------------------------------------------------- report


def timing_tables(res: Results) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    h1 = [
        "state",
        "system",
        "ms / execution (median)",
        "round spread (ms)",
        "baseline ms / execution",
        "overhead ms / node",
    ]
    rows1 = [
        [
            t.size,
            t.label + (" [info]" if t.info_only else ""),
            fmt_ms(t.per_exec),
            spread(t.samples),
            fmt_ms(t.base),
            fmt_ms(t.per_node),
        ]
        for t in res.timings
    ]

    def find(size: str, prefix: str) -> Timing | None:
        return next((t for t in res.timings if t.size == size and t.label == prefix), None)

    h2 = [
        "state",
        "WTB ms/node (audit=False)",
        "LangGraph ms/node (defaults)",
        f"ratio (target <= {RATIO_TARGET})",
        "verdict",
        "ratio, WTB audit=True",
        "ratio vs LangGraph sync+NORMAL [info]",
    ]
    rows2 = []
    for size in SIZES:
        wtb = find(size, WTB_OFF)
        wtb_a = find(size, WTB_ON)
        lg = find(size, LG_DEFAULT.label)
        lg_s = find(size, LG_SYNC.label)
        if wtb is None or lg is None:
            continue
        ratio = wtb.per_node / lg.per_node
        rows2.append(
            [
                size,
                fmt_ms(wtb.per_node),
                fmt_ms(lg.per_node),
                f"{ratio:.2f}",
                verdict(ratio <= RATIO_TARGET),
                f"{wtb_a.per_node / lg.per_node:.2f}" if wtb_a else "n/a",
                f"{wtb.per_node / lg_s.per_node:.2f}" if lg_s else "n/a",
            ]
        )
    return h1, rows1, h2, rows2


def audit_table(res: Results) -> tuple[list[str], list[list[str]]]:
    """What watching costs per node, in CPU time: the checkpoint write with nothing watched
    (no audit, no outbox, no metrics), with metrics only, and with everything on; extras as
    a share of the write with nothing watched (wall-clock figures for context: a loaded
    machine inflates them most)."""
    headers = [
        "store",
        "state",
        "CPU ms/node, nothing watched",
        "metrics only",
        "audit+outbox+metrics",
        "extra of audit+outbox (over metrics only)",
        f"extra of all three, % of the write (target < {AUDIT_TARGET:.0%})",
        "verdict",
        "wall ms/node nothing / all",
    ]
    rows = []
    for store, (off_label, on_label) in AUDIT_PAIRS.items():
        for size in SIZES:

            def find(label: str, size: str = size) -> Timing | None:
                return next((t for t in res.timings if t.size == size and t.label == label), None)

            off, on, bare = find(off_label), find(on_label), find(BARE[store])
            if off is None or on is None or bare is None:
                continue
            base = bare.cpu_per_node

            def pct(extra: float, base: float = base) -> str:
                return f"{extra / base:.1%}" if base > 0 else "n/a"

            audit_extra = on.cpu_per_node - off.cpu_per_node
            all_extra = on.cpu_per_node - base
            rows.append(
                [
                    store,
                    size,
                    fmt_ms(base),
                    fmt_ms(off.cpu_per_node),
                    fmt_ms(on.cpu_per_node),
                    f"{fmt_ms(audit_extra)} ({pct(audit_extra)})",
                    f"{fmt_ms(all_extra)} ({pct(all_extra)})",
                    verdict(base > 0 and all_extra / base < AUDIT_TARGET),
                    f"{fmt_ms(bare.per_node)} / {fmt_ms(on.per_node)}",
                ]
            )
    return headers, rows


def bytes_table(res: Results) -> tuple[list[str], list[list[str]]]:
    headers = [
        "system",
        "full snapshot",
        "gross / node cp, file",
        "gross / node cp, rows",
        "marginal / node cp, file",
        "marginal / node cp, rows",
        f"marginal file, % of snapshot (target <= {BYTES_TARGET:.0%})",
        "gross file, % of snapshot",
    ]
    rows = []
    for b in res.bytes_rows:
        snap = b["snapshot"]
        m_pct = b["marginal_file"] / snap
        g_pct = b["gross_file"] / snap
        is_wtb = b["label"].startswith("WTB")
        rows.append(
            [
                b["label"],
                f"{snap:,} B",
                f"{b['gross_file']:,.0f} B",
                f"{b['gross_rows']:,.0f} B",
                f"{b['marginal_file']:,.0f} B",
                f"{b['marginal_rows']:,.0f} B",
                f"{m_pct:.1%}" + (f" {verdict(m_pct <= BYTES_TARGET)}" if is_wtb else ""),
                f"{g_pct:.1%}" + (f" {verdict(g_pct <= BYTES_TARGET)}" if is_wtb else ""),
            ]
        )
    return headers, rows


def history_table(res: Results) -> tuple[list[str], list[list[str]]]:
    return ["operation", "ms", "note"], [[op, fmt_ms(t, 2), note] for op, t, note in res.history]


def markdown(res: Results) -> str:
    p = res.params
    h1, r1, h2, r2 = timing_tables(res)
    hb, rb = bytes_table(res)
    hh, rh = history_table(res)
    mode = "`--quick`" if res.quick else "full run"
    parts = [
        f"Generated by `python bench/checkpoint_overhead.py{' --quick' if res.quick else ''}` "
        f"({mode}).",
        "",
        f"Machine: {machine_line(res.info)}.",
        "",
        "**How measured.** Every scenario uses a fresh SQLite file in a temporary directory. "
        f"The workload is a {NODES}-node linear graph; each node returns one changed key "
        '(`counter + 1`) while the state also holds `"docs"`, a list of ~100-character strings '
        "of about 1 KB or 100 KB of JSON (`len(json.dumps(state))`: "
        + ", ".join(f"{k}: {len(json.dumps(make_input(v, 0))):,} B" for k, v in SIZES.items())
        + "). Inputs are unique per execution (counter and docs), so "
        "nothing is deduplicated across executions. Timings: "
        f"{p.warmup} warm-up executions, then {p.executions} executions in {p.rounds} rounds; "
        "the figure is the median of the rounds' mean time per execution (the spread column is "
        "min-max over rounds). Baseline for WTB: the same node functions in a plain Python loop "
        "merging each update into the dict; WTB: `sql_app(url, audit=...).controller.run(...)` "
        "(SQLite WAL, `synchronous=NORMAL`, one transaction per node). LangGraph: a `StateGraph` "
        "with the same node functions, `SqliteSaver(sqlite3.connect(path, "
        "check_same_thread=False))`, a fresh `thread_id` per execution, baseline = the same graph "
        "compiled without a checkpointer. LangGraph's defaults are `durability='async'` "
        "(checkpoints written by a background thread while the next step runs) and SQLite's "
        "`synchronous=FULL`; the [info] row (`durability='sync'`, `synchronous=NORMAL`) matches "
        "WTB's write-before-next-node behaviour and durability setting. "
        f"Overhead per node = (median with checkpointing - median baseline) / {NODES}.",
        "",
        "### Per-node checkpoint overhead",
        "",
        markdown_table(h1, r1),
        "",
        markdown_table(h2, r2),
        "",
        "### Audit trail + outbox: on vs off",
        "",
        "See the section *Audit trail + outbox: on vs off (per node)* below "
        f"(`<!-- {AUDIT_SECTION}:start -->`, written by every run of this script, "
        "`--audit-only` included).",
        "",
        f"### Bytes per node checkpoint ({BIG} state, one key changed per node)",
        "",
        f"{p.byte_executions} executions of the {NODES}-node graph and, separately, of a "
        f"{2 * NODES}-node graph, each on a fresh database. *file*: growth of db + wal after "
        "`PRAGMA wal_checkpoint(TRUNCATE)` (pages, indexes, free pages included); *rows*: growth "
        "of the sum of `length()` of every column of every row (payload only). *gross* = growth "
        f"of the {NODES}-node run / its {p.byte_executions * NODES} node checkpoints, so it also "
        "carries each execution's one-off cost of storing its input; *marginal* = (growth of "
        f"the {2 * NODES}-node run - growth of the {NODES}-node run) / "
        f"{p.byte_executions * NODES}, the cost of one more node checkpoint. Full snapshot = "
        "`len(json.dumps(state))`.",
        "",
        markdown_table(hb, rb),
        "",
        f"### History of one execution with {HISTORY_CHECKPOINTS} node checkpoints",
        "",
        f"A one-node graph looping on itself until `counter` reaches {HISTORY_CHECKPOINTS} "
        "(1 KB state), then `controller.history(id)` and `controller.checkpoint(id)`. LangGraph "
        "rows are the same loop on SqliteSaver, for context only (not equivalent operations).",
        "",
        markdown_table(hh, rh),
    ]
    if res.notes:
        parts += ["", "### Notes", "", *[f"- {n}" for n in res.notes]]
    return "\n".join(parts)


def audit_markdown(res: Results) -> str:
    """The on/off section: the CPU-time table and how it was measured."""
    quick = " --quick" if res.quick else ""
    only = " --audit-only" if not res.bytes_rows else ""
    pg = " --pg-url ..." if any(t.label == WTB_PG_ON for t in res.timings) else ""
    p = res.params
    return "\n".join(
        [
            f"Generated by `python bench/checkpoint_overhead.py{quick}{only}{pg}`.",
            "",
            f"Machine: {machine_line(res.info)}.",
            "",
            "`audit=True` (the default) stores a node's `NodeCompleted` as its checkpoint "
            "(no event row, migration 0012) and an execution's other events as one row each "
            "(outbox entry and audit entry in one) in the write they describe, and marks "
            "published events in batches (at most once per second or 200 events per process; "
            "node events: one mark per execution). *Nothing watched*: `audit=False` and the "
            "controller on the bare unit of work with a bus nobody listens to (no Prometheus "
            "metrics: no checkpoint-write timer, no node histogram, no counters). "
            f"The {NODES}-node linear graph of the section "
            f"*Checkpoint overhead*, {p.warmup} warm-up executions, then {p.executions} in "
            f"{p.rounds} rounds; rows of one store ran interleaved round by round on the same "
            "inputs. Judged by CPU time (mean per round, minus the plain loop's): this "
            "process's `time.process_time()`, plus, for PostgreSQL, the CPU of the server "
            "backends serving the contender (`/proc/<pid>/stat`, 10 ms ticks). Wall-clock "
            "figures are for context only.",
            "",
            markdown_table(*audit_table(res)),
        ]
    )


def run(args: argparse.Namespace) -> Results:
    p = QUICK if args.quick else FULL
    res = Results(
        machine_info(
            [
                "sqlalchemy",
                "langgraph",
                "langgraph-checkpoint",
                "langgraph-checkpoint-sqlite",
            ]
        ),
        p,
        args.quick,
    )
    has_lg = langgraph_available() and not args.audit_only
    if args.audit_only:
        res.notes.append("`--audit-only`: timings only (no LangGraph, bytes or history).")
    elif not has_lg:
        res.notes.append("LangGraph is not installed (`pip install -e .[bench]`): no comparison.")
    t0 = time.perf_counter()
    for size in SIZES:
        res.timings += time_size(size, p, has_lg, args.pg_url)
        print(f"  [{time.perf_counter() - t0:5.1f}s] {size}: timings done")
    if args.audit_only:
        return res
    wtb_row = bytes_row(WTB_OFF, wtb_bytes, p.byte_executions)
    res.bytes_rows.append(wtb_row)
    if has_lg:
        res.bytes_rows.append(bytes_row(LG_DEFAULT.label, lg_bytes, p.byte_executions))
    print(f"  [{time.perf_counter() - t0:5.1f}s] bytes done")
    res.history = wtb_history(p)
    if has_lg:
        res.history += lg_history(p)
    print(f"  [{time.perf_counter() - t0:5.1f}s] history done")
    if hasattr(os, "getloadavg"):
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        res.notes.append(
            f"Load average (1/5/15 min) at the end: {load} on {os.cpu_count()} CPUs; the "
            "machine may be shared, so compare rows of one run (they are interleaved) rather "
            "than runs."
        )
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="fewer executions (< 40 s)")
    ap.add_argument("--profile", action="store_true", help="also cProfile WTB per node")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/results.md")
    ap.add_argument(
        "--pg-url", help="also time WTB with audit+outbox on/off on this PostgreSQL database"
    )
    ap.add_argument(
        "--audit-only", action="store_true", help="only the WTB timings (audit+outbox on/off)"
    )
    args = ap.parse_args(argv)
    res = run(args)
    print(f"\nMachine: {machine_line(res.info)}")
    h1, r1, h2, r2 = timing_tables(res)
    print_table(f"Per-node checkpoint overhead ({NODES}-node linear graph)", h1, r1)
    print_table("WTB / LangGraph per-node overhead", h2, r2)
    print_table("Audit trail + outbox: on vs off", *audit_table(res))
    if not args.no_write:
        path = update_results_section(AUDIT_SECTION, AUDIT_TITLE, audit_markdown(res))
        print(f"\nwrote the on/off section of {path}")
    if args.audit_only:
        return 0
    print_table(f"Bytes per node checkpoint ({BIG} state)", *bytes_table(res))
    print_table(f"History of {HISTORY_CHECKPOINTS} checkpoints", *history_table(res))
    if args.profile:
        for size in SIZES:
            profile_wtb(size, 50 if args.quick else 200)
    if not args.no_write:
        path = update_results_section(SECTION, TITLE, markdown(res))
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
