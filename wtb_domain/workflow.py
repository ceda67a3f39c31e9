"""Workflow graphs: named nodes over a JSON state, edges, conditional edges and node variants.

A node is a callable ``(state, ctx) -> partial update``. The update (a mapping of top-level keys)
is merged into the state. Nodes should treat ``state`` as read-only and return every key they
change: the state they see is a read-only view, and nested values are shared with the stored
checkpoint.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

from pydantic import BaseModel

from wtb_domain.errors import WorkflowError

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


NodeFn = Callable[[State, NodeContext], Mapping[str, Any] | None]


@dataclass(frozen=True)
class NodeVariant:
    """One implementation of a node: a callable plus the parameters it receives in ``ctx``."""

    name: str
    fn: NodeFn
    params: Mapping[str, Any] = field(default_factory=dict)

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
    """Routes from ``source`` to ``targets[router(state)]``."""

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
    ) -> None:
        self.name = name
        self.nodes = MappingProxyType(dict(nodes))
        self.edges = MappingProxyType(dict(edges))
        self.conditional = MappingProxyType(dict(conditional))
        self.entry = entry
        self.max_steps = max_steps
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
        copy = Workflow(self.name, nodes, self.edges, self.conditional, self.entry, self.max_steps)
        copy.ref = self.ref
        return copy

    def variant_names(self) -> dict[str, list[str]]:
        return {name: list(node.variants) for name, node in self.nodes.items()}

    def check_variants(self, selection: Mapping[str, str]) -> None:
        """Raise WorkflowError if ``selection`` names an unknown node or variant."""
        for node_name, variant in selection.items():
            self.node(node_name).variant(variant)

    def _compute_hash(self) -> str:
        doc = {
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
        blob = json.dumps(doc, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class GraphBuilder:
    """Collects nodes, variants and edges, then validates them in :meth:`build`.

    Example::

        g = GraphBuilder("qa")
        g.add_node("retrieve", keyword_retrieve, params={"k": 3})
        g.add_variant("retrieve", "bm25", bm25_retrieve, params={"k": 3})
        g.add_node("answer", extract_answer)
        g.add_edge("retrieve", "answer")
        g.set_entry("retrieve")
        workflow = g.build()
    """

    def __init__(self, name: str, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        self.name = name
        self.max_steps = max_steps
        self._nodes: dict[str, dict[str, NodeVariant]] = {}
        self._defaults: dict[str, str] = {}
        self._timeouts: dict[str, float | None] = {}
        self._schemas: dict[str, type[BaseModel] | None] = {}
        self._deterministic: dict[str, bool] = {}
        self._cache: dict[str, tuple[bool, tuple[str, ...] | None]] = {}
        self._edges: dict[str, str] = {}
        self._conditional: dict[str, ConditionalEdge] = {}
        self._entry: str | None = None

    def add_node(
        self,
        name: str,
        fn: NodeFn,
        *,
        params: Mapping[str, Any] | None = None,
        variant: str = DEFAULT_VARIANT,
        timeout_s: float | None = None,
        param_schema: type[BaseModel] | None = None,
        deterministic: bool = True,
        cache: bool = False,
        reads: Iterable[str] | None = None,
    ) -> GraphBuilder:
        """Add a node; ``variant`` names its default implementation.

        Args:
            name: Node name, unique in the graph.
            fn: ``(state, ctx) -> partial update``.
            params: Parameters of the default variant, given to the node as ``ctx.params``.
            variant: Name of the default variant.
            timeout_s: The node fails with TimeoutError when a run takes longer.
            param_schema: A pydantic model that every variant's params must satisfy
                (batch specs are checked against it before anything runs).
            deterministic: False if repeated runs may give different results; batch repeats
                then never share this node's run.
            cache: Reuse the node's result for the same node, variant, code and read state
                (across executions and batches; see :mod:`wtb_domain.recording.cache`).
            reads: The state keys the node reads (its cache key); default: the whole state.
        """
        if name == END or not name:
            raise WorkflowError(f"invalid node name {name!r}")
        if name in self._nodes:
            raise WorkflowError(f"node {name!r} is added twice; use add_variant for alternatives")
        if not callable(fn):
            raise WorkflowError(f"node {name!r}: fn must be callable, got {type(fn).__name__}")
        self._nodes[name] = {variant: NodeVariant(variant, fn, dict(params or {}))}
        self._defaults[name] = variant
        self._timeouts[name] = timeout_s
        self._schemas[name] = param_schema
        self._deterministic[name] = deterministic
        if isinstance(reads, str):
            raise WorkflowError(f"node {name!r}: reads must be a list of state keys, not a str")
        self._cache[name] = (bool(cache), None if reads is None else tuple(reads))
        return self

    def add_variant(
        self,
        node: str,
        name: str,
        fn: NodeFn | None = None,
        *,
        params: Mapping[str, Any] | None = None,
    ) -> GraphBuilder:
        """Add an alternative implementation; without ``fn`` it reuses the default's callable."""
        if node not in self._nodes:
            raise WorkflowError(f"add_variant: unknown node {node!r}; add_node it first")
        variants = self._nodes[node]
        if name in variants:
            raise WorkflowError(f"node {node!r} already has a variant {name!r}")
        base = variants[self._defaults[node]]
        variants[name] = NodeVariant(name, fn or base.fn, dict(params or {}))
        return self

    def add_edge(self, source: str, target: str) -> GraphBuilder:
        if source in self._edges or source in self._conditional:
            raise WorkflowError(f"node {source!r} already has an outgoing edge")
        self._edges[source] = target
        return self

    def add_conditional_edges(
        self, source: str, router: Router, targets: Mapping[str, str] | Iterable[str]
    ) -> GraphBuilder:
        """Route from ``source`` by ``router(state)``; ``targets`` maps its answers to nodes."""
        if source in self._edges or source in self._conditional:
            raise WorkflowError(f"node {source!r} already has an outgoing edge")
        if not callable(router):
            raise WorkflowError(f"router for {source!r} must be callable (no condition strings)")
        mapping = dict(targets) if isinstance(targets, Mapping) else {t: t for t in targets}
        self._conditional[source] = ConditionalEdge(source, router, mapping)
        return self

    def set_entry(self, node: str) -> GraphBuilder:
        self._entry = node
        return self

    def build(self) -> Workflow:
        """Validate and return the immutable workflow; raises WorkflowError naming the node."""
        if not self._nodes:
            raise WorkflowError(f"workflow {self.name!r} has no nodes")
        if self._entry is None:
            raise WorkflowError(f"workflow {self.name!r} has no entry node; call set_entry(node)")
        if self._entry not in self._nodes:
            raise WorkflowError(f"entry node {self._entry!r} is not a node of {self.name!r}")
        if self.max_steps < 1:
            raise WorkflowError(f"max_steps must be >= 1, got {self.max_steps}")
        known = set(self._nodes) | {END}
        for source, target in self._edges.items():
            for name in (source, target):
                if name not in known:
                    raise WorkflowError(f"edge {source!r} -> {target!r}: unknown node {name!r}")
        for cond in self._conditional.values():
            if cond.source not in self._nodes:
                raise WorkflowError(f"conditional edge from unknown node {cond.source!r}")
            for target in cond.targets.values():
                if target not in known:
                    raise WorkflowError(
                        f"conditional edge from {cond.source!r}: unknown node {target!r}"
                    )
        self._check_reachable()
        nodes = {
            name: Node(
                name,
                dict(variants),
                self._defaults[name],
                self._timeouts[name],
                self._schemas[name],
                self._deterministic[name],
                *self._cache[name],
            )
            for name, variants in self._nodes.items()
        }
        return Workflow(
            self.name, nodes, self._edges, self._conditional, self._entry, self.max_steps
        )

    def _check_reachable(self) -> None:
        if self._entry is None:
            raise WorkflowError("no entry node; call set_entry(<node>) before build()")
        seen = {self._entry}
        queue = deque([self._entry])
        while queue:
            current = queue.popleft()
            targets: list[str] = []
            if current in self._edges:
                targets.append(self._edges[current])
            if current in self._conditional:
                targets.extend(self._conditional[current].targets.values())
            for t in targets:
                if t != END and t not in seen:
                    seen.add(t)
                    queue.append(t)
        unreachable = [n for n in self._nodes if n not in seen]
        if unreachable:
            raise WorkflowError(
                f"node {unreachable[0]!r} is unreachable from entry {self._entry!r}; "
                "connect it with add_edge or remove it"
            )


