"""One node's run: call it, merge and encode its update, write its checkpoint, and tell
whether the run stops after it."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from wtb_domain.claims import Claim
from wtb_domain.engine.context import LATENCY_METRIC, Mode, RunContext
from wtb_domain.engine.outcomes import EngineOutcomes, _Head
from wtb_domain.errors import StateError
from wtb_domain.events import Event, ExecutionCompleted, ExecutionPaused, NodeCompleted
from wtb_domain.heartbeat import Heartbeat
from wtb_domain.ids import new_id
from wtb_domain.model import Checkpoint, Execution, Source, Status
from wtb_domain.node_call import call_node
from wtb_domain.ports import UnitOfWork, UnitOfWorkFactory
from wtb_domain.recording import node_run
from wtb_domain.reducers import merge_update
from wtb_domain.state import check_state_size, deltas_metadata, encode_update
from wtb_domain.workflow import END, Workflow


class NodeStep(EngineOutcomes):
    """Runs one node of an execution and commits its checkpoint."""

    _uow: UnitOfWorkFactory
    _heartbeat: Heartbeat
    max_state: int

    def _run_node(
        self,
        uow: UnitOfWork,
        claim: Claim,
        workflow: Workflow,
        execution: Execution,
        name: str,
        head: _Head,
        mode: Mode = Mode.RUN,
        split_before: Callable[[str], bool] | None = None,
    ) -> _Head | Execution:
        """Run one node and write its checkpoint. When the run ends after it (END, a
        breakpoint, a split, a step), the same write pauses or finishes the execution and
        releases the claim: one write, and the Execution is returned."""
        node = workflow.node(name)
        variant = node.variant(execution.variants.get(name))
        step = head.checkpoint.step + 1
        params = MappingProxyType(dict(variant.params))
        ctx = RunContext(name, variant.name, params, execution.id, step)
        started = time.perf_counter()
        try:
            run = node_run.begin(
                self._uow, workflow, execution, node, variant, head.checkpoint.manifest, ctx
            )
            ctx.calls = run.recorder
            update = run.call(head.state, ctx, call_node)
            if update is None:
                update = {}
            if not isinstance(update, Mapping):
                raise StateError(
                    f"node {name!r} returned {type(update).__name__}; "
                    "return a dict of the state keys it changes (or None)"
                )
            run.returned(update)  # what the cache keeps: the update before reducers
            if workflow.reducers:
                update = merge_update(workflow.reducers, head.state, update, node=name)
            encoded = encode_update(
                head.checkpoint.manifest,
                update,
                node=name,
                previous=head.state,
                deltas=head.checkpoint.metadata.get("deltas"),
            )
            check_state_size(head.key_sizes(), encoded.sizes, node=name, limit=self.max_state)
        except StateError as exc:
            node_event = self._node_failed(execution, node, variant, exc, started)
            return self._fail(uow, claim, execution, name, exc, "", node_event)
        except Exception as exc:  # the node's own error: recorded, the run stops here
            node_event = self._node_failed(execution, node, variant, exc, started)
            tb = traceback.format_exc()
            return self._fail(uow, claim, execution, name, exc, tb, node_event)
        duration_ms = (time.perf_counter() - started) * 1000.0
        totals = dict(head.checkpoint.metadata.get("totals", {}))
        for metric, value in (*ctx.metrics.items(), (LATENCY_METRIC, duration_ms)):
            totals[metric] = round(totals.get(metric, 0.0) + value, 6)
        cp = Checkpoint(
            id=new_id(),
            execution_id=execution.id,
            parent_id=head.checkpoint.id,
            step=step,
            node=name,
            variant=variant.name,
            source=Source.NODE,
            manifest=encoded.manifest,
            metadata={
                "duration_ms": round(duration_ms, 3),
                "metrics": ctx.metrics,
                "writes": encoded.changed_keys,
                "totals": totals,
                **deltas_metadata(encoded),
                **run.metadata(),
            },
            created_at=execution.next_write_time(),
        )
        execution.head_checkpoint_id = cp.id
        execution.metrics = totals
        execution.touch(cp.created_at)

        # The next node sees exactly what a resumed run would read back: the JSON round trip.
        state = dict(head.state)
        state.update(encoded.decoded)
        stop, nxt = self._stop_after(workflow, execution, mode, split_before, name, state)
        # The event is its checkpoint (``adapters.sql.node_events`` reads it back from there):
        # the checkpoint's id, time and rounded duration.
        done = NodeCompleted(
            execution.id,
            name,
            variant.name,
            cp.id,
            cp.metadata["duration_ms"],
            event_id=cp.id,
            occurred_at=cp.created_at,
        )
        events: tuple[Event, ...] = (done,)
        if stop is not None:
            status, where = stop
            execution.status = status
            execution.paused_at = where
            if status is Status.COMPLETED:
                events = (done, ExecutionCompleted(execution.id, cp.id, dict(totals)))
            else:
                events = (done, ExecutionPaused(execution.id, where or "", cp.id))
        release = stop is not None

        def write() -> None:
            if run.needs_write:  # calls and cache entry commit with the checkpoint
                run.stage(uow, cp)
            uow.save_node(cp, encoded.new_blobs, execution, claim, release=release)

        sent = time.monotonic()  # the renewed lease starts no earlier than this
        self._write(uow, execution, write, *events)
        if not release:
            self._heartbeat.renewed(execution.id, claim, sent)
        execution.nodes_run += 1
        execution.cache_hits += run.hit is not None
        execution.head = replace(cp, state=state)
        if stop is not None:
            return execution
        return _Head(cp, state, {**head.key_sizes(), **encoded.sizes}, nxt)

    @staticmethod
    def _stop_after(
        workflow: Workflow,
        execution: Execution,
        mode: Mode,
        split_before: Callable[[str], bool] | None,
        name: str,
        state: Mapping[str, Any],
    ) -> tuple[tuple[Status, str | None] | None, str | None]:
        """Whether the run ends after node ``name`` (the status and ``paused_at`` it ends
        with), and the next node when the routing gave one; a routing error is left to the
        loop (which handles it after this node's write, as without this look-ahead)."""
        if name in execution.break_after:
            return (Status.PAUSED, f"after:{name}"), None
        if mode is Mode.STEP:
            return (Status.PAUSED, f"step:{name}"), None
        try:
            nxt = workflow.next_node(name, state)
        except Exception:  # raised again by the loop, after this node's write
            return None, None
        if nxt == END:
            return (Status.COMPLETED, None), nxt
        if nxt in execution.break_before:
            return (Status.PAUSED, f"before:{nxt}"), nxt
        if split_before is not None and split_before(nxt):
            return (Status.PAUSED, f"split:{nxt}"), nxt
        return None, nxt
