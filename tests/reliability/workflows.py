"""Workflows of the reliability suite, importable by reference (``tests.reliability.workflows:x``).

Nodes append ``<execution id> <node> <pid>`` to the file named by ``$WTB_NODE_LOG`` (when set)
as they start, so a test counts node calls across processes, a SIGKILLed one included.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.contract.runners import call_counts, calls  # noqa: F401 - one node-call log format
from wtb_domain import END, GraphBuilder, NodeContext, Workflow

State = Mapping[str, Any]
MODULE = "tests.reliability.workflows"
CHAIN = f"{MODULE}:chain"
OVERLAP = f"{MODULE}:overlap"
FAULTS = f"{MODULE}:faults"
NODE_LOG_ENV = "WTB_NODE_LOG"
GATE_ENV = "WTB_NODE_GATE"
GATE_POLL_S = 0.02
CHAIN_NODES = ("a", "b", "c")
CHAIN_SLEEP_S = 0.06
HANG_S = 300.0


def log_call(ctx: NodeContext) -> None:
    path = os.environ.get(NODE_LOG_ENV)
    if not path:
        return
    with Path(path).open("a") as f:  # one short appended line per call: atomic on POSIX
        f.write(f"{ctx.execution_id} {ctx.node} {os.getpid()}\n")


def wait_for_gate() -> None:
    """Block until the file named by ``$WTB_NODE_GATE`` exists (when set).

    A test starts ``wtb batch run`` processes ahead of time; each boots, registers its batch
    and waits here at its first node until the test opens its gate, so a kill "d seconds into
    the work" means d seconds after the gate opened, however long the boot took.
    """
    gate = os.environ.get(GATE_ENV)
    while gate and not Path(gate).exists():
        time.sleep(GATE_POLL_S)


# --- chain: a -> b -> c, variants x | y on each node, 60 ms per node ------------------------


def chain_step(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Append ``node:variant`` to ``path``; c sets ``answer`` to the joined path."""
    wait_for_gate()
    log_call(ctx)
    time.sleep(float(ctx.params["sleep_s"]))
    path = [*state.get("path", []), f"{ctx.node}:{ctx.variant}"]
    ctx.record("tokens", 10 * len(path))
    ctx.record("cost_usd", 0.001 if ctx.variant == "x" else 0.002)
    update: dict[str, Any] = {"path": path}
    if ctx.node == "c":
        update["answer"] = f"{state['q']}|{'-'.join(path)}"
    return update


def chain() -> Workflow:
    """a -> b -> c (x | y each: 8 combinations); input ``{"q": str}``."""
    g = GraphBuilder("reliability-chain")
    for node in CHAIN_NODES:
        g.add_node(node, chain_step, variant="x", params={"sleep_s": CHAIN_SLEEP_S})
        g.add_variant(node, "y", params={"sleep_s": CHAIN_SLEEP_S})
    for a, b in itertools.pairwise(CHAIN_NODES):
        g.add_edge(a, b)
    g.add_edge(CHAIN_NODES[-1], END)
    g.set_entry(CHAIN_NODES[0])
    return g.build()


# --- overlap: the chain, with b:y running longer than a claim's lease ----------------------

OVERLAP_SLOW_ENV = "WTB_TEST_SLOW_S"
"""Seconds ``b:y`` sleeps (the test sets it above the lease); other nodes sleep 50 ms."""


def overlap_step(state: State, ctx: NodeContext) -> dict[str, Any]:
    """:func:`chain_step`, b:y sleeping ``$WTB_TEST_SLOW_S``: its claim lives on heartbeats."""
    slow = ctx.node == "b" and ctx.variant == "y"
    sleep_s = float(os.environ.get(OVERLAP_SLOW_ENV, "1.0")) if slow else 0.05
    wait_for_gate()
    log_call(ctx)
    time.sleep(sleep_s)
    path = [*state.get("path", []), f"{ctx.node}:{ctx.variant}"]
    update: dict[str, Any] = {"path": path}
    if ctx.node == "c":
        update["answer"] = f"{state['q']}|{'-'.join(path)}"
    return update


def overlap() -> Workflow:
    """a -> b -> c (x | y each: 8 combinations); b:y outlasts a short lease."""
    g = GraphBuilder("reliability-overlap")
    for node in CHAIN_NODES:
        g.add_node(node, overlap_step, variant="x")
        g.add_variant(node, "y")
    for a, b in itertools.pairwise(CHAIN_NODES):
        g.add_edge(a, b)
    g.add_edge(CHAIN_NODES[-1], END)
    g.set_entry(CHAIN_NODES[0])
    return g.build()


# --- faults: work (ok | boom | slow | big | hang; timeout 0.5 s) -> finish --------------------

HANG_RELEASE = threading.Event()
"""Set to release nodes hanging in this process (a test's cleanup)."""


def work(state: State, ctx: NodeContext) -> dict[str, Any]:
    log_call(ctx)
    mode = ctx.variant
    if mode == "boom":
        raise ValueError(f"boom on {state['q']}")
    if mode == "slow":
        time.sleep(2.0)
    if mode == "hang":
        HANG_RELEASE.wait(HANG_S)  # far beyond timeout_s: a node that never returns
    if mode == "big":
        return {"worked": mode, "blob": "x" * int(ctx.params["blob_bytes"])}
    return {"worked": mode}


def finish(state: State, ctx: NodeContext) -> dict[str, Any]:
    log_call(ctx)
    return {"answer": f"{state['q']}:{state['worked']}"}


def faults() -> Workflow:
    """work (ok | boom: raises | slow: 2 s > timeout | big: 64 KB blob | hang) -> finish."""
    g = GraphBuilder("reliability-faults")
    g.add_node("work", work, variant="ok", timeout_s=0.5)
    for mode in ("boom", "slow", "hang"):
        g.add_variant("work", mode)
    g.add_variant("work", "big", params={"blob_bytes": 64 * 1024})
    g.add_node("finish", finish)
    g.add_edge("work", "finish").add_edge("finish", END)
    g.set_entry("work")
    return g.build()
