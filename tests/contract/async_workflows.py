"""Workflows of the async-node and reducer contract tests (importable by reference)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from wtb_domain import GraphBuilder, NodeContext, Workflow

State = Mapping[str, Any]

MIXED = "tests.contract.async_workflows:mixed"
SLOW = "tests.contract.async_workflows:slow"
CHAT = "tests.contract.async_workflows:chat"
BAD_APPEND = "tests.contract.async_workflows:bad_append"

LOOPS: list[tuple[int, int]] = []
"""(thread id, id of the running loop) of every async node run."""
CANCELLED = threading.Event()
"""Set by the slow node when its coroutine is cancelled."""


def reset() -> None:
    LOOPS.clear()
    CANCELLED.clear()


def _loop_seen() -> None:
    LOOPS.append((threading.get_ident(), id(asyncio.get_running_loop())))


# --- mixed: async a -> sync b -> async c, "log" appended ----------------------------------------


async def async_add(state: State, ctx: NodeContext) -> dict[str, Any]:
    _loop_seen()
    await asyncio.sleep(0)
    ctx.record("tokens", 1)
    return {"x": state["x"] + ctx.params["amount"], "log": ["a"]}


def sync_double(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {"y": state["x"] * 2, "log": ["b"]}


async def async_finish(state: State, ctx: NodeContext) -> dict[str, Any]:
    _loop_seen()
    await asyncio.sleep(0)
    return {"done": True, "log": [f"c:{state['y']}"]}


def mixed() -> Workflow:
    g = GraphBuilder("mixed", reducers={"log": "append"})
    g.add_node("a", async_add, params={"amount": 1})
    g.add_variant("a", "plus10", params={"amount": 10})
    g.add_node("b", sync_double)
    g.add_node("c", async_finish)
    g.add_edge("a", "b").add_edge("b", "c").add_edge("c", "__end__")
    g.set_entry("a")
    return g.build()


# --- slow: an async node that overruns its timeout ---------------------------------------------


async def async_sleeper(state: State, ctx: NodeContext) -> dict[str, Any]:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        CANCELLED.set()
        raise
    return {"slept": True}


def slow() -> Workflow:
    g = GraphBuilder("slow")
    g.add_node("a", async_add, params={"amount": 1})
    g.add_node("sleepy", async_sleeper, timeout_s=0.2)
    g.add_edge("a", "sleepy").add_edge("sleepy", "__end__")
    g.set_entry("a")
    return g.build()


# --- chat: a conversation whose messages are appended, a counter with a custom reducer ----------


def add_counts(current: Any, update: Any) -> int:
    return int(current or 0) + int(update)


def say(state: State, ctx: NodeContext) -> dict[str, Any]:
    turn = len(state.get("messages", []))
    return {"messages": [{"role": ctx.params["role"], "n": turn}], "count": 1}


async def route(state: State) -> str:
    """An async router (awaited on the thread's loop like an async node)."""
    await asyncio.sleep(0)
    return "more" if len(state["messages"]) < state["turns"] else "stop"


def chat() -> Workflow:
    g = GraphBuilder("chat", max_steps=500)
    g.set_reducer("messages", "append").set_reducer(
        "count", "tests.contract.async_workflows:add_counts"
    )
    g.add_node("user", say, params={"role": "user"})
    g.add_node("bot", say, params={"role": "bot"})
    g.add_variant("bot", "assistant", params={"role": "assistant"})
    g.add_edge("user", "bot")
    g.add_conditional_edges("bot", route, {"more": "user", "stop": "__end__"})
    g.set_entry("user")
    return g.build()


def not_a_list(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {"messages": "hello"}


def bad_append() -> Workflow:
    g = GraphBuilder("bad_append", reducers={"messages": "append"})
    g.add_node("talker", not_a_list)
    g.add_edge("talker", "__end__")
    g.set_entry("talker")
    return g.build()


# --- conversation: one ~200-byte message appended per node, for delta storage ----------------

CONVERSATION = "tests.contract.async_workflows:conversation"
REWRITE = "tests.contract.async_workflows:rewrite"


def speak(state: State, ctx: NodeContext) -> dict[str, Any]:
    n = len(state.get("messages", []))
    text = f"{state['tag']}-{n:04d}-" + "m" * 160
    return {"messages": [{"role": ctx.params["role"], "n": n, "text": text}]}


def more(state: State) -> str:
    return "more" if len(state["messages"]) < state["turns"] else "stop"


def conversation() -> Workflow:
    g = GraphBuilder("conversation", max_steps=1000, reducers={"messages": "append"})
    g.add_node("user", speak, params={"role": "user"})
    g.add_node("bot", speak, params={"role": "bot"})
    g.add_variant("bot", "assistant", params={"role": "assistant"})
    g.add_edge("user", "bot")
    g.add_conditional_edges("bot", more, {"more": "user", "stop": "__end__"})
    g.set_entry("user")
    return g.build()


def rewrite_items(state: State, ctx: NodeContext) -> dict[str, Any]:
    """Replaces the list: first ``[1]``, then ``[True, 2]`` (equal by Python's ``==`` to an
    extension of ``[1]``, but not the same JSON), then an edit of the first item."""
    items = state.get("items")
    if items is None:
        return {"items": [1]}
    if items == [1]:
        return {"items": [True, 2]}
    return {"items": ["edited", *items[1:], 3]}


def rewrite() -> Workflow:
    g = GraphBuilder("rewrite")
    g.add_node("one", rewrite_items).add_node("two", rewrite_items)
    g.add_node("three", rewrite_items)
    g.add_edge("one", "two").add_edge("two", "three").add_edge("three", "__end__")
    g.set_entry("one")
    return g.build()
