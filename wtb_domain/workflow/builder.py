"""Building a workflow: :class:`GraphBuilder` collects nodes, edges and reducers, then validates."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from wtb_domain.errors import WorkflowError
from wtb_domain.reducers import Reducer, ReducerSpec, resolve_reducer, resolve_reducers
from wtb_domain.workflow.model import (
    DEFAULT_MAX_STEPS,
    DEFAULT_VARIANT,
    END,
    ConditionalEdge,
    Node,
    NodeFn,
    NodeVariant,
    Router,
    Workflow,
)


class GraphBuilder:
    """Collects nodes, variants and edges, then validates them in :meth:`build`.

    Example::

        g = GraphBuilder("qa")
        g.add_node("retrieve", keyword_retrieve, params={"k": 3})
        g.add_variant("retrieve", "bm25", bm25_retrieve, params={"k": 3})
        g.add_node("answer", extract_answer)
        g.add_edge("retrieve", "answer")
        g.set_entry("retrieve")
        g.set_reducer("log", "append")  # nodes return the items to add to the list "log"
        workflow = g.build()
    """

    def __init__(
        self,
        name: str,
        max_steps: int = DEFAULT_MAX_STEPS,
        reducers: Mapping[str, ReducerSpec] | None = None,
    ) -> None:
        """``reducers``: per state key, how node updates merge (see :meth:`set_reducer`)."""
        self.name = name
        self.max_steps = max_steps
        self._reducers: dict[str, Reducer] = resolve_reducers(reducers)
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

    def set_reducer(self, key: str, reducer: ReducerSpec) -> GraphBuilder:
        """Merge node updates of ``key`` with ``reducer``: ``"replace"`` (the default of every
        key), ``"append"`` (the node returns a list of items added to the current list), an
        import path ``"package.module:function"`` or a callable ``(current, update) -> new``
        (``current`` is None while the key is absent). The reducer is part of the workflow
        hash. Edits of the state (``update_state``, fork with values) replace, as given."""
        self._reducers[key] = resolve_reducer(key, reducer)
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
            self.name,
            nodes,
            self._edges,
            self._conditional,
            self._entry,
            self.max_steps,
            self._reducers,
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
