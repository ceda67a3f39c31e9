"""The workflow model: nodes, variants, edges and the validated :class:`Workflow`."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any, Protocol

from pydantic import BaseModel

from wtb_domain.errors import WorkflowError
from wtb_domain.reducers import Reducer

END = "__end__"
DEFAULT_VARIANT = "default"
DEFAULT_MAX_STEPS = 100

State = Mapping[str, Any]
Router = Callable[[State], str]


class NodeContext(Protocol):
    """What a node gets besides the state: its variant parameters and a metric recorder."""

    node: str
    variant: str
    params: Mapping[str, Any]
    execution_id: str

    def record(self, name: str, value: float) -> None:
        """Record a numeric metric (tokens, cost, ...); values of the same name add up."""

    def llm(self, call: Callable[..., Any], **request: Any) -> Any:
        """An LLM call, recorded/replayed per the run's mode (:mod:`wtb_domain.recording`)."""

    async def allm(self, call: Callable[..., Any], **request: Any) -> Any:
        """The async :meth:`llm`."""

    def tool(self, name: str, fn: Callable[..., Any], args: Mapping[str, Any]) -> Any:
        """A tool call, recorded/replayed per the run's mode."""

    async def atool(self, name: str, fn: Callable[..., Any], args: Mapping[str, Any]) -> Any:
        """The async :meth:`tool`."""


NodeFn = Callable[
    [State, NodeContext],
    Mapping[str, Any] | Awaitable[Mapping[str, Any] | None] | None,
]
"""A node: ``(state, ctx) -> update``, a plain function or an ``async def``."""


def is_async_callable(fn: Any) -> bool:
    """True for an ``async def`` function (also behind functools.partial) or an object whose
    ``__call__`` is one."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an async __call__ counts
    return call is not None and inspect.iscoroutinefunction(call)


@dataclass(frozen=True)
class NodeVariant:
    """One implementation of a node: a callable plus the parameters it receives in ``ctx``."""

    name: str
    fn: NodeFn
    params: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def is_async(self) -> bool:
        """The engine awaits this variant's coroutine on its worker thread's event loop."""
        return is_async_callable(self.fn)

    def identity(self) -> dict[str, Any]:
        fn_name = f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', '?')}"
        return {"name": self.name, "fn": fn_name, "params": dict(self.params)}


@dataclass(frozen=True)
class Node:
    """A named step of the graph with its variants; ``default`` names the one used unless told."""

    name: str
    variants: Mapping[str, NodeVariant]
    default: str = DEFAULT_VARIANT
    timeout_s: float | None = None
    param_schema: type[BaseModel] | None = None
    deterministic: bool = True
    cache: bool = False
    """Results are cached (see :mod:`wtb_domain.recording.cache`)."""
    reads: tuple[str, ...] | None = None
    """The state keys the node reads (the cache key); None: the whole state."""

    def variant(self, name: str | None) -> NodeVariant:
        chosen = name or self.default
        try:
            return self.variants[chosen]
        except KeyError:
            known = ", ".join(sorted(self.variants))
            raise WorkflowError(
                f"node {self.name!r} has no variant {chosen!r}; known variants: {known}"
            ) from None


@dataclass(frozen=True)
class ConditionalEdge:
    """Routes from ``source`` to ``targets[router(state)]``. The router should be a plain,
    quick function of the state; an ``async def`` router is awaited on the thread's event
    loop (without a timeout)."""

    source: str
    router: Router
    targets: Mapping[str, str]


class Workflow:
    """A validated, immutable workflow graph. Build one with :class:`GraphBuilder`."""

    def __init__(
        self,
        name: str,
        nodes: Mapping[str, Node],
        edges: Mapping[str, str],
        conditional: Mapping[str, ConditionalEdge],
        entry: str,
        max_steps: int,
        reducers: Mapping[str, Reducer] | None = None,
    ) -> None:
        self.name = name
        self.nodes = MappingProxyType(dict(nodes))
        self.edges = MappingProxyType(dict(edges))
        self.conditional = MappingProxyType(dict(conditional))
        self.entry = entry
        self.max_steps = max_steps
        self.reducers: Mapping[str, Reducer] = MappingProxyType(dict(reducers or {}))
        """How node updates merge, per state key (a key not named here is replaced)."""
        self.ref: str | None = None
        self.structural_hash = self._compute_hash()

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            known = ", ".join(self.nodes)
            raise WorkflowError(
                f"workflow {self.name!r} has no node {name!r}; nodes: {known}"
            ) from None

    def next_node(self, after: str | None, state: State) -> str:
        """The node to run after ``after`` (``None`` means before the entry node), or END."""
        if after is None:
            return self.entry
        if after in self.edges:
            return self.edges[after]
        cond = self.conditional.get(after)
        if cond is None:
            return END
        key = cond.router(state)
        if inspect.isawaitable(key):  # an async router: awaited on this thread's loop
            from wtb_domain.node_call import run_awaitable  # node_call imports this module

            key = run_awaitable(key, None)
        if key not in cond.targets:
            raise WorkflowError(
                f"router of node {after!r} returned {key!r}, which is not one of its targets "
                f"{sorted(cond.targets)}; add it to add_conditional_edges(..., targets)"
            )
        return cond.targets[key]

    def with_variants(self, extra: Mapping[str, Mapping[str, NodeVariant]]) -> Workflow:
        """A copy with more variants (e.g. ad-hoc parameter sets from a batch spec)."""
        if not any(extra.values()):
            return self
        nodes = dict(self.nodes)
        for name, variants in extra.items():
            node = self.node(name)
            nodes[name] = replace(node, variants={**node.variants, **variants})
        copy = Workflow(
            self.name,
            nodes,
            self.edges,
            self.conditional,
            self.entry,
            self.max_steps,
            self.reducers,
        )
        copy.ref = self.ref
        return copy

    def variant_names(self) -> dict[str, list[str]]:
        return {name: list(node.variants) for name, node in self.nodes.items()}

    def check_variants(self, selection: Mapping[str, str]) -> None:
        """Raise WorkflowError if ``selection`` names an unknown node or variant."""
        for node_name, variant in selection.items():
            self.node(node_name).variant(variant)

    def _compute_hash(self) -> str:
        doc: dict[str, Any] = {
            "entry": self.entry,
            "nodes": {
                n.name: {
                    "default": n.default,
                    "variants": [v.identity() for v in n.variants.values()],
                }
                for n in self.nodes.values()
            },
            "edges": dict(sorted(self.edges.items())),
            "conditional": {
                c.source: {
                    "router": getattr(c.router, "__qualname__", "?"),
                    "targets": dict(sorted(c.targets.items())),
                }
                for c in self.conditional.values()
            },
        }
        if self.reducers:  # absent when none: the hashes of existing workflows stay the same
            doc["reducers"] = {k: r.identity for k, r in sorted(self.reducers.items())}
        blob = json.dumps(doc, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
