"""What the engine does around one node run for recorded calls and the node cache.

:func:`begin` builds the run's :class:`Recorder` and looks the node up in the cache;
:meth:`NodeRun.call` serves a cache hit or runs the node with the recorder active;
:meth:`NodeRun.stage` writes the calls and the new cache entry in the node's transaction
(right before ``save_node``), so they commit with its checkpoint or not at all. A cache entry
keeps the update the node returned (before reducers), its values content-addressed in
``wtb_call_bodies``; a hit goes through the reducers like the node's own update.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from wtb_domain.model import Checkpoint, Execution
from wtb_domain.ports import UnitOfWork, UnitOfWorkFactory
from wtb_domain.recording import counters
from wtb_domain.recording.cache import CACHE_HITS, CacheSettings, cache_key, code_identity
from wtb_domain.recording.model import CacheEntry, CallSettings, body_hash, repeat_of
from wtb_domain.recording.recorder import Recorder
from wtb_domain.state import encode_value
from wtb_domain.workflow import Node, NodeVariant, Workflow


@dataclass
class NodeRun:
    node: Node
    variant: NodeVariant
    recorder: Recorder
    cache_key: str | None = None
    hit: CacheEntry | None = None
    hit_update: dict[str, Any] | None = None
    _bodies: dict[str, str] | None = None
    _writes: dict[str, str] | None = None

    def call(
        self,
        state: Mapping[str, Any],
        ctx: Any,
        call_node: Callable[[Node, NodeVariant, Mapping[str, Any], Any], Any],
    ) -> Any:
        """The node's update: the cached one on a hit, else the node's own."""
        if self.hit_update is not None:
            ctx.record(CACHE_HITS, 1)
            counters.cache_hit(self.node.name)
            return dict(self.hit_update)
        bound = replace(self.variant, fn=self.recorder.bind(self.variant.fn))
        return call_node(self.node, bound, state, ctx)

    def returned(self, update: Mapping[str, Any]) -> None:
        """The node's update as it returned it (before reducers merge it): what a cache
        entry keeps, content-addressed (a StateError names the key of a non-JSON value)."""
        if self.cache_key is None or self.hit is not None:
            return
        self._bodies, self._writes = {}, {}
        for key, value in update.items():
            text = encode_value(value, node=self.node.name, key=key)
            digest = body_hash(text)
            self._bodies[digest] = text
            self._writes[key] = digest

    def stage(self, uow: UnitOfWork, cp: Checkpoint) -> None:
        """Write the run's calls and its cache entry with the unit of work's next commit."""
        if self.recorder.records:
            uow.calls.add_many(self.recorder.for_checkpoint(cp.id), self.recorder.bodies)
        if self._writes is not None and self._bodies is not None:
            uow.calls.add_many([], self._bodies)
            entry = CacheEntry(
                self.cache_key or "", self.node.name, self.variant.name, self._writes, cp.id
            )
            uow.node_cache.put(entry)

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.recorder.records or self.recorder.live_calls:
            out["calls"] = max(len(self.recorder.records), self.recorder.live_calls)
        if self.cache_key is not None:
            out["cache"] = {"key": self.cache_key[:16], "hit": self.hit is not None}
            if self.hit is not None:
                out["cache"]["from"] = self.hit.checkpoint_id
        return out

    @property
    def needs_write(self) -> bool:
        return bool(self.recorder.records) or self._writes is not None


def begin(
    uow_factory: UnitOfWorkFactory,
    workflow: Workflow,
    execution: Execution,
    node: Node,
    variant: NodeVariant,
    manifest: Mapping[str, str],
    ctx: Any,
) -> NodeRun:
    labels = execution.labels
    recorder = Recorder(
        node.name,
        variant.name,
        execution.id,
        CallSettings.from_labels(labels),
        uow_factory,
        ctx.record,
        batch_id=execution.batch_id,
        repeat=repeat_of(labels),
    )
    run = NodeRun(node, variant, recorder)
    settings = CacheSettings.from_labels(labels)
    if not settings.applies(node.name, getattr(node, "cache", False)):
        return run
    reads = getattr(node, "reads", None)
    keys = sorted(manifest) if reads is None else sorted(reads)
    run.cache_key = cache_key(
        workflow_hash=workflow.structural_hash,
        node=node.name,
        variant=variant.identity(),
        code=code_identity(variant.fn),
        read_hashes={k: manifest.get(k) for k in keys},
        labels=labels,
        share_repeats=settings.share_repeats,
    )
    with uow_factory(read_only=True) as uow:  # a lookup: never the write lock
        entry = uow.node_cache.get(run.cache_key)
        if entry is not None:
            values = uow.calls.bodies(list(entry.writes.values()))
            run.hit = entry
            run.hit_update = {k: values[h] for k, h in entry.writes.items()}
    return run
