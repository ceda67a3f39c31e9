"""The execution engine: runs nodes from an execution's head, writing a checkpoint after each."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Any

from wtb_domain.claims import (
    Claim,
    ExecutionClaimed,
    ExecutionConflict,
    abandoned_here,
    forget,
    new_claim,
)
from wtb_domain.errors import NodeError, RecordingError, StateError, WorkflowError
from wtb_domain.events import (
    Event,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionPaused,
    NodeCompleted,
    NodeFailed,
    NodeTimedOut,
)
from wtb_domain.heartbeat import Heartbeat
from wtb_domain.ids import new_id
from wtb_domain.model import Checkpoint, Execution, Source, Status, utcnow
from wtb_domain.node_call import call_node
from wtb_domain.ports import Retry, UnitOfWork, UnitOfWorkFactory, run_once
from wtb_domain.recording import node_run
from wtb_domain.recording.recorder import Recorder
from wtb_domain.redaction import mask_text
from wtb_domain.reducers import merge_update
from wtb_domain.state import (
    check_state_size,
    deltas_metadata,
    encode_update,
    max_state_bytes,
    value_size,
)
from wtb_domain.workflow import END, Node, NodeVariant, Workflow

_log = logging.getLogger(__name__)

LATENCY_METRIC = "latency_ms"
"""Sum of node run times along the checkpoint lineage, kept in every execution's metrics."""


def error_of(exc: BaseException) -> tuple[str, str]:
    """The error type and message stored for a failure; a secret the message may carry (a
    database URL's password, an API key) is masked before anything is written."""
    if isinstance(exc, NodeError):
        return exc.error_type, mask_text(exc.error_message)
    return type(exc).__name__, mask_text(str(exc))


class Mode(Enum):
    RUN = "run"
    STEP = "step"


@dataclass
class RunContext:
    """The ``ctx`` a node receives: its variant, parameters and a metric recorder."""

    node: str
    variant: str
    params: Mapping[str, Any]
    execution_id: str
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    calls: Recorder | None = field(default=None, repr=False)
    """Recorded LLM/tool calls of this node run (see :mod:`wtb_domain.recording`)."""

    def record(self, name: str, value: float) -> None:
        """Add ``value`` to the metric ``name`` for this node run."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"metric {name!r} must be a number, got {type(value).__name__}")
        self.metrics[name] = self.metrics.get(name, 0.0) + float(value)

    def _recorder(self) -> Recorder:
        if self.calls is None:
            raise RecordingError(f"node {self.node!r}: ctx has no call recorder (not run by WTB)")
        return self.calls

    def llm(self, call: Callable[..., Any], **request: Any) -> Any:
        """``call(**request)``, recorded or replayed per the run's LLM mode; JSON back."""
        return self._recorder().llm(call, **request)

    async def allm(self, call: Callable[..., Awaitable[Any]], **request: Any) -> Any:
        """The async :meth:`llm` (``await call(**request)``)."""
        return await self._recorder().allm(call, **request)

    def tool(self, name: str, fn: Callable[..., Any], args: Mapping[str, Any]) -> Any:
        """``fn(**args)``, recorded or replayed (not run) per the run's mode; JSON back."""
        return self._recorder().tool(name, fn, args)

    async def atool(
        self, name: str, fn: Callable[..., Awaitable[Any]], args: Mapping[str, Any]
    ) -> Any:
        return await self._recorder().atool(name, fn, args)


@dataclass
class _Head:
    checkpoint: Checkpoint
    state: dict[str, Any]
    sizes: dict[str, int] | None = None
    """Encoded bytes per top-level key (measured when the first node of a run needs them)."""
    next: str | None = None
    """The node the routing chose after this checkpoint, when computed already."""

    def key_sizes(self) -> dict[str, int]:
        if self.sizes is None:
            self.sizes = {k: value_size(v, node=None, key=k) for k, v in self.state.items()}
        return self.sizes


