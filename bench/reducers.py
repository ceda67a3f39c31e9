"""Bytes per checkpoint of a 200-message conversation: "append" + delta blobs vs full snapshots.

Run from the repository root::

    python bench/reducers.py            # writes its section of bench/results.md
    python bench/reducers.py --no-write

Each node appends one ~200-byte message to ``messages``; 200 nodes (a two-node cycle, user and
bot) make one conversation; 3 conversations with unique text run on a fresh SQLite file per
row. Rows:

- WTB, ``"append"`` reducer (node returns the new message) with delta blobs (the default);
- WTB, no reducer: the node returns the whole list (``replace``) — an extension, so also
  stored as deltas;
- WTB with delta blobs switched off (``MAX_DELTA_CHAIN = 0``: every changed list is stored in
  full, as WTB stored values before delta blobs);
- LangGraph ``SqliteSaver`` (defaults), ``Annotated[list, operator.add]`` channel, if installed.

Bytes: growth of the row payload (``length()`` of every column of every row) and of the
database file, divided by the number of node checkpoints; plus the time to read the final
checkpoint's state back (WTB: ``controller.state``; LangGraph: ``graph.get_state``).
"""

from __future__ import annotations

import argparse
import operator
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypedDict

if __package__ in (None, ""):  # run as a script: make `bench` and `wtb_domain` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    machine_info,
    machine_line,
    markdown_table,
    print_table,
    sqlite_file_bytes,
    sqlite_row_bytes,
    update_results_section,
)
from wtb_domain import END, GraphBuilder, Workflow, sql_app
from wtb_domain import state as state_codec

SECTION = "reducers"
TITLE = "Reducers: bytes per checkpoint of a 200-message conversation"
MESSAGES = 200
CONVERSATIONS = 3


def message(tag: str, n: int) -> dict[str, Any]:
    role = "user" if n % 2 == 0 else "assistant"
    text = f"{tag} message {n:04d} " + "lorem ipsum dolor sit amet " * 6
    return {"role": role, "content": text[:170], "n": n}


