"""ExecutionController: run, pause at breakpoints, resume, step, roll back, fork, replay, diff.

The class is put together from its concepts: :mod:`.running` (run, create, resume, step,
drive), :mod:`.time_travel` (rollback, update_state, fork, replay), :mod:`.reads` (get,
checkpoint, state, history, diff), over :mod:`._core` (store, engine, shared helpers).
"""

from __future__ import annotations

from wtb_domain.controller.running import _Runs
from wtb_domain.controller.time_travel import _TimeTravel

__all__ = ["ExecutionController"]


class ExecutionController(_Runs, _TimeTravel):
    """The time-travel API over one store. Every operation returns the resulting Execution."""
