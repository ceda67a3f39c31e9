"""LangGraph node and router callables wrapped as WTB nodes and routers.

A wrapped node decodes the JSON state into LangGraph values (messages), keeps the keys of the
node's input schema, invokes the node's Runnable with a ``RunnableConfig`` whose
``configurable`` holds the variant's parameters (and ``wtb_ctx``, WTB's node context), and
returns the update with messages encoded as JSON. Sends, Commands and interrupts are refused
with a NodeError-worthy WorkflowError naming the node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from wtb_domain.errors import WorkflowError
from wtb_domain.langgraph.channels import ChannelReducer
from wtb_domain.langgraph.messages import StateCodec
from wtb_domain.node_call import thread_loop


def _schema_keys(schema: Any) -> frozenset[str] | None:
    try:
        hints = typing.get_type_hints(schema)
    except Exception:
        return None
    return frozenset(hints) if hints else None


def _as_input(schema: Any, state: dict[str, Any]) -> Any:
    """The node's input as LangGraph gives it: a dict, or the pydantic/dataclass schema."""
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - pydantic is a WTB dependency
        BaseModel = ()  # type: ignore[assignment,misc]
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema(**state)
    if dataclasses.is_dataclass(schema) and isinstance(schema, type):
        return schema(**state)
    return state


def _config(params: Mapping[str, Any], ctx: Any, runtime_context: Any = None) -> dict[str, Any]:
    from langgraph.runtime import DEFAULT_RUNTIME

    runtime = DEFAULT_RUNTIME
    if runtime_context is not None:
        runtime = DEFAULT_RUNTIME.override(context=runtime_context)
    configurable: dict[str, Any] = {**params, "__pregel_runtime": runtime}
    if ctx is not None:
        configurable["wtb_ctx"] = ctx
    return {"configurable": configurable, "recursion_limit": 25}


def runtime_context(node: str, schema: Any, params: Mapping[str, Any]) -> Any:
    """The graph's ``context_schema`` filled from the variant's params (its fields only), for
    nodes that read ``runtime.context``; None without a context schema."""
    if schema is None:
        return None
    fields = _schema_keys(schema) or frozenset()
    try:
        return _as_input(schema, {k: v for k, v in params.items() if k in fields})
    except Exception as exc:
        name = getattr(schema, "__name__", type(schema).__name__)
        raise WorkflowError(
            f"node {node!r}: the variant's params do not fit the graph's context_schema "
            f"{name} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); give every "
            "required field in the variant's params"
        ) from None


def _refuse(node: str, out: Any) -> None:
    from langgraph.types import Command, Send

    if isinstance(out, Command):
        raise WorkflowError(
            f"node {node!r} returned a Command, which the WTB adapter does not support; "
            "return a state update and route with add_conditional_edges"
        )
    if isinstance(out, Send) or (
        isinstance(out, list | tuple) and any(isinstance(o, Send | Command) for o in out)
    ):
        raise WorkflowError(
            f"node {node!r} returned Send/Command objects, which the WTB adapter does not "
            "support; return a state update"
        )


def with_defaults(
    state: Mapping[str, Any], reducers: Mapping[str, ChannelReducer]
) -> dict[str, Any]:
    """The state with every reducer key that has no value yet at its empty value (``[]``,
    ``0``), as a LangGraph channel starts."""
    out = dict(state)
    for key, reducer in reducers.items():
        if out.get(key) is None and reducer.empty is not None:
            out[key] = reducer.initial()
    return out


