"""Reads: an execution, a checkpoint, the head state, the history, a diff of two states."""

from __future__ import annotations

from typing import Any

from wtb_domain.controller._core import _ControllerCore
from wtb_domain.model import Checkpoint, Execution
from wtb_domain.state import StateDiff, diff_states


class _Reads(_ControllerCore):
    """Read-only operations (each in a read-only unit of work)."""

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
