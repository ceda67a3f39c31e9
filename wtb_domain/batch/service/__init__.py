"""BatchService: what the Prefect tasks and flow call (the seed's IBatchTestRunner roles).

A package along its concepts: :mod:`.outcomes` (the values it hands out), :mod:`.registry`
(register, load, plan), :mod:`.groups` (run a task group), :mod:`.control` (cancel, finish,
reads). The names below are the ones other modules import from here.
"""

from __future__ import annotations

from wtb_domain.batch.service.control import BatchService
from wtb_domain.batch.service.outcomes import (
    CANCEL_POLL_S,
    BatchSummary,
    GroupOutcome,
    PreparedBatch,
    Registration,
    worker_id,
)
from wtb_domain.batch.service.registry import _resolve_cached as _resolve_cached

__all__ = [
    "CANCEL_POLL_S",
    "BatchService",
    "BatchSummary",
    "GroupOutcome",
    "PreparedBatch",
    "Registration",
    "worker_id",
]
