"""The LangGraph adapter: per-node cost of an adapted graph in WTB vs LangGraph + SqliteSaver,
and the 3 x 20 agent demo batch with and without prefix sharing.

Run from the repository root::

    python bench/langgraph_adapter.py           # ~1 min, writes its section of bench/results.md
    python bench/langgraph_adapter.py --quick   # fewer executions

1. Two LangGraph graphs, each built once with ``StateGraph`` and run three ways on the same
   inputs, interleaved round by round: LangGraph compiled without a checkpointer (the
   baseline), LangGraph with ``SqliteSaver`` (its defaults), and ``from_langgraph(graph)`` run
   by WTB on SQLite (``sql_app(url, audit=False)`` and the default ``audit=True``). Overhead
   per node = (ms per execution - baseline ms per execution) / nodes per execution; the ratio
   is WTB's overhead over LangGraph's (target <= 0.5).
   - *linear10*: 10 nodes, each returns ``counter + 1`` and appends one line to an
     ``Annotated[list, operator.add]`` log; the state also holds ~1 KB of documents.
   - *agent*: the shipped demo agent (prepare -> agent -> tools -> agent -> finish: 5 nodes,
     a recorded chat model, LangGraph's ToolNode, ``add_messages``).
2. The agent demo batch (3 prompt variants x 20 questions) through ``BatchService`` on a
   SQLite file, with and without prefix sharing: node runs and wall time.
"""

from __future__ import annotations

import argparse
import operator
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    fmt_ms,
    interleaved_rounds,
    machine_info,
    machine_line,
    markdown_table,
    print_table,
    spread,
    update_results_section,
    verdict,
)
from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import load_spec

SECTION = "langgraph_adapter"
TITLE = "LangGraph adapter: adapted graphs vs LangGraph + SqliteSaver, agent batch"
RATIO_TARGET = 0.5
LINEAR_NODES = 10
AGENT_NODES = 5
DOCS = ["lorem ipsum dolor sit amet " * 4] * 9  # ~1 KB of JSON


class Linear(TypedDict, total=False):
    counter: int
    log: Annotated[list[str], operator.add]
    docs: list[str]


def _step(i: int) -> Callable[[Linear], dict[str, Any]]:
    def step(state: Linear) -> dict[str, Any]:
        return {"counter": state["counter"] + 1, "log": [f"n{i}"]}

    step.__name__ = step.__qualname__ = f"step{i}"
    return step


def linear_graph() -> Any:
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(Linear)
    for i in range(LINEAR_NODES):
        g.add_node(f"n{i}", _step(i))
        g.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    g.add_edge(f"n{LINEAR_NODES - 1}", END)
    return g


def agent_graph() -> Any:
    from wtb_domain.demo.agent import build_graph

    return build_graph()


def linear_inputs(n: int) -> list[dict[str, Any]]:
    return [{"counter": i, "log": [], "docs": [f"{i}:{d}" for d in DOCS]} for i in range(n)]


def agent_inputs(n: int) -> list[dict[str, Any]]:
    from wtb_domain.demo.data import load_dataset

    questions = [c["input"]["question"] for c in load_dataset()[:20]]
    return [{"question": questions[i % len(questions)]} for i in range(n)]


class Contenders:
    """Every way of running one graph, each on its own SQLite file."""

    def __init__(self, graph: Any, workflow: Any, tmp: Path) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.plain = graph.compile()
        self.conn = sqlite3.connect(tmp / "lg.db", check_same_thread=False)
        saver = SqliteSaver(self.conn)
        saver.setup()
        self.saved = graph.compile(checkpointer=saver)
        self.apps = {
            audit: sql_app(f"sqlite:///{tmp / f'wtb-{audit}.db'}", audit=audit)
            for audit in (False, True)
        }
        self.workflow = workflow
        self.counter = 0
        self.failures = 0

    def fns(self) -> dict[str, Callable[[Any], object]]:
        def lg_plain(item: dict[str, Any]) -> object:
            return self.plain.invoke(item)

        def lg_saver(item: dict[str, Any]) -> object:
            self.counter += 1
            return self.saved.invoke(item, {"configurable": {"thread_id": f"t{self.counter}"}})

        def wtb(audit: bool) -> Callable[[Any], object]:
            def run(item: dict[str, Any]) -> object:
                execution = self.apps[audit].controller.run(self.workflow, item)
                if execution.status.value != "completed":
                    self.failures += 1
                return execution

            return run

        return {
            "LangGraph, no checkpointer (baseline)": lg_plain,
            "LangGraph + SqliteSaver (defaults)": lg_saver,
            "WTB from_langgraph, sql_app(audit=False)": wtb(False),
            "WTB from_langgraph, sql_app(audit=True)": wtb(True),
        }

    def close(self) -> None:
        self.conn.close()
        for app in self.apps.values():
            assert app.database is not None
            app.database.dispose()


