"""ExecutionController: run, pause at breakpoints, resume, step, roll back, fork, replay, diff."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from wtb_domain.claims import Claim, forget
from wtb_domain.errors import ExecutionError, WorkflowError
from wtb_domain.events import (
    Event,
    ExecutionForked,
    ExecutionResumed,
    ExecutionRolledBack,
    ExecutionStarted,
    MessageBus,
    NodeReplayed,
    StateUpdated,
)
from wtb_domain.ids import new_id
from wtb_domain.model import Checkpoint, Execution, Source, Status, utcnow
from wtb_domain.ports import Retry, UnitOfWorkFactory, run_once
from wtb_domain.state import (
    StateDiff,
    check_state_size,
    deltas_metadata,
    diff_states,
    encode_update,
    max_state_bytes,
)

if TYPE_CHECKING:  # the engine and the workflow models load with the first run, not before
    from wtb_domain.engine import Engine
    from wtb_domain.workflow import Workflow

    WorkflowLike = Workflow | str


class ExecutionController:
    """The time-travel API over one store. Every operation returns the resulting Execution."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        bus: MessageBus | None = None,
        retry: Retry = run_once,
        lease_s: float | None = None,
        publish: Callable[[Sequence[Event]], None] | None = None,
    ) -> None:
        """``publish`` gets the events of each committed change (default: ``bus.publish``;
        the bootstrap passes an :class:`~wtb_domain.outbox.Publisher`, which also marks them
        published in the outbox)."""
        self._uow = uow_factory
        self._bus = bus or MessageBus()
        self._publish = publish or self._bus.publish
        self._engine_args = (uow_factory, retry, lease_s, max_state_bytes())
        self._engine_obj: Engine | None = None
        self._engine_lock = threading.Lock()

    @property
    def _engine(self) -> Engine:
        """The engine, built on first use (a bad ``WTB_MAX_STATE_BYTES`` fails in __init__)."""
        with self._engine_lock:
            if self._engine_obj is None:
                from wtb_domain.engine import Engine

                self._engine_obj = Engine(*self._engine_args)
            return self._engine_obj

    def run(
        self,
        workflow: WorkflowLike,
        input: Mapping[str, Any],
        *,
        variants: Mapping[str, str] | None = None,
        break_before: Iterable[str] = (),
        break_after: Iterable[str] = (),
        execution_id: str | None = None,
        labels: Mapping[str, Any] | None = None,
        split_before: Callable[[str], bool] | None = None,
    ) -> Execution:
        """Start an execution from ``input`` and run it until END, a breakpoint or a failure
        (or a split point: see :meth:`drive`). Raises ExecutionExists if ``execution_id`` is
        stored already (nothing ran)."""
        wf = self._workflow(workflow)
        claim = self._engine.new_claim()
        try:
            execution, start = self._create(
                wf, input, variants, break_before, break_after, execution_id, labels, claim
            )
        except BaseException:
            forget(claim)
            raise
        return self._advance(
            wf, execution, "run", start=start, claim=claim, split_before=split_before
        )

    def create(
        self,
        workflow: WorkflowLike,
        input: Mapping[str, Any],
        *,
        variants: Mapping[str, str] | None = None,
        break_before: Iterable[str] = (),
        break_after: Iterable[str] = (),
        execution_id: str | None = None,
        labels: Mapping[str, Any] | None = None,
    ) -> Execution:
        """Store a new execution and its input checkpoint without running any node."""
        wf = self._workflow(workflow)
        execution, _ = self._create(
            wf, input, variants, break_before, break_after, execution_id, labels
        )
        return execution

    def _create(
        self,
        wf: Workflow,
        input: Mapping[str, Any],
        variants: Mapping[str, str] | None,
        break_before: Iterable[str],
        break_after: Iterable[str],
        execution_id: str | None,
        labels: Mapping[str, Any] | None,
        claim: Claim | None = None,
    ) -> tuple[Execution, Checkpoint]:
        if not isinstance(input, Mapping):
            raise WorkflowError(f"input must be a JSON object (dict), got {type(input).__name__}")
        selection = dict(variants or {})
        wf.check_variants(selection)
        before, after = list(break_before), list(break_after)
        for name in (*before, *after):
            wf.node(name)
        execution = Execution(
            id=execution_id or new_id(),
            workflow_name=wf.name,
            workflow_hash=wf.structural_hash,
            workflow_ref=getattr(wf, "ref", None),
            variants=selection,
            break_before=before,
            break_after=after,
            labels=dict(labels or {}),
        )
        encoded = encode_update({}, input, node=None)
        check_state_size({}, encoded.sizes, node=None, limit=self._engine_args[3])
        cp = self._new_checkpoint(execution.id, None, 0, None, None, Source.INPUT, encoded.manifest)
        execution.head_checkpoint_id = cp.id
        execution.emit(ExecutionStarted(execution.id, wf.name, selection))
        with self._uow() as uow:
            uow.record(execution.unrecorded_events())
            uow.start_execution(execution, cp, encoded.new_blobs, claim)
            execution.mark_recorded()
        self._publish(execution.pop_events())
        return execution, replace(cp, state=encoded.decoded)

    def resume(self, execution_id: str, workflow: WorkflowLike | None = None) -> Execution:
        """Continue a paused (or interrupted) execution from its head checkpoint.

        Raises ExecutionClaimed (an ExecutionError naming the owner) before running any node
        while another runner holds the execution; an execution left ``running`` by a dead
        process is resumable once its claim's lease (``WTB_EXECUTION_LEASE_S``) expires.
        """
        execution = self.get(execution_id)
        self._require_resumable(execution)
        wf = self._workflow_for(execution, workflow)
        execution.emit(ExecutionResumed(execution.id, execution.head_checkpoint_id))
        skip = bool(execution.paused_at and execution.paused_at.startswith("before:"))
        return self._advance(wf, execution, "run", skip_break_before=skip)

    def step(self, execution_id: str, workflow: WorkflowLike | None = None) -> Execution:
        """Run exactly one node of a paused execution, then pause again."""
        execution = self.get(execution_id)
        self._require_resumable(execution)
        wf = self._workflow_for(execution, workflow)
        return self._advance(wf, execution, "step", skip_break_before=True)

    def rollback(self, checkpoint_id: str) -> Execution:
        """Move the execution's head to ``checkpoint_id``; later checkpoints stay as history.

        Refused (ExecutionError) while another runner advances the execution.
        """
        with self._uow() as uow:
            cp = uow.checkpoints.get(checkpoint_id)
            execution = uow.executions.get(cp.execution_id)
            _refuse_langgraph(execution, "rolled back")
            expected = execution.head_checkpoint_id
            execution.head_checkpoint_id = cp.id
            execution.metrics = dict(cp.metadata.get("totals", {}))
            execution.status = Status.PAUSED
            execution.paused_at = f"rollback:{cp.step}"
            execution.error_type = execution.error_message = execution.error_traceback = None
            execution.updated_at = utcnow()
            execution.emit(ExecutionRolledBack(execution.id, cp.id))
            uow.record(execution.unrecorded_events())
            uow.move_head(execution, expected)
            execution.mark_recorded()
        self._publish(execution.pop_events())
        return execution

    def update_state(self, execution_id: str, state_patch: Mapping[str, Any]) -> Execution:
        """Edit the state at the head of a paused or failed execution, in place.

        Writes a checkpoint with ``source=update`` after the head (same step and node, so the
        routing after it is recomputed from the edited state) and moves the head to it.
        """
        with self._uow() as uow:
            execution = uow.executions.get(execution_id)
            _refuse_langgraph(execution, "edited")
            if execution.status not in (Status.PAUSED, Status.FAILED, Status.PENDING):
                raise ExecutionError(
                    f"execution {execution_id} is {execution.status.value}; only a paused or "
                    "failed execution can be edited (fork a completed one instead)"
                )
            if execution.head_checkpoint_id is None:
                raise ExecutionError(f"execution {execution_id} has no checkpoint to edit yet")
            head = uow.checkpoints.get(execution.head_checkpoint_id)
            deltas = head.metadata.get("deltas")
            encoded = encode_update(head.manifest, state_patch, node=None, deltas=deltas)
            cp = self._new_checkpoint(
                execution.id,
                head.id,
                head.step,
                head.node,
                head.variant,
                Source.UPDATE,
                encoded.manifest,
                {
                    "patched": encoded.changed_keys,
                    "totals": head.metadata.get("totals", {}),
                    **deltas_metadata(encoded),
                },
            )
            execution.head_checkpoint_id = cp.id
            execution.updated_at = cp.created_at
            execution.emit(StateUpdated(execution.id, cp.id, encoded.changed_keys))
            uow.record(execution.unrecorded_events())
            # A compare-and-set on the head read above, refused while a runner holds a claim.
            uow.save_node(cp, encoded.new_blobs, execution)
            execution.mark_recorded()
        self._publish(execution.pop_events())
        return execution

    def fork(
        self,
        checkpoint_id: str,
        state_patch: Mapping[str, Any] | None = None,
        variant_overrides: Mapping[str, str] | None = None,
        *,
        workflow: WorkflowLike | None = None,
        run: bool = True,
        break_before: Iterable[str] = (),
        break_after: Iterable[str] = (),
        execution_id: str | None = None,
        labels: Mapping[str, Any] | None = None,
        more_labels: Mapping[str, Any] | None = None,
        split_before: Callable[[str], bool] | None = None,
        parent: Execution | None = None,
        _replayed: tuple[str, str] | None = None,
    ) -> Execution:
        """Start a new execution from ``checkpoint_id`` with an edited state and/or variants.

        The fork's first checkpoint has the original as parent (``source=fork``); the routing
        after it is recomputed from the patched state. With ``run=False`` the fork stays paused.
        ``labels`` replace the parent's labels; ``more_labels`` are set over them (e.g. the
        ``llm`` call mode, the ``cache`` settings).
        ``parent``: the execution whose in-memory head (:attr:`Execution.head`, as this
        process's run left it) is ``checkpoint_id``; then the source is not read back.
        Raises ExecutionExists if ``execution_id`` is stored already (nothing ran).
        """
        known = parent.head if parent is not None else None
        if parent is not None and known is not None and known.id == checkpoint_id:
            source = known
        else:
            with self._uow() as uow:
                source = uow.checkpoints.get(checkpoint_id)
                parent = uow.executions.get(source.execution_id)
        wf = self._workflow_for(parent, workflow)
        overrides = dict(variant_overrides or {})
        wf.check_variants(overrides)
        patch = dict(state_patch or {})
        deltas = source.metadata.get("deltas")
        encoded = encode_update(source.manifest, patch, node=None, deltas=deltas)
        execution = Execution(
            id=execution_id or new_id(),
            workflow_name=parent.workflow_name,
            workflow_hash=wf.structural_hash,
            workflow_ref=parent.workflow_ref,
            status=Status.PAUSED,
            variants={**parent.variants, **overrides},
            break_before=list(break_before),
            break_after=list(break_after),
            paused_at=f"fork:{source.step}",
            parent_execution_id=parent.id,
            forked_from_checkpoint_id=source.id,
            labels={**(labels or parent.labels), **(more_labels or {})},
        )
        totals = dict(source.metadata.get("totals", {}))
        execution.metrics = dict(totals)
        cp = self._new_checkpoint(
            execution.id,
            source.id,
            source.step,
            source.node,
            source.variant,
            Source.FORK,
            encoded.manifest,
            {
                "forked_from": source.id,
                "patched": encoded.changed_keys,
                "totals": totals,
                **deltas_metadata(encoded),
            },
        )
        execution.head_checkpoint_id = cp.id
        execution.emit(
            ExecutionForked(execution.id, parent.id, source.id, sorted(patch), overrides)
        )
        if _replayed is not None:
            node, variant = _replayed
            execution.emit(NodeReplayed(execution.id, parent.id, source.id, node, variant))
        claim = self._engine.new_claim() if run else None
        try:
            with self._uow() as uow:
                uow.record(execution.unrecorded_events())
                uow.start_execution(execution, cp, encoded.new_blobs, claim)
                execution.mark_recorded()
        except BaseException:
            if claim is not None:
                forget(claim)
            raise
        self._publish(execution.pop_events())
        start = replace(cp, state={**(source.state or {}), **encoded.decoded})
        execution.head = start
        if claim is None:
            return execution
        return self._advance(
            wf, execution, "run", claim=claim, start=start, split_before=split_before
        )

    def replay(
        self,
        checkpoint_id: str,
        node: str,
        variant: str,
        *,
        workflow: WorkflowLike | None = None,
        more_labels: Mapping[str, Any] | None = None,
    ) -> Execution:
        """Rerun ``node`` with another variant from ``checkpoint_id`` (NodeReplacer).

        ``checkpoint_id`` may be the checkpoint before the node or the one the node wrote (then
        its parent is used). Returns the new, forked execution run to its end.
        """
        with self._uow() as uow:
            cp = uow.checkpoints.get(checkpoint_id)
            if cp.source is Source.NODE and cp.node == node and cp.parent_id is not None:
                cp = uow.checkpoints.get(cp.parent_id)
            parent = uow.executions.get(cp.execution_id)
        wf = self._workflow_for(parent, workflow)
        wf.node(node).variant(variant)
        if wf.next_node(cp.node, cp.state or {}) != node:
            raise WorkflowError(
                f"node {node!r} does not run next after checkpoint {cp.id} (step {cp.step}, "
                f"after {cp.node or 'the input'}); pass the checkpoint written just before "
                f"{node!r}, or the one {node!r} wrote"
            )
        return self.fork(
            cp.id,
            variant_overrides={node: variant},
            workflow=wf,
            more_labels=more_labels,
            _replayed=(node, variant),
        )

    def drive(
        self,
        execution: Execution,
        workflow: Workflow,
        split_before: Callable[[str], bool] | None = None,
    ) -> Execution:
        """Run an unfinished execution on until END, a failure, or a split point."""
        if execution.finished:
            return execution
        return self._advance(workflow, execution, "run", split_before=split_before)

    def get(self, execution_id: str) -> Execution:
        with self._uow(read_only=True) as uow:
            return uow.executions.get(execution_id)

    def checkpoint(self, checkpoint_id: str) -> Checkpoint:
        with self._uow(read_only=True) as uow:
            return uow.checkpoints.get(checkpoint_id)

    def state(self, execution_id: str) -> dict[str, Any]:
        """The state at the execution's head."""
        execution = self.get(execution_id)
        if execution.head_checkpoint_id is None:
            return {}
        state = self.checkpoint(execution.head_checkpoint_id).state
        return dict(state or {})

    def history(self, execution_id: str) -> list[Checkpoint]:
        """Every checkpoint of the execution in creation order (states not loaded)."""
        with self._uow(read_only=True) as uow:
            uow.executions.get(execution_id)
            return uow.checkpoints.history(execution_id)

    def diff(self, checkpoint_a: str, checkpoint_b: str) -> StateDiff:
        """Key-by-key difference from checkpoint A's state to checkpoint B's."""
        with self._uow(read_only=True) as uow:
            a = uow.checkpoints.get(checkpoint_a)
            b = uow.checkpoints.get(checkpoint_b)
        return diff_states(a.state or {}, b.state or {})

    def _advance(
        self,
        wf: Workflow,
        execution: Execution,
        mode: Literal["run", "step"],
        *,
        skip_break_before: bool = False,
        split_before: Callable[[str], bool] | None = None,
        start: Checkpoint | None = None,
        claim: Claim | None = None,
    ) -> Execution:
        from wtb_domain.engine import Mode

        try:
            return self._engine.advance(
                wf,
                execution,
                Mode(mode),
                skip_break_before=skip_break_before,
                split_before=split_before,
                start=start,
                claim=claim,
            )
        finally:
            self._publish(execution.pop_events())

    @staticmethod
    def _new_checkpoint(
        execution_id: str,
        parent_id: str | None,
        step: int,
        node: str | None,
        variant: str | None,
        source: Source,
        manifest: dict[str, str],
        metadata: dict[str, Any] | None = None,
    ) -> Checkpoint:
        return Checkpoint(
            id=new_id(),
            execution_id=execution_id,
            parent_id=parent_id,
            step=step,
            node=node,
            variant=variant,
            source=source,
            manifest=manifest,
            metadata=metadata or {},
            created_at=utcnow(),
        )

    @staticmethod
    def _require_resumable(execution: Execution) -> None:
        if execution.status in (Status.COMPLETED, Status.CANCELLED):
            raise ExecutionError(
                f"execution {execution.id} is {execution.status.value}; fork or roll back to "
                "continue from one of its checkpoints"
            )

    @staticmethod
    def _workflow(workflow: WorkflowLike) -> Workflow:
        from wtb_domain.workflow import load_workflow

        return load_workflow(workflow) if isinstance(workflow, str) else workflow

    def _workflow_for(self, execution: Execution, workflow: WorkflowLike | None) -> Workflow:
        if workflow is None:
            _refuse_langgraph(execution, "run by WTB")
        if workflow is None:
            if not execution.workflow_ref:
                raise WorkflowError(
                    f"execution {execution.id} was started from a Workflow object without an "
                    "import reference; pass workflow=... (or start it with a 'module:attr' ref)"
                )
            workflow = execution.workflow_ref
        wf = self._workflow(workflow)
        if wf.structural_hash != execution.workflow_hash:
            raise WorkflowError(
                f"workflow {wf.name!r} changed since execution {execution.id} started "
                f"(structure hash {wf.structural_hash} != {execution.workflow_hash}); "
                "fork from a checkpoint with the new workflow's run instead"
            )
        return wf


def _refuse_langgraph(execution: Execution, action: str) -> None:
    """A LangGraph thread (written by ``WtbCheckpointSaver``) is LangGraph's to advance."""
    if "langgraph" in execution.labels:
        raise WorkflowError(
            f"execution {execution.id} is a LangGraph thread and cannot be {action}; fork it "
            "with `wtb fork CP --set ...` (or WtbCheckpointSaver.fork) and continue the new "
            "thread in LangGraph, or pass a checkpoint_id in LangGraph's config to go back"
        )