class _NodeBase:
    """What the sync and the async node wrapper share: input, config, errors, the update."""

    def __init__(
        self,
        name: str,
        runnable: Any,
        input_schema: Any,
        codec: StateCodec,
        channels: frozenset[str],
        reducers: Mapping[str, ChannelReducer],
        identity: Any = None,
        context_schema: Any = None,
    ) -> None:
        self.name = name
        self.context_schema = context_schema
        self.runnable = runnable
        self.input_schema = input_schema
        self.input_keys = _schema_keys(input_schema)
        self.codec = codec
        self.channels = channels
        self.reducers = reducers
        self.is_async = is_async_runnable(runnable)
        target = identity if identity is not None else runnable
        self.__module__ = getattr(target, "__module__", None) or __name__
        self.__qualname__ = getattr(
            target, "__qualname__", getattr(runnable, "name", None) or type(target).__name__
        )

    def _prepare(self, state: Mapping[str, Any], ctx: Any) -> tuple[Any, dict[str, Any]]:
        params = getattr(ctx, "params", {}) or {}
        decoded = self.codec.decode(with_defaults(state, self.reducers))
        if self.input_keys is not None:
            decoded = {k: v for k, v in decoded.items() if k in self.input_keys}
        context = runtime_context(self.name, self.context_schema, params)
        return _as_input(self.input_schema, decoded), _config(params, ctx, context)

    @contextlib.contextmanager
    def _running(self, config: dict[str, Any]) -> Iterator[None]:
        """``get_config()`` works in the node; LangGraph runtime features become one-line
        WorkflowErrors naming the node."""
        from langchain_core.runnables.config import var_child_runnable_config
        from langgraph.errors import GraphInterrupt

        token = var_child_runnable_config.set(config)  # type: ignore[arg-type]
        try:
            yield
        except GraphInterrupt:
            raise WorkflowError(
                f"node {self.name!r} called interrupt(), which the WTB adapter does not "
                "support; pause with break_before/break_after and edit the state instead"
            ) from None
        except KeyError as exc:
            if "__pregel" in str(exc):
                raise WorkflowError(
                    f"node {self.name!r} used a LangGraph runtime feature ({exc}: interrupt(), "
                    "Send or a subgraph) that the WTB adapter does not support; pause with "
                    "break_before/break_after and edit the state instead"
                ) from None
            raise
        finally:
            var_child_runnable_config.reset(token)

    def _update(self, out: Any) -> dict[str, Any]:
        _refuse(self.name, out)
        if out is None:
            return {}
        if dataclasses.is_dataclass(out) and not isinstance(out, type):
            out = dataclasses.asdict(out)
        elif hasattr(out, "model_dump") and not isinstance(out, Mapping):
            out = out.model_dump(exclude_unset=True)
        if not isinstance(out, Mapping):
            raise WorkflowError(
                f"node {self.name!r} returned {type(out).__name__}; a LangGraph node must "
                "return a dict of state updates (or None)"
            )
        unknown = [k for k in out if k not in self.channels]
        if unknown:
            raise WorkflowError(
                f"node {self.name!r} wrote key {unknown[0]!r}, which is not a key of the graph's "
                "state schema; add it to the schema"
            )
        return self.codec.encode(out)


class LangGraphNode(_NodeBase):
    """A WTB node function ``(state, ctx) -> update`` around one LangGraph node Runnable."""

    def __call__(self, state: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
        node_input, config = self._prepare(state, ctx)
        with self._running(config):
            out = self.runnable.invoke(node_input, config)
        return self._update(out)


class AsyncLangGraphNode(_NodeBase):
    """The ``async def`` WTB node around an async LangGraph node (the engine awaits it, and
    a node timeout cancels the coroutine)."""

    async def __call__(self, state: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
        node_input, config = self._prepare(state, ctx)
        with self._running(config):
            out = await self.runnable.ainvoke(node_input, config)
        return self._update(out)


def is_async_runnable(runnable: Any) -> bool:
    """True for a node LangGraph would await: an ``async def`` function (no sync version)."""
    return getattr(runnable, "func", True) is None and bool(getattr(runnable, "afunc", None))


class LangGraphRouter:
    """A WTB router ``state -> target key`` around a LangGraph branch's path function."""

    def __init__(
        self,
        source: str,
        path: Any,
        input_schema: Any,
        codec: StateCodec,
        keys: Callable[[Any], str],
        reducers: Mapping[str, ChannelReducer],
    ) -> None:
        self.source = source
        self.reducers = reducers
        self.path = path
        self.input_schema = input_schema
        self.input_keys = _schema_keys(input_schema) if input_schema is not None else None
        self.codec = codec
        self.keys = keys
        func = getattr(path, "func", None) or getattr(path, "afunc", None) or path
        self.__module__ = getattr(func, "__module__", None) or __name__
        self.__qualname__ = getattr(func, "__qualname__", type(func).__name__)
        self.is_async = getattr(path, "func", True) is None

    def __call__(self, state: Mapping[str, Any]) -> str:
        from langgraph.types import Send

        decoded = self.codec.decode(with_defaults(state, self.reducers))
        if self.input_keys is not None:
            decoded = {k: v for k, v in decoded.items() if k in self.input_keys}
        node_input = _as_input(self.input_schema, decoded) if self.input_schema else decoded
        config = _config({}, None)
        if self.is_async:  # routers are sync in WTB: await on the engine's thread loop
            result = thread_loop().run_until_complete(self.path.ainvoke(node_input, config))
        else:
            result = self.path.invoke(node_input, config)
        if isinstance(result, list | tuple):
            if len(result) != 1:
                raise WorkflowError(
                    f"the router after node {self.source!r} returned {len(result)} destinations "
                    f"({list(result)[:3]}); the WTB adapter runs one node at a time, so return one"
                )
            result = result[0]
        if isinstance(result, Send):
            raise WorkflowError(
                f"the router after node {self.source!r} returned Send(...), which the WTB "
                "adapter does not support; return a node name"
            )
        return self.keys(result)
