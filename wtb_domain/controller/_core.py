"""The controller's shared core: the store, the lazily built engine, advancing an execution,
new checkpoints, and resolving (and refusing) the workflow of a stored execution."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from wtb_domain.claims import Claim
from wtb_domain.errors import ExecutionError, WorkflowError
from wtb_domain.events import Event, MessageBus
from wtb_domain.ids import new_id
from wtb_domain.model import Checkpoint, Execution, Source, Status, utcnow
from wtb_domain.ports import Retry, UnitOfWorkFactory, run_once
from wtb_domain.state import max_state_bytes

if TYPE_CHECKING:  # the engine and the workflow models load with the first run, not before
    from wtb_domain.engine import Engine
    from wtb_domain.workflow import Workflow

    WorkflowLike = Workflow | str


class _ControllerCore:
    """State and helpers every part of :class:`~wtb_domain.controller.ExecutionController` uses."""

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
