"""Deterministic, sleep-based workflows for ``bench/batch.py``, importable by reference.

Batch specs name a workflow as ``module:attr`` and Ray workers import it again, so these live
in a module of their own (the repository root must be on ``PYTHONPATH`` for Ray workers;
``bench/batch.py`` sets it). Every node sleeps ``ctx.params["sleep_s"]`` seconds and returns
a tiny update; nothing is random.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from wtb_domain import END, GraphBuilder, NodeContext, Workflow

MODULE = "bench.workflows"

# --- prefix3: a -> b -> c, variants x, y, z on every node, 20 ms per node --------------------

PREFIX_NODES = ("a", "b", "c")
PREFIX_VARIANTS = ("x", "y", "z")
PREFIX_SLEEP_S = 0.020
PREFIX3 = f"{MODULE}:prefix3"


def tag_step(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """Sleep, then append ``node=variant`` to ``path``; ``answer`` is the joined path."""
    sleep_s = float(ctx.params.get("sleep_s", 0.0))
    if sleep_s:
        time.sleep(sleep_s)
    path = [*state.get("path", []), f"{ctx.node}={ctx.params['tag']}"]
    return {"path": path, "answer": ",".join(path)}


def prefix3() -> Workflow:
    g = GraphBuilder("bench-prefix3")
    for node in PREFIX_NODES:
        g.add_node(
            node,
            tag_step,
            variant=PREFIX_VARIANTS[0],
            params={"tag": PREFIX_VARIANTS[0], "sleep_s": PREFIX_SLEEP_S},
        )
        for v in PREFIX_VARIANTS[1:]:
            g.add_variant(node, v, params={"tag": v, "sleep_s": PREFIX_SLEEP_S})
    g.add_edge("a", "b").add_edge("b", "c").add_edge("c", END).set_entry("a")
    return g.build()


# --- fan100: prep -> work, 100 variants of work (parameters only), 0.1 s per node ------------

FAN_VARIANTS = 100
FAN_SLEEP_S = 0.1
FAN100 = f"{MODULE}:fan100"


def fan_variant(i: int) -> str:
    return f"v{i:03d}"


def prep(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    time.sleep(float(ctx.params.get("sleep_s", 0.0)))
    return {"prepared": int(state.get("x", 0)) + 1}


def work(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    time.sleep(float(ctx.params.get("sleep_s", 0.0)))
    return {"answer": str(int(state["prepared"]) + int(ctx.params["i"]))}


def fan100() -> Workflow:
    g = GraphBuilder("bench-fan100")
    g.add_node("prep", prep, params={"sleep_s": FAN_SLEEP_S})
    g.add_node("work", work, variant=fan_variant(0), params={"i": 0, "sleep_s": FAN_SLEEP_S})
    for i in range(1, FAN_VARIANTS):
        g.add_variant("work", fan_variant(i), params={"i": i, "sleep_s": FAN_SLEEP_S})
    g.add_edge("prep", "work").add_edge("work", END).set_entry("prep")
    return g.build()


# --- tiny2: a -> b, 10 variants each, no sleep, a few bytes of state -------------------------

TINY_VARIANTS = 10
TINY2 = f"{MODULE}:tiny2"


def tiny_variant(i: int) -> str:
    return f"t{i}"


def tiny_a(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    return {"a": int(state["x"]) + int(ctx.params["i"])}


def tiny_b(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    return {"answer": str(int(state["a"]) * 10 + int(ctx.params["i"]))}


def tiny2() -> Workflow:
    g = GraphBuilder("bench-tiny2")
    for node, fn in (("a", tiny_a), ("b", tiny_b)):
        g.add_node(node, fn, variant=tiny_variant(0), params={"i": 0})
        for i in range(1, TINY_VARIANTS):
            g.add_variant(node, tiny_variant(i), params={"i": i})
    g.add_edge("a", "b").add_edge("b", END).set_entry("a")
    return g.build()
