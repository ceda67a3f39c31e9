"""Small workflows for the contract suite, importable by reference (``tests.contract.workflows:x``).

Every workflow here is a factory: ``load_workflow`` calls it and gets a fresh Workflow, exactly
like a user's module would be loaded in a new process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wtb_domain import GraphBuilder, NodeContext, Workflow

State = Mapping[str, Any]

LINEAR = "tests.contract.workflows:linear"
BRANCHING = "tests.contract.workflows:branching"
ENDLESS = "tests.contract.workflows:endless"
FLAKY = "tests.contract.workflows:flaky"
BAD_UPDATE = "tests.contract.workflows:bad_update"
BIG_STATE = "tests.contract.workflows:big_state"
ROUND_TRIP = "tests.contract.workflows:round_trip"

# Names of nodes that currently fail, whatever the state says (a fake "bug in the node code"
# that a test can fix between a failure and a resume without changing the graph).
BROKEN: set[str] = set()


def _trace(state: State, name: str) -> list[str]:
    return [*state.get("trace", []), name]


# --- linear: a -> b -> c ----------------------------------------------------------------------


def add(state: State, ctx: NodeContext) -> dict[str, Any]:
    ctx.record("tokens", 1)
    return {"x": state["x"] + ctx.params["amount"], "trace": _trace(state, "a")}


def multiply(state: State, ctx: NodeContext) -> dict[str, Any]:
    ctx.record("tokens", 1)
    return {"x": state["x"] * ctx.params["factor"], "trace": _trace(state, "a")}


def double(state: State, ctx: NodeContext) -> dict[str, Any]:
    ctx.record("tokens", 1)
    return {"y": state["x"] * ctx.params.get("factor", 2), "trace": _trace(state, "b")}


def finish(state: State, ctx: NodeContext) -> dict[str, Any]:
    ctx.record("tokens", 1)
    ctx.record("cost", 0.5)
    return {"done": True, "trace": _trace(state, "c")}


def _linear_builder() -> GraphBuilder:
    g = GraphBuilder("linear")
    g.add_node("a", add, params={"amount": 1})
    g.add_variant("a", "plus10", params={"amount": 10})  # same fn, other params
    g.add_variant("a", "times", multiply, params={"factor": 3})  # other fn
    g.add_node("b", double)
    g.add_variant("b", "triple", params={"factor": 3})
    g.add_node("c", finish)
    g.add_edge("a", "b").add_edge("b", "c").add_edge("c", "__end__")
    g.set_entry("a")
    return g


def linear() -> Workflow:
    """a -> b -> c. Input ``{"x": int}``; a adds 1 (plus10: 10, times: *3), b sets y = 2x."""
    return _linear_builder().build()


def linear_changed() -> Workflow:
    """``linear`` after someone edited it: same name, one more variant on c."""
    g = _linear_builder()
    g.add_variant("c", "fancy", params={"style": "fancy"})
    return g.build()


# --- branching: classify -> (big | small) -------------------------------------------------------


def classify(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {"classified": True}


def size_router(state: State) -> str:
    if state.get("x") == "weird":
        return "sideways"  # not a declared target
    return "big" if state["x"] >= 10 else "small"


def big(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {"route": "big"}


def small(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {"route": "small"}


def branching() -> Workflow:
    g = GraphBuilder("branching")
    g.add_node("classify", classify)
    g.add_node("big", big)
    g.add_node("small", small)
    g.add_conditional_edges("classify", size_router, {"big": "big", "small": "small"})
    g.add_edge("big", "__end__").add_edge("small", "__end__")
    g.set_entry("classify")
    return g.build()


# --- endless: a cycle that never reaches END --------------------------------------------------

ENDLESS_MAX_STEPS = 5


def spin(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {"n": state.get("n", 0) + 1}


def always_again(state: State) -> str:
    return "again"


def endless() -> Workflow:
    g = GraphBuilder("endless", max_steps=ENDLESS_MAX_STEPS)
    g.add_node("spin", spin)
    g.add_conditional_edges("spin", always_again, {"again": "spin", "stop": "__end__"})
    g.set_entry("spin")
    return g.build()


# --- flaky: prepare -> boom -> after ------------------------------------------------------------


def prepare(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {"prepared": True}


def boom(state: State, ctx: NodeContext) -> dict[str, Any]:
    if state.get("explode") or "boom" in BROKEN:
        raise RuntimeError("boom exploded as asked")
    return {"boomed": True}


def after(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {"after": True}


def flaky() -> Workflow:
    g = GraphBuilder("flaky")
    g.add_node("prepare", prepare)
    g.add_node("boom", boom)
    g.add_node("after", after)
    g.add_edge("prepare", "boom").add_edge("boom", "after").add_edge("after", "__end__")
    g.set_entry("prepare")
    return g.build()


# --- bad_update: emit returns a non-JSON value, chosen by variant --------------------------------


class Opaque:
    """A custom object that JSON cannot encode."""


def emit(state: State, ctx: NodeContext) -> dict[str, Any]:
    kind = ctx.params["kind"]
    values: dict[str, Any] = {
        "set": {1, 2, 3},
        "object": Opaque(),
        "nan": float("nan"),
        "ok": [1, 2, 3],
    }
    return {"value": values[kind]}


def bad_update() -> Workflow:
    g = GraphBuilder("bad_update")
    g.add_node("emit", emit, params={"kind": "ok"})
    for kind in ("set", "object", "nan"):
        g.add_variant("emit", kind, params={"kind": kind})
    g.set_entry("emit")
    g.add_edge("emit", "__end__")
    return g.build()


# --- big_state: three nodes that each change one small key next to a large one -----------------


def touch(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {"counter": state["counter"] + 1}


def big_state() -> Workflow:
    g = GraphBuilder("big_state")
    for name in ("t1", "t2", "t3"):
        g.add_node(name, touch)
    g.add_edge("t1", "t2").add_edge("t2", "t3").add_edge("t3", "__end__")
    g.set_entry("t1")
    return g.build()


# --- round_trip: a node returns JSON-able values that are not JSON-native -----------------------


def produce(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {"pair": (1, 2), "by_id": {7: "seven"}}


def consume(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {"seen": {"pair": repr(state["pair"]), "by_id": repr(dict(state["by_id"]))}}


def round_trip() -> Workflow:
    g = GraphBuilder("round_trip")
    g.add_node("produce", produce)
    g.add_node("consume", consume)
    g.add_edge("produce", "consume").add_edge("consume", "__end__")
    g.set_entry("produce")
    return g.build()