def append_node(state: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
    return {"messages": [message(state["tag"], len(state.get("messages", [])))]}


def replace_node(state: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
    old = list(state.get("messages", []))
    return {"messages": [*old, message(state["tag"], len(old))]}


def more(state: Mapping[str, Any]) -> str:
    return "more" if len(state.get("messages", [])) < MESSAGES else "stop"


def conversation(node: Callable[..., Any], reducers: dict[str, str]) -> Workflow:
    g = GraphBuilder("conversation", max_steps=MESSAGES + 5, reducers=reducers)
    g.add_node("user", node).add_node("bot", node)
    g.add_edge("user", "bot")
    g.add_conditional_edges("bot", more, {"more": "user", "stop": END})
    g.set_entry("user")
    return g.build()


def measure_wtb(label: str, wf: Workflow, deltas: bool) -> dict[str, Any]:
    saved = state_codec.MAX_DELTA_CHAIN
    if not deltas:
        state_codec.MAX_DELTA_CHAIN = 0
    try:
        with tempfile.TemporaryDirectory(prefix="wtb-bench-reducers-") as tmp:
            path = Path(tmp) / "wtb.db"
            app = sql_app(f"sqlite:///{path}", audit=False)
            assert app.database is not None
            app.database.dispose()
            file0, rows0 = sqlite_file_bytes(path), sqlite_row_bytes(path)
            started = time.perf_counter()
            ids = []
            for k in range(CONVERSATIONS):
                ex = app.controller.run(wf, {"tag": f"{label[:3]}-{k}-{os.getpid()}"})
                assert ex.status.value == "completed", ex.error_message
                ids.append(ex.id)
            run_s = time.perf_counter() - started
            t0 = time.perf_counter()
            final = app.controller.state(ids[-1])
            read_ms = (time.perf_counter() - t0) * 1000
            assert len(final["messages"]) == MESSAGES
            app.database.dispose()
            files, rows = sqlite_file_bytes(path) - file0, sqlite_row_bytes(path) - rows0
    finally:
        state_codec.MAX_DELTA_CHAIN = saved
    checkpoints = CONVERSATIONS * MESSAGES
    return row(label, rows / checkpoints, files / checkpoints, run_s, read_ms)


class LGState(TypedDict):
    tag: str
    messages: Annotated[list[dict[str, Any]], operator.add]


def measure_langgraph() -> dict[str, Any] | None:
    try:
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import END as LG_END
        from langgraph.graph import START, StateGraph
    except ImportError:
        return None
    with tempfile.TemporaryDirectory(prefix="wtb-bench-reducers-lg-") as tmp:
        path = Path(tmp) / "lg.db"
        conn = sqlite3.connect(path, check_same_thread=False)
        saver = SqliteSaver(conn)
        saver.setup()
        sg: Any = StateGraph(LGState)
        sg.add_node("user", lambda s: append_node(s, None))
        sg.add_node("bot", lambda s: append_node(s, None))
        sg.add_edge(START, "user")
        sg.add_edge("user", "bot")
        sg.add_conditional_edges("bot", more, {"more": "user", "stop": LG_END})
        graph = sg.compile(checkpointer=saver)
        file0, rows0 = sqlite_file_bytes(path), sqlite_row_bytes(path)
        started = time.perf_counter()
        config: dict[str, Any] = {}
        for k in range(CONVERSATIONS):
            config = {"configurable": {"thread_id": f"t{k}"}, "recursion_limit": MESSAGES + 10}
            graph.invoke({"tag": f"lg-{k}-{os.getpid()}", "messages": []}, config)
        run_s = time.perf_counter() - started
        t0 = time.perf_counter()
        final = graph.get_state(config).values
        read_ms = (time.perf_counter() - t0) * 1000
        assert len(final["messages"]) == MESSAGES
        conn.close()
        files, rows = sqlite_file_bytes(path) - file0, sqlite_row_bytes(path) - rows0
    checkpoints = CONVERSATIONS * MESSAGES
    return row(
        "LangGraph SqliteSaver (defaults), operator.add",
        rows / checkpoints,
        files / checkpoints,
        run_s,
        read_ms,
    )


def row(label: str, rows: float, files: float, run_s: float, read_ms: float) -> dict[str, Any]:
    return {
        "label": label,
        "rows": rows,
        "file": files,
        "ms_node": run_s * 1000 / (CONVERSATIONS * MESSAGES),
        "read_ms": read_ms,
    }


HEADERS = [
    "system",
    "row bytes / checkpoint",
    "file bytes / checkpoint",
    "ms / node (incl. write)",
    "read final state (ms)",
]


def table(results: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            r["label"],
            f"{r['rows']:,.0f}",
            f"{r['file']:,.0f}",
            f"{r['ms_node']:.3f}",
            f"{r['read_ms']:.2f}",
        ]
        for r in results
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--no-write", action="store_true", help="do not update bench/results.md")
    args = ap.parse_args(argv)
    info = machine_info(["sqlalchemy", "langgraph", "langgraph-checkpoint-sqlite"])
    results = [
        measure_wtb(
            'WTB "append" + delta blobs', conversation(append_node, {"messages": "append"}), True
        ),
        measure_wtb(
            "WTB replace (node returns the whole list), delta blobs",
            conversation(replace_node, {}),
            True,
        ),
        measure_wtb(
            'WTB "append", delta blobs off (full snapshot per checkpoint)',
            conversation(append_node, {"messages": "append"}),
            False,
        ),
    ]
    lg = measure_langgraph()
    if lg is not None:
        results.append(lg)
    rows = table(results)
    print(f"Machine: {machine_line(info)}")
    print_table(TITLE, HEADERS, rows)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    full = results[2]["rows"]
    body = "\n".join(
        [
            "Generated by `python bench/reducers.py`.",
            "",
            f"Machine: {machine_line(info)}; load avg (1/5/15 min) at the end: {load}.",
            "",
            f"**How measured.** {CONVERSATIONS} conversations of {MESSAGES} node checkpoints "
            "each (a user/bot cycle; every node appends one ~200-byte message to `messages`; "
            "unique text per conversation), each row on a fresh SQLite file (`audit=False`). "
            "Bytes = growth of the row payload (`length()` of every column of every row) and "
            "of the database file, divided by the node checkpoints. A full snapshot of the "
            f"final list is ~{len(str(message('x', 0))) * MESSAGES // 1000} KB.",
            "",
            markdown_table(HEADERS, rows),
            "",
            f"Delta blobs store {full / results[0]['rows']:.1f}x fewer row bytes per "
            "checkpoint than full snapshots here. A delta blob holds the appended tail and the "
            "hash of the previous value; a full value is written again after 32 deltas (or "
            "when the tail is over half the value), so a read rebuilds at most 32 tails. "
            "Timings are on a shared, loaded machine: compare rows of this run only.",
        ]
    )
    if not args.no_write:
        print(f"wrote {update_results_section(SECTION, TITLE, body)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
