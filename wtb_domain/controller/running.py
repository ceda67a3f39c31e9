"""Run and drive: start (or only store) an execution, resume, step, drive it on."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from wtb_domain.claims import Claim, forget
from wtb_domain.controller.reads import _Reads
from wtb_domain.errors import WorkflowError
from wtb_domain.events import ExecutionResumed, ExecutionStarted
from wtb_domain.ids import new_id
from wtb_domain.model import Checkpoint, Execution, Source
from wtb_domain.state import check_state_size, encode_update

if TYPE_CHECKING:
    from wtb_domain.controller._core import WorkflowLike
    from wtb_domain.workflow import Workflow


class _Runs(_Reads):
    """Operations that start an execution or move it forward from its head."""

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
