"""Small workflows for the batch suite, importable by reference (``tests.batch.workflows:x``).

Every node goes through :func:`_ran`, which counts runs per ``(node, variant)`` in this process
(``RUNS``) and calls the test hooks in ``HOOKS`` (to cancel a batch or "crash" mid-run).
Processes other than the test process (Ray workers, CLI subprocesses) count nothing here; tests
that use them count node checkpoints in the database instead.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, PositiveInt

from wtb_domain import END, GraphBuilder, NodeContext, Workflow

State = Mapping[str, Any]
Hook = Callable[[str, str, State], None]

MODULE = "tests.batch.workflows"
LINEAR3 = f"{MODULE}:linear3"
SLOW_LINEAR3 = f"{MODULE}:slow_linear3"
CONDITIONAL = f"{MODULE}:conditional"
NOISY = f"{MODULE}:noisy"
NOISY_UNFLAGGED = f"{MODULE}:noisy_unflagged"
FAILING = f"{MODULE}:failing"
SCHEMA = f"{MODULE}:with_schema"
SCORED = f"{MODULE}:scored"
PROBE = f"{MODULE}:probe"

VARIANTS = ("x", "y", "z")
COST = {"x": 0.001, "y": 0.002, "z": 0.003}

_lock = threading.Lock()
RUNS: Counter[tuple[str, str]] = Counter()
"""How often each (node, variant) ran in this process."""
HOOKS: list[Hook] = []
"""Called before every node run with (node, variant, state); may raise."""


class Crash(BaseException):
    """Raised by a hook to stop a run the way a killed process would (not caught by nodes)."""


def reset() -> None:
    with _lock:
        RUNS.clear()
    HOOKS.clear()


def runs(node: str | None = None) -> int:
    with _lock:
        return sum(n for (name, _), n in RUNS.items() if node is None or name == node)


def _ran(ctx: NodeContext, state: State) -> None:
    with _lock:
        RUNS[(ctx.node, ctx.variant)] += 1
    for hook in list(HOOKS):
        hook(ctx.node, ctx.variant, state)
    sleep_s = float(ctx.params.get("sleep_s", 0))
    if sleep_s:
        time.sleep(sleep_s)


# --- linear3: a -> b -> c, three variants (x, y, z) on each node -------------------------------


def step(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Append ``node:variant`` to ``path``; c also sets ``answer`` to the joined path."""
    _ran(ctx, state)
    ctx.record("tokens", 10)
    ctx.record("cost_usd", COST[ctx.params["tag"]])
    path = [*state.get("path", []), f"{ctx.node}:{ctx.params['tag']}"]
    update: dict[str, Any] = {"path": path}
    if ctx.node == "c":
        update["answer"] = f"{state['q']}|{'-'.join(path)}"
    return update


def _linear3(sleep_s: float = 0.0) -> Workflow:
    g = GraphBuilder("linear3")
    for node in ("a", "b", "c"):
        g.add_node(node, step, variant="x", params={"tag": "x", "sleep_s": sleep_s})
        for tag in VARIANTS[1:]:
            g.add_variant(node, tag, params={"tag": tag, "sleep_s": sleep_s})
    g.add_edge("a", "b").add_edge("b", "c").add_edge("c", END)
    g.set_entry("a")
    return g.build()


def linear3() -> Workflow:
    """a -> b -> c; input ``{"q": str}``; answer ``q|a:<v>-b:<v>-c:<v>``."""
    return _linear3()


def slow_linear3() -> Workflow:
    """``linear3`` whose every node sleeps 50 ms (for crash/resume and cancel tests)."""
    return _linear3(0.05)


# --- conditional: first -> (branch_a | branch_b) -> END, routed by the case input -----------


def first(state: State, ctx: NodeContext) -> dict[str, Any]:
    _ran(ctx, state)
    return {"route": state["kind"], "first": ctx.variant}


def branch(state: State, ctx: NodeContext) -> dict[str, Any]:
    _ran(ctx, state)
    return {"answer": f"{state['route']}:{state['first']}:{ctx.variant}"}


def route(state: State) -> str:
    return str(state["route"])


def conditional() -> Workflow:
    """first (p|q) routes by ``kind`` ("a"/"b") to branch_a (a1|a2) or branch_b (b1|b2)."""
    g = GraphBuilder("conditional")
    g.add_node("first", first, variant="p")
    g.add_variant("first", "q")
    g.add_node("branch_a", branch, variant="a1")
    g.add_variant("branch_a", "a2")
    g.add_node("branch_b", branch, variant="b1")
    g.add_variant("branch_b", "b2")
    g.add_conditional_edges("first", route, {"a": "branch_a", "b": "branch_b"})
    g.add_edge("branch_a", END).add_edge("branch_b", END)
    g.set_entry("first")
    return g.build()


# --- noisy: prep -> sample (random, no seed) -> score ------------------------------------------


def prep(state: State, ctx: NodeContext) -> dict[str, Any]:
    _ran(ctx, state)
    return {"prepared": f"{state['q']}/{ctx.variant}"}


