"""Calling a node's function: plain functions directly (in a thread when they have a timeout),
``async def`` functions on the calling thread's own event loop.

Each worker thread gets ONE event loop, created on its first async node and reused for every
later one (never ``asyncio.run`` per node); it is closed when the thread ends. A timeout on an
async node cancels the coroutine (it sees ``CancelledError``); a plain function that overruns
its timeout cannot be stopped and is abandoned in its thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any

from wtb_domain.workflow import Node, NodeContext, NodeVariant


class _LoopHolder:
    """The event loop of one thread; closed when the thread's locals are released."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        loop = self.loop
        if not loop.is_closed() and not loop.is_running():
            loop.close()


_local = threading.local()
_fallback_lock = threading.Lock()
_fallback: ThreadPoolExecutor | None = None


def thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop (created on first use, then reused)."""
    holder: _LoopHolder | None = getattr(_local, "holder", None)
    if holder is None or holder.loop.is_closed():
        holder = _LoopHolder()
        _local.holder = holder
    return holder.loop


def _run_here(awaitable: Awaitable[Any], node: Node | None) -> Any:
    async def bounded() -> Any:
        if node is None or node.timeout_s is None:
            return await awaitable
        try:
            return await asyncio.wait_for(awaitable, node.timeout_s)
        except TimeoutError:
            raise TimeoutError(
                f"node {node.name!r} exceeded its timeout of {node.timeout_s} s "
                "(its coroutine was cancelled)"
            ) from None

    return thread_loop().run_until_complete(bounded())


def run_awaitable(awaitable: Awaitable[Any], node: Node | None) -> Any:
    """Await ``awaitable`` on this thread's loop (bounded by ``node``'s timeout, if any); if
    this thread already runs a loop (the engine was called from async code), on a helper
    thread's loop instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(awaitable, node)
    global _fallback
    with _fallback_lock:
        if _fallback is None:
            _fallback = ThreadPoolExecutor(1, thread_name_prefix="wtb-async-nodes")
        pool = _fallback
    return pool.submit(_run_here, awaitable, node).result()


def call_node(node: Node, variant: NodeVariant, state: Mapping[str, Any], ctx: NodeContext) -> Any:
    """The node's update (whatever it returned; the engine checks it)."""
    view = MappingProxyType(state)
    if variant.is_async:
        coro: Coroutine[Any, Any, Any] = variant.fn(view, ctx)  # type: ignore[assignment]
        return run_awaitable(coro, node)
    if node.timeout_s is None:
        result = variant.fn(view, ctx)
    else:
        result = _call_in_thread(node, variant, view, ctx)
    if type(result) is not dict and isinstance(result, Awaitable):  # returned a coroutine
        return run_awaitable(result, node)
    return result


def _call_in_thread(
    node: Node, variant: NodeVariant, view: Mapping[str, Any], ctx: NodeContext
) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = variant.fn(view, ctx)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"wtb-node-{node.name}", daemon=True)
    worker.start()
    worker.join(node.timeout_s)
    if worker.is_alive():
        raise TimeoutError(f"node {node.name!r} exceeded its timeout of {node.timeout_s} s")
    if "error" in box:
        raise box["error"]
    return box.get("result")