def per_node(label: str, graph: Any, items: list[Any], nodes: int, rounds: int) -> list[Any]:
    from wtb_domain.langgraph import from_langgraph

    with tempfile.TemporaryDirectory(prefix="wtb-bench-lg-") as tmp:
        c = Contenders(graph, from_langgraph(graph, name=label), Path(tmp))
        try:
            samples = interleaved_rounds(c.fns(), items, rounds, warmup=3)
        finally:
            c.close()
        if c.failures:
            raise SystemExit(f"{label}: {c.failures} WTB executions did not complete")
    medians = {name: statistics.median(s) for name, s in samples.items()}
    base = medians["LangGraph, no checkpointer (baseline)"]
    rows = []
    for name, s in samples.items():
        overhead = (medians[name] - base) / nodes
        rows.append([label, name, fmt_ms(medians[name]), spread(s), fmt_ms(overhead)])
    lg = (medians["LangGraph + SqliteSaver (defaults)"] - base) / nodes
    ratios = []
    for audit in (False, True):
        wtb = (medians[f"WTB from_langgraph, sql_app(audit={audit})"] - base) / nodes
        ratios.append((audit, wtb, lg, wtb / lg if lg > 0 else float("inf")))
    return [rows, ratios]


def _batch_once(service: BatchService, sharing: bool, batch_id: str) -> tuple[int, float]:
    from wtb_domain.demo.agent import BATCH_PATH

    spec, base = load_spec(BATCH_PATH)
    spec = spec.model_copy(update={"batch_id": batch_id, "prefix_sharing": sharing})
    started = time.perf_counter()
    prepared = service.prepare(spec, base)
    runs = sum(
        service.run_group(prepared.payload, g.case_id, list(g.leaf_keys)).node_executions
        for g in prepared.groups
    )
    summary = service.finish(batch_id, node_executions=runs)
    wall = time.perf_counter() - started
    if summary.done != 60 or summary.failed:
        raise SystemExit(f"agent batch: {summary.done} of 60 done, {summary.failed} failed")
    return runs, wall


def agent_batches(tmp: Path, repeats: int) -> dict[bool, tuple[int, list[float], dict[str, float]]]:
    """Each mode on its own SQLite file: one untimed batch (migrations, imports, corpus index),
    then ``repeats`` timed batches, the two modes alternating."""
    services = {
        s: BatchService(sql_app(f"sqlite:///{tmp / f'batch-{s}.db'}")) for s in (True, False)
    }
    for sharing, service in services.items():
        _batch_once(service, sharing, f"warm-{sharing}")
    out: dict[bool, tuple[int, list[float], dict[str, float]]] = {}
    walls: dict[bool, list[float]] = {True: [], False: []}
    runs: dict[bool, int] = {}
    for r in range(repeats):
        for sharing in (True, False) if r % 2 == 0 else (False, True):
            runs[sharing], wall = _batch_once(services[sharing], sharing, f"t{r}-{sharing}")
            walls[sharing].append(wall)
    for sharing, service in services.items():
        means = {s.name: s.mean_score for s in service.matrix(f"t0-{sharing}").stats}
        out[sharing] = (runs[sharing], walls[sharing], means)
        assert service.app.database is not None
        service.app.database.dispose()
    return out


