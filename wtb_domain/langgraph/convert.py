"""``StateGraph`` -> WTB ``Workflow``: nodes, edges, conditional edges, START/END, reducers."""

from __future__ import annotations

import inspect
import operator
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from wtb_domain.errors import WorkflowError
from wtb_domain.langgraph.channels import ChannelReducer, channel_reducers
from wtb_domain.langgraph.messages import StateCodec
from wtb_domain.langgraph.nodes import (
    AsyncLangGraphNode,
    LangGraphNode,
    LangGraphRouter,
    is_async_runnable,
)
from wtb_domain.langgraph.spec import VariantSpec
from wtb_domain.workflow import DEFAULT_VARIANT, END, GraphBuilder, Workflow

START_NODE = "__start__"
"""A no-op node WTB runs first when the graph routes conditionally from START."""
DEFAULT_MAX_STEPS = 25


def _start_node(state: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
    return {}


def _key_of(ends: Mapping[Any, str] | None) -> Any:
    if ends is None:
        return str
    return lambda result: str(result)


def _check_graph(graph: Any) -> None:
    from langgraph.graph import StateGraph

    if not isinstance(graph, StateGraph):
        what = type(graph).__name__
        hint = (
            " (pass the StateGraph builder, before .compile())"
            if "Pregel" in what or ("Compiled" in what)
            else ""
        )
        raise WorkflowError(f"from_langgraph needs an uncompiled StateGraph, got {what}{hint}")
    if graph.waiting_edges:
        starts, end = next(iter(graph.waiting_edges))
        raise WorkflowError(
            f"edge {list(starts)} -> {end!r} joins parallel branches, which the WTB adapter "
            "does not support; chain the nodes one after another"
        )


def _check_node(name: str, spec: Any) -> None:
    from langgraph.pregel import Pregel

    if isinstance(spec.runnable, Pregel):
        raise WorkflowError(
            f"node {name!r} is a subgraph, which the WTB adapter does not support; "
            "add its nodes to the parent graph"
        )
    if spec.ends:
        raise WorkflowError(
            f"node {name!r} declares Command destinations {list(spec.ends)}, which the WTB "
            "adapter does not support; route with add_conditional_edges"
        )
    unsupported = {
        "retry_policy": spec.retry_policy,
        "cache_policy": spec.cache_policy,
        "defer": spec.defer,
        "error_handler": getattr(spec, "error_handler_node", None),
        "timeout": getattr(spec, "timeout", None),
    }
    for option, value in unsupported.items():
        if value:
            raise WorkflowError(
                f"node {name!r} sets {option}, which the WTB adapter does not support; "
                "remove it (WTB batches rerun failed cases; use GraphBuilder's timeout_s)"
            )


def _runnable(node: str, fn: Any) -> Any:
    from langgraph._internal._runnable import coerce_to_runnable

    if not callable(fn) and not hasattr(fn, "invoke"):
        raise WorkflowError(
            f"variant of node {node!r}: fn must be a callable or a Runnable, got "
            f"{type(fn).__name__}"
        )
    return coerce_to_runnable(fn, name=node, trace=False)


def convert(
    graph: Any,
    *,
    name: str | None,
    variants: Mapping[str, Mapping[str, VariantSpec]],
    max_steps: int | None,
) -> Workflow:
    _check_graph(graph)
    codec = StateCodec.for_graph(graph)
    reducers = channel_reducers(graph, codec)
    channels = frozenset(graph.channels)
    context_schema = getattr(graph, "context_schema", None)
    wf_name = name or getattr(graph.state_schema, "__name__", None) or "langgraph"
    builder = GraphBuilder(wf_name, max_steps=max_steps or DEFAULT_MAX_STEPS)
    for key in variants:
        if key not in graph.nodes:
            known = ", ".join(n for n in graph.nodes if not n.startswith("__"))
            raise WorkflowError(f"variants: graph has no node {key!r}; nodes: {known}")

    def wrap(node: str, runnable: Any, schema: Any, identity: Any = None) -> Any:
        cls = AsyncLangGraphNode if is_async_runnable(runnable) else LangGraphNode
        return cls(node, runnable, schema, codec, channels, reducers, identity, context_schema)

    for node, spec in graph.nodes.items():
        if getattr(spec, "is_error_handler", False):
            continue
        _check_node(node, spec)
        own = dict(variants.get(node, {}))
        for variant, vspec in own.items():
            if not isinstance(vspec, VariantSpec):
                raise WorkflowError(
                    f"variants[{node!r}][{variant!r}] must be a VariantSpec(fn=..., params=...), "
                    f"got {type(vspec).__name__}"
                )
        default_name, default = _default_of(node, own)
        runnable = spec.runnable if default.fn is None else _runnable(node, default.fn)
        fn = _identity(spec.runnable) if default.fn is None else default.fn
        builder.add_node(
            node,
            wrap(node, runnable, spec.input_schema, fn),
            params=dict(default.params),
            variant=default_name,
        )
        for variant, vspec in own.items():
            if variant == default_name:
                continue
            if vspec.fn is None:
                builder.add_variant(node, variant, params=dict(vspec.params))
            else:
                wrapped = wrap(node, _runnable(node, vspec.fn), spec.input_schema, vspec.fn)
                builder.add_variant(node, variant, wrapped, params=dict(vspec.params))
    _add_edges(graph, builder, codec, reducers)
    for key, reducer in reducers.items():
        builder.set_reducer(key, _engine_reducer(reducer))
    return builder.build()


def _engine_reducer(reducer: ChannelReducer) -> Any:
    """``operator.add`` on a list is the engine's ``"append"`` (its checkpoints store only the
    appended items); every other reducer is passed as the callable."""
    if reducer.operator is operator.add and isinstance(reducer.empty, list):
        return "append"
    return reducer


def _default_of(node: str, own: Mapping[str, VariantSpec]) -> tuple[str, VariantSpec]:
    marked = [name for name, v in own.items() if v.default]
    if len(marked) > 1:
        raise WorkflowError(
            f"variants[{node!r}]: {marked[0]!r} and {marked[1]!r} are both default=True; mark one"
        )
    if marked:
        return marked[0], own[marked[0]]
    return DEFAULT_VARIANT, own.get(DEFAULT_VARIANT, VariantSpec())


def _identity(runnable: Any) -> Any:
    """What names a node in the workflow hash: the user's function, not the wrapper."""
    func = getattr(runnable, "func", None) or getattr(runnable, "afunc", None)
    if func is not None and (inspect.isfunction(func) or inspect.ismethod(func)):
        return func
    return runnable


def _add_edges(
    graph: Any, builder: GraphBuilder, codec: StateCodec, reducers: Mapping[str, ChannelReducer]
) -> None:
    from langgraph.graph import START

    outgoing: dict[str, list[str]] = defaultdict(list)
    for source, target in sorted(graph.edges):
        outgoing[source].append(target)
    branches = {s: b for s, b in graph.branches.items() if b}
    nodes = [n for n in graph.nodes]
    for source in sorted(set(outgoing) | set(branches)):
        targets = outgoing.get(source, [])
        count = len(targets) + len(branches.get(source, {}))
        if count > 1:
            where = "START" if source == START else f"node {source!r}"
            raise WorkflowError(
                f"{where} has {count} outgoing edges ({', '.join(targets) or 'branches'}), "
                "so LangGraph would run them in parallel; the WTB adapter runs one node at a "
                "time: chain them or route with one add_conditional_edges"
            )
    if START in branches:
        builder.add_node(START_NODE, _start_node)
        builder.set_entry(START_NODE)
    elif outgoing.get(START):
        builder.set_entry(outgoing[START][0])
    else:
        raise WorkflowError("the graph has no entry: add_edge(START, <node>) or set_entry_point")
    for source, targets in outgoing.items():
        if source != START:
            builder.add_edge(source, targets[0])
    for source, by_name in branches.items():
        branch = next(iter(by_name.values()))
        wtb_source = START_NODE if source == START else source
        if branch.ends is None:
            mapping = {n: n for n in [*nodes, END]}
        else:
            mapping = {str(k): v for k, v in branch.ends.items()}
        router = LangGraphRouter(
            wtb_source, branch.path, branch.input_schema, codec, _key_of(branch.ends), reducers
        )
        builder.add_conditional_edges(wtb_source, router, mapping)