_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
MAX_REF_LENGTH = 512


def load_workflow(ref: str) -> Workflow:
    """Resolve ``package.module:attr`` to a Workflow (attr may be a Workflow or a factory).

    A factory is a Python function taking no arguments; other callables (builtins such as
    ``sys:exit``, classes) are refused without being called. Every failure is a one-line
    WorkflowError.
    """
    if not isinstance(ref, str) or len(ref) > MAX_REF_LENGTH or not _REF.fullmatch(ref):
        shown = repr(ref) if len(repr(ref)) <= 80 else repr(ref)[:77] + "..."
        raise WorkflowError(
            f"workflow reference {shown} must look like 'package.module:attr' (absolute, "
            f"at most {MAX_REF_LENGTH} characters; e.g. wtb_domain.demo.qa:workflow)"
        )
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise WorkflowError(
            f"workflow reference {ref!r}: module {exc.name!r} not found; "
            "check the spelling and that it is importable (installed or on PYTHONPATH)"
        ) from None
    except Exception as exc:  # the module itself is broken: say so in one line
        raise WorkflowError(
            f"workflow reference {ref!r}: importing module {module_name!r} failed "
            f"({type(exc).__name__}: {_one_line(exc)}); fix the module"
        ) from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise WorkflowError(
            f"workflow reference {ref!r}: module {module_name!r} has no attribute {attr!r}"
        ) from None
    if isinstance(obj, GraphBuilder):
        obj = _build(ref, obj)
    elif inspect.isfunction(obj):
        obj = _call_factory(ref, obj)
    if not isinstance(obj, Workflow):
        raise WorkflowError(
            f"workflow reference {ref!r} points to a {type(obj).__name__}, not a Workflow "
            "(or a GraphBuilder, or a Python function with no arguments returning one)"
        )
    obj.ref = ref
    return obj


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _build(ref: str, builder: GraphBuilder) -> Workflow:
    try:
        return builder.build()
    except WorkflowError as exc:
        raise WorkflowError(f"workflow reference {ref!r}: {exc}") from None


def _call_factory(ref: str, factory: Callable[..., Any]) -> Any:
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise WorkflowError(
            f"workflow reference {ref!r} points to a function that needs arguments; "
            "point it to a Workflow or a function with no arguments returning one"
        ) from None
    try:
        obj = factory()
    except WorkflowError as exc:
        raise WorkflowError(f"workflow reference {ref!r}: {exc}") from None
    except Exception as exc:
        raise WorkflowError(
            f"workflow reference {ref!r}: calling {factory.__qualname__}() failed "
            f"({type(exc).__name__}: {_one_line(exc)})"
        ) from None
    if isinstance(obj, GraphBuilder):
        obj = _build(ref, obj)
    return obj