def spread_s(samples: list[float]) -> str:
    return f"{min(samples):.2f}-{max(samples):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="Do not touch results.md.")
    args = parser.parse_args()
    n, rounds = (23, 4) if args.quick else (63, 6)
    info = machine_info(["langgraph", "langgraph-checkpoint-sqlite", "langchain-core"])

    rows: list[list[Any]] = []
    ratio_rows: list[list[Any]] = []
    for label, graph, items, nodes in (
        ("linear10", linear_graph(), linear_inputs(n), LINEAR_NODES),
        ("agent", agent_graph(), agent_inputs(n), AGENT_NODES),
    ):
        timing, ratios = per_node(label, graph, items, nodes, rounds)
        rows += timing
        for audit, wtb, lg, ratio in ratios:
            ratio_rows.append(
                [
                    label,
                    f"audit={audit}",
                    fmt_ms(wtb),
                    fmt_ms(lg),
                    f"{ratio:.2f}",
                    verdict(ratio <= RATIO_TARGET),
                ]
            )
    headers = ["graph", "system", "ms / execution (median)", "round spread (ms)", "ms / node"]
    ratio_headers = [
        "graph",
        "WTB",
        "WTB overhead ms/node",
        "LangGraph+SqliteSaver overhead ms/node",
        f"ratio (target <= {RATIO_TARGET})",
        "verdict",
    ]
    print_table("Per-node overhead over LangGraph without a checkpointer", headers, rows)
    print_table("WTB / LangGraph overhead", ratio_headers, ratio_rows)

    batch_rows = []
    repeats = 2 if args.quick else 4
    with tempfile.TemporaryDirectory(prefix="wtb-bench-agent-") as tmp:
        results = agent_batches(Path(tmp), repeats)
    for sharing, (runs, walls, means) in results.items():
        scores = ", ".join(f"{k.split('=')[1]} {v:.3f}" for k, v in sorted(means.items()))
        label = f"prefix sharing {'on' if sharing else 'off'}"
        batch_rows.append([label, runs, f"{statistics.median(walls):.2f}", spread_s(walls), scores])
    batch_headers = [
        "agent batch 3 x 20",
        "node runs",
        "wall s (median)",
        "spread s",
        "mean score per prompt",
    ]
    print_table("Agent demo batch (SQLite, in-process BatchService)", batch_headers, batch_rows)
    if args.no_write:
        return
    body = "\n\n".join(
        [
            f"Generated by `python bench/langgraph_adapter.py{' --quick' if args.quick else ''}`.",
            f"Machine: {machine_line(info)}.",
            "**How measured.** Each graph is one `StateGraph`, run on the same inputs by every "
            f"contender, interleaved round by round ({n - 3} executions in {rounds} rounds after "
            "3 warm-up; median of the rounds' mean ms per execution, spread = min-max of the "
            "rounds). Baseline: LangGraph compiled without a checkpointer. *ms / node* = "
            "(ms per execution - baseline) / nodes per execution (linear10: 10, agent: 5), i.e. "
            "what persisting every step costs on top of running the graph on LangGraph. WTB runs "
            "`from_langgraph(graph)` through `controller.run` on SQLite (WAL, synchronous=NORMAL, "
            "a transaction per node, written before the next node); its figure includes the "
            "adapter (messages decoded for each node and encoded back, reducers applied). "
            "LangGraph + SqliteSaver uses LangGraph's defaults (`durability='async'`). The agent "
            "graph is the shipped demo agent (recorded chat model, ToolNode over the corpus).",
            markdown_table(headers, rows),
            markdown_table(ratio_headers, ratio_rows),
            "**Agent batch.** `wtb_domain/demo/agent_batch.yaml` (3 prompt variants of the "
            "`agent` node x 20 questions) through `BatchService` (register, one group per case, "
            "finish) on its own SQLite file with the default audit trail; after one untimed "
            f"batch per mode, {repeats} timed batches per mode, alternating; wall time from "
            "registration to the finished batch. Node runs: with sharing, `prepare` runs once "
            "per case (the variants fork after it); without, once per prompt per case. The "
            "recorded-LLM replay mode (issue #12 item 4) is not in this branch: the model "
            "replies come from the shipped recording for both rows.",
            markdown_table(batch_headers, batch_rows),
            "- Load average (1/5/15 min) at the end: "
            + " ".join(f"{x:.2f}" for x in __import__("os").getloadavg())
            + " on 2 CPUs shared with other work; compare rows of one run.",
        ]
    )
    print(f"wrote {update_results_section(SECTION, TITLE, body)}")


if __name__ == "__main__":
    main()