class Engine:
    """Advances executions. Every node's result is committed before the next node starts.

    One unit of work spans an ``advance`` call and commits once per node, so no transaction
    (and, on SQLite, no write lock) is held while a node runs.

    An ``advance`` claims the execution first (see :mod:`wtb_domain.claims`): a second runner
    is refused before it runs any node; every node write is a compare-and-set on the head
    that renews the claim's lease, and pausing, finishing or failing releases the claim.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        retry: Retry = run_once,
        lease_s: float | None = None,
        max_state: int | None = None,
    ) -> None:
        """``max_state``: the state size limit in bytes (default ``WTB_MAX_STATE_BYTES``,
        else 16 MiB; a bad value raises SpecError here)."""
        self._uow = uow_factory
        self._retry = retry
        self._lease_s = lease_s
        self.max_state = max_state_bytes() if max_state is None else max_state
        self._heartbeat = Heartbeat(uow_factory)

    def new_claim(self) -> Claim:
        """A claim for one run (lease: the engine's, else ``WTB_EXECUTION_LEASE_S``)."""
        return new_claim(self._lease_s)

    def advance(
        self,
        workflow: Workflow,
        execution: Execution,
        mode: Mode = Mode.RUN,
        *,
        skip_break_before: bool = False,
        split_before: Callable[[str], bool] | None = None,
        start: Checkpoint | None = None,
        claim: Claim | None = None,
    ) -> Execution:
        """Run nodes until END, a breakpoint, a step boundary, or a failure; return the result.

        Args:
            workflow: The execution's workflow.
            execution: The execution to advance from its head checkpoint.
            mode: RUN to go on, STEP to pause after one node.
            skip_break_before: Ignore a before-breakpoint on the first node (resuming).
            split_before: Returning True pauses before that node with ``paused_at`` set to
                ``split:<node>`` (the batch runner forks there, one child per variant).
            start: The head checkpoint with its state, when the caller has it already.
            claim: The claim the caller holds on the execution already (it was started
                claimed); without one the execution is claimed here first.

        Raises:
            ExecutionClaimed: Another runner holds a live claim; no node ran.
            ExecutionConflict: Another runner moved the head (before the claim, or after this
                runner's lease expired); the write of the node that ran was not kept.
                :class:`~wtb_domain.claims.ClaimLost` when a renewal found the claim taken
                over: no further node started. Either carries ``nodes_run`` (the nodes this
                run wrote before it was refused).
        """
        with self._uow() as uow:
            head = self._head(uow, execution, start)
            # End the read transaction now: on SQLite it holds the write lock (BEGIN
            # IMMEDIATE), which must not be held while the first node runs.
            uow.rollback()
            execution.status = Status.RUNNING
            execution.paused_at = None
            execution.error_type = execution.error_message = execution.error_traceback = None
            if claim is None:
                claim = self.new_claim()
                execution.updated_at = utcnow()
                try:
                    self._claim(uow, execution, claim)
                except BaseException:
                    forget(claim)
                    raise
            self._heartbeat.add(execution.id, claim)
            released = False
            ran, hits = execution.nodes_run, execution.cache_hits
            try:
                result = self._loop(
                    uow, workflow, execution, mode, skip_break_before, split_before, head, claim
                )
                released = True
                return result
            except (ExecutionClaimed, ExecutionConflict) as exc:
                # refused after some nodes were written: the caller still counts those
                exc.nodes_run = execution.nodes_run - ran
                exc.cache_hits = execution.cache_hits - hits
                raise
            finally:
                self._heartbeat.remove(execution.id, claim)
                if not released:
                    self._drop(execution.id, claim)
                forget(claim)

    def _claim(self, uow: UnitOfWork, execution: Execution, claim: Claim) -> None:
        """Claim the execution; take over a claim this process abandoned (a run that gave up
        when the store failed), which no thread here runs any more."""
        try:
            self._write(uow, execution, lambda: uow.claim_execution(execution, claim))
        except ExecutionClaimed as exc:
            owner = exc.owner
            if not abandoned_here(owner):
                raise
        else:
            return
        self._write(uow, execution, lambda: uow.claim_execution(execution, claim, owner))

    def _drop(self, execution_id: str, claim: Claim) -> None:
        """After an unexpected error: free the claim (best effort) so a resume need not wait
        for the lease to expire."""
        try:
            with self._uow() as uow:
                uow.drop_claim(execution_id, claim)
        except Exception as exc:  # the store is failing: the lease expires on its own
            _log.debug("could not drop the claim on %s: %s", execution_id, exc)

    def _loop(
        self,
        uow: UnitOfWork,
        workflow: Workflow,
        execution: Execution,
        mode: Mode,
        skip_break_before: bool,
        split_before: Callable[[str], bool] | None,
        head: _Head,
        claim: Claim,
    ) -> Execution:
        first = True
        execution.head = replace(head.checkpoint, state=head.state)
        while True:
            try:
                nxt = head.next or workflow.next_node(head.checkpoint.node, head.state)
            except WorkflowError as exc:
                return self._fail(uow, claim, execution, head.checkpoint.node, exc, "")
            if nxt == END:
                return self._finish(uow, claim, execution, head)
            if nxt in execution.break_before and not (first and skip_break_before):
                return self._pause(uow, claim, execution, f"before:{nxt}", head)
            if split_before is not None and split_before(nxt):
                return self._pause(uow, claim, execution, f"split:{nxt}", head)
            if head.checkpoint.step >= workflow.max_steps:
                err = WorkflowError(
                    f"execution exceeded max_steps={workflow.max_steps} before node {nxt!r} "
                    "(a cycle that never reaches END?); raise GraphBuilder(max_steps=...) "
                    "or fix the routing"
                )
                return self._fail(uow, claim, execution, nxt, err, "")
            first = False
            # No node starts on a lapsed or lapsing lease; a claim taken over stops the run here.
            self._heartbeat.check(execution.id, claim)
            result = self._run_node(uow, claim, workflow, execution, nxt, head, mode, split_before)
            if isinstance(result, Execution):
                return result
            head = result

    @staticmethod
    def _head(uow: UnitOfWork, execution: Execution, start: Checkpoint | None) -> _Head:
        if start is not None and start.state is not None:
            return _Head(start, dict(start.state))
        if execution.head_checkpoint_id is None:
            raise WorkflowError(f"execution {execution.id} has no checkpoint to continue from")
        cp = uow.checkpoints.get(execution.head_checkpoint_id)
        if cp.state is None:
            raise StateError(f"checkpoint {cp.id} of execution {execution.id} has no stored state")
        return _Head(cp, cp.state)

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
            created_at=utcnow(),
        )
        execution.head_checkpoint_id = cp.id
        execution.metrics = totals
        execution.updated_at = cp.created_at

        # The next node sees exactly what a resumed run would read back: the JSON round trip.
        state = dict(head.state)
        state.update(encoded.decoded)
        stop, nxt = self._stop_after(workflow, execution, mode, split_before, name, state)
        done = NodeCompleted(execution.id, name, variant.name, cp.id, duration_ms)
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

    def _write(
        self,
        uow: UnitOfWork,
        execution: Execution,
        write_and_commit: Callable[[], None],
        *events: Event,
    ) -> None:
        """Write and commit, with the execution's unwritten events and ``events`` (outbox and
        audit rows in the same transaction); on a transient store error roll back and do it
        all again. The events join ``execution.events`` once written."""
        events = tuple(execution.stamp(e) for e in events)
        pending = [*execution.unrecorded_events(), *events]

        def attempt() -> None:
            try:
                uow.record(pending)
                write_and_commit()
            except BaseException:
                uow.rollback()
                raise

        self._retry(attempt)
        execution.events.extend(events)
        execution.mark_recorded()

    @staticmethod
    def _node_failed(
        execution: Execution, node: Node, variant: NodeVariant, exc: BaseException, started: float
    ) -> Event:
        if isinstance(exc, TimeoutError) and node.timeout_s is not None:
            return NodeTimedOut(execution.id, node.name, variant.name, node.timeout_s)
        ms = (time.perf_counter() - started) * 1000.0
        etype, message = error_of(exc)
        return NodeFailed(execution.id, node.name, variant.name, etype, message, ms)

    def _save(
        self, uow: UnitOfWork, claim: Claim, execution: Execution, *events: Event
    ) -> Execution:
        """Write the paused / finished / failed execution and release its claim."""
        execution.updated_at = utcnow()
        self._write(uow, execution, lambda: uow.release_execution(execution, claim), *events)
        return execution

    def _pause(
        self, uow: UnitOfWork, claim: Claim, execution: Execution, where: str, head: _Head
    ) -> Execution:
        execution.status = Status.PAUSED
        execution.paused_at = where
        event = ExecutionPaused(execution.id, where, head.checkpoint.id)
        return self._save(uow, claim, execution, event)

    def _finish(
        self, uow: UnitOfWork, claim: Claim, execution: Execution, head: _Head
    ) -> Execution:
        execution.status = Status.COMPLETED
        event = ExecutionCompleted(execution.id, head.checkpoint.id, dict(execution.metrics))
        return self._save(uow, claim, execution, event)

    def _fail(
        self,
        uow: UnitOfWork,
        claim: Claim,
        execution: Execution,
        node: str | None,
        exc: BaseException,
        tb: str,
        node_event: Event | None = None,
    ) -> Execution:
        execution.status = Status.FAILED
        error_type, message = error_of(exc)
        execution.error_type = error_type
        execution.error_message = message
        execution.error_traceback = mask_text(tb) if tb else None
        execution.paused_at = f"failed:{node}" if node else None
        event = ExecutionFailed(execution.id, node, error_type, message)
        if node_event is None:
            return self._save(uow, claim, execution, event)
        return self._save(uow, claim, execution, node_event, event)
