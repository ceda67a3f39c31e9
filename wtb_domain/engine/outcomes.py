"""How an advance ends and how it writes: the head it runs from, the retried write with its
events, and the pause / finish / fail outcomes that release the claim."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wtb_domain.claims import Claim
from wtb_domain.engine.context import error_of
from wtb_domain.events import (
    Event,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionPaused,
    NodeFailed,
    NodeTimedOut,
)
from wtb_domain.model import Checkpoint, Execution, Status
from wtb_domain.ports import Retry, UnitOfWork
from wtb_domain.redaction import mask_text
from wtb_domain.state import value_size
from wtb_domain.workflow import Node, NodeVariant


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


class EngineOutcomes:
    """The engine's writes: every node result and every end of a run goes through ``_write``."""

    _retry: Retry

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
        execution.touch()
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