def sample(state: State, ctx: NodeContext) -> dict[str, Any]:
    _ran(ctx, state)
    return {"draw": random.random()}  # deliberately unseeded


def score(state: State, ctx: NodeContext) -> dict[str, Any]:
    _ran(ctx, state)
    return {"answer": f"{state['prepared']}:{state['draw']:.12f}"}


def _noisy(flag_sample: bool) -> Workflow:
    g = GraphBuilder("noisy")
    g.add_node("prep", prep, variant="p1")
    g.add_variant("prep", "p2")
    g.add_node("sample", sample, deterministic=not flag_sample)
    g.add_node("score", score)
    g.add_edge("prep", "sample").add_edge("sample", "score").add_edge("score", END)
    g.set_entry("prep")
    return g.build()


def noisy() -> Workflow:
    """prep (p1|p2) -> sample (deterministic=False, unseeded random) -> score."""
    return _noisy(True)


def noisy_unflagged() -> Workflow:
    """``noisy`` without the deterministic=False flag (the spec must name the node)."""
    return _noisy(False)


# --- failing: work (ok | boom | slow, timeout 0.25 s) -> finish --------------------------------


def work(state: State, ctx: NodeContext) -> dict[str, Any]:
    _ran(ctx, state)
    mode = ctx.params["mode"]
    if mode == "boom":
        raise ValueError(f"boom on {state['q']}")
    if mode == "slow":
        time.sleep(1.0)
    return {"worked": mode}


def finish(state: State, ctx: NodeContext) -> dict[str, Any]:
    _ran(ctx, state)
    return {"answer": f"{state['q']}:{state['worked']}:{ctx.variant}"}


def failing() -> Workflow:
    """work (ok | boom: raises ValueError | slow: exceeds timeout_s=0.25) -> finish (f1|f2)."""
    g = GraphBuilder("failing")
    g.add_node("work", work, variant="ok", params={"mode": "ok"}, timeout_s=0.25)
    g.add_variant("work", "boom", params={"mode": "boom"})
    g.add_variant("work", "slow", params={"mode": "slow"})
    g.add_node("finish", finish, variant="f1")
    g.add_variant("finish", "f2")
    g.add_edge("work", "finish").add_edge("finish", END)
    g.set_entry("work")
    return g.build()


# --- with_schema: retrieve (param_schema k: PositiveInt) -> answer ------------------------------


class RetrieveParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: PositiveInt
    mode: str = "keyword"


def retrieve(state: State, ctx: NodeContext) -> dict[str, Any]:
    _ran(ctx, state)
    return {"docs": [f"{ctx.params['mode']}-{i}" for i in range(int(ctx.params["k"]))]}


def answer_from_docs(state: State, ctx: NodeContext) -> dict[str, Any]:
    _ran(ctx, state)
    return {"answer": ",".join(state["docs"])}


def with_schema() -> Workflow:
    """retrieve (keyword k=3 | bm25 k=2; params checked by RetrieveParams) -> answer."""
    g = GraphBuilder("with_schema")
    g.add_node(
        "retrieve", retrieve, variant="keyword", params={"k": 3}, param_schema=RetrieveParams
    )
    g.add_variant("retrieve", "bm25", params={"k": 2, "mode": "bm25"})
    g.add_node("answer", answer_from_docs)
    g.add_edge("retrieve", "answer").add_edge("answer", END)
    g.set_entry("retrieve")
    return g.build()


# --- scored: answer (good | bad), with usage metrics ---------------------------------------------


def compute(state: State, ctx: NodeContext) -> dict[str, Any]:
    _ran(ctx, state)
    ctx.record("tokens", 7)
    ctx.record("cost_usd", ctx.params["cost"])
    n = int(state["n"])
    return {"answer": str(2 * n if ctx.params["right"] else 2 * n + 1)}


def scored() -> Workflow:
    """answer: good doubles ``n`` (right), bad gets it wrong; both record tokens and cost."""
    g = GraphBuilder("scored")
    g.add_node("answer", compute, variant="good", params={"right": True, "cost": 0.01})
    g.add_variant("answer", "bad", params={"right": False, "cost": 0.02})
    g.set_entry("answer")
    g.add_edge("answer", END)
    return g.build()


# --- probe: probe (plain | flagged; reads WTB_TEST_FLAG) -> answer (good | bad) -----------------


def read_flag(state: State, ctx: NodeContext) -> dict[str, Any]:
    _ran(ctx, state)
    return {"flag": os.environ.get("WTB_TEST_FLAG"), "pid": os.getpid()}


def probe() -> Workflow:
    """probe writes ``flag`` = $WTB_TEST_FLAG (None if unset), then ``scored``'s answer node."""
    g = GraphBuilder("probe")
    g.add_node("probe", read_flag, variant="plain")
    g.add_variant("probe", "flagged")
    g.add_node("answer", compute, variant="good", params={"right": True, "cost": 0.01})
    g.add_variant("answer", "bad", params={"right": False, "cost": 0.02})
    g.add_edge("probe", "answer").add_edge("answer", END)
    g.set_entry("probe")
    return g.build()
