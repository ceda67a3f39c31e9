"""Time travel: roll back, edit the head state, fork from a checkpoint, replay a node."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from wtb_domain.claims import forget
from wtb_domain.controller._core import _ControllerCore, _refuse_langgraph
from wtb_domain.errors import ExecutionError, WorkflowError
from wtb_domain.events import ExecutionForked, ExecutionRolledBack, NodeReplayed, StateUpdated
from wtb_domain.ids import new_id
from wtb_domain.model import Execution, Source, Status
from wtb_domain.state import deltas_metadata, encode_update

if TYPE_CHECKING:
    from wtb_domain.controller._core import WorkflowLike


class _TimeTravel(_ControllerCore):
    """Operations that move a head back, edit it, or branch a new execution off a checkpoint."""

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
            execution.touch()
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
            execution.touch(cp.created_at)
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
