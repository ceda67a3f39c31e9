"""Workflows and process entry points for the concurrent-runner tests.

Every node appends ``<execution id> <node> <pid>`` to the file named by the state's ``log``
key, so a test counts node calls across processes. Entry points run in spawned processes
(``multiprocessing`` spawn or a subprocess) and report through a queue or their exit code.
"""

from __future__ import annotations

import itertools
import os
import time
import traceback
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wtb_domain import END, GraphBuilder, NodeContext, Workflow, sql_app

State = Mapping[str, Any]
FIVE = "tests.contract.runners:five"
BATCH3 = "tests.contract.runners:batch3"
FIVE_NODES = ("n1", "n2", "n3", "n4", "n5")


def calls(log: Path) -> list[tuple[str, str, int]]:
    """Every node call logged so far: (execution id, node, pid)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        execution_id, node, pid = line.split()
        out.append((execution_id, node, int(pid)))
    return out


def call_counts(log: Path) -> Counter[tuple[str, str]]:
    return Counter((e, n) for e, n, _ in calls(log))


def _log(state: State, ctx: NodeContext) -> int:
    """Log this call; how often this node of this execution was called before."""
    path = Path(state["log"])
    execution_id = ctx.execution_id
    before = sum(1 for e, n, _ in calls(path) if e == execution_id and n == ctx.node)
    with path.open("a") as f:  # one short appended line per call: atomic on POSIX
        f.write(f"{execution_id} {ctx.node} {os.getpid()}\n")
    return before


def five_step(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Sleeps ``sleep_s``; the node named ``slow_node`` sleeps ``slow_s`` on its first call."""
    before = _log(state, ctx)
    if state.get("slow_node") == ctx.node and before == 0:
        time.sleep(float(state.get("slow_s", 0)))
    time.sleep(float(state.get("sleep_s", 0)))
    return {"trace": [*state.get("trace", []), ctx.node]}


def five() -> Workflow:
    """n1 -> n2 -> n3 -> n4 -> n5: input checkpoint + 5 node checkpoints in one run."""
    g = GraphBuilder("five")
    for node in FIVE_NODES:
        g.add_node(node, five_step)
    for a, b in itertools.pairwise(FIVE_NODES):
        g.add_edge(a, b)
    g.add_edge(FIVE_NODES[-1], END)
    g.set_entry(FIVE_NODES[0])
    return g.build()


def batch_step(state: State, ctx: NodeContext) -> dict[str, Any]:
    _log(state, ctx)
    time.sleep(float(state.get("sleep_s", 0)))
    path = [*state.get("path", []), f"{ctx.node}:{ctx.variant}"]
    update: dict[str, Any] = {"path": path}
    if ctx.node == "c":
        update["answer"] = "-".join(path)
    return update


def batch3() -> Workflow:
    """a -> b -> c with variants x, y on each node (8 combinations)."""
    g = GraphBuilder("batch3")
    for node in ("a", "b", "c"):
        g.add_node(node, batch_step, variant="x")
        g.add_variant(node, "y")
    g.add_edge("a", "b").add_edge("b", "c").add_edge("c", END)
    g.set_entry("a")
    return g.build()


# --- process entry points -----------------------------------------------------------------


def resume_main(url: str, execution_id: str, barrier: Any, queue: Any) -> None:
    """Resume ``execution_id`` right after every other runner is ready; report the outcome."""
    try:
        app = sql_app(url, audit=False)
        barrier.wait(timeout=120)
        try:
            execution = app.controller.resume(execution_id)
            queue.put((os.getpid(), "ok", execution.status.value))
        except Exception as exc:
            queue.put((os.getpid(), type(exc).__name__, str(exc)))
    except BaseException:
        queue.put((os.getpid(), "crash", traceback.format_exc()))


def batch_main(url: str, spec: dict[str, Any], barrier: Any, queue: Any) -> None:
    """Run every task group of ``spec`` (a fixed batch id) with two threads, as a flow would."""
    from concurrent.futures import ThreadPoolExecutor

    from wtb_domain.batch.service import BatchService
    from wtb_domain.batch.spec import BatchSpec

    try:
        service = BatchService(sql_app(url, audit=False))
        barrier.wait(timeout=120)
        prepared = service.prepare(BatchSpec.parse(spec), workers=2)
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(
                pool.map(
                    lambda g: service.run_group(prepared.payload, g.case_id, list(g.leaf_keys)),
                    prepared.groups,
                )
            )
        summary = service.finish(prepared.batch_id)
        nodes = sum(o.node_executions for o in outcomes)
        queue.put((os.getpid(), "ok", f"{summary.status.value} {summary.done} {nodes}"))
    except BaseException:
        queue.put((os.getpid(), "crash", traceback.format_exc()))


def resume_forever(url: str, execution_id: str) -> None:
    """``python -c`` entry of the SIGKILL test: resume and let the test kill this process."""
    sql_app(url, audit=False).controller.resume(execution_id)
