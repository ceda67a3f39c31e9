"""The execution engine: runs nodes from an execution's head, writing a checkpoint after each."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from wtb_domain.claims import (
    Claim,
    ExecutionClaimed,
    ExecutionConflict,
    abandoned_here,
    forget,
    new_claim,
)
from wtb_domain.engine.context import Mode
from wtb_domain.engine.outcomes import _Head
from wtb_domain.engine.step import NodeStep
from wtb_domain.errors import StateError, WorkflowError
from wtb_domain.heartbeat import Heartbeat
from wtb_domain.model import Checkpoint, Execution, Status
from wtb_domain.ports import Retry, UnitOfWork, UnitOfWorkFactory, run_once
from wtb_domain.state import max_state_bytes
from wtb_domain.workflow import END, Workflow

_log = logging.getLogger("wtb_domain.engine")


class Engine(NodeStep):
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
                execution.touch()
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
