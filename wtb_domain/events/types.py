"""Domain events: what happened to an execution, a node run, a batch or a regression verdict.

Every event carries an ``event_id`` (unique, time-ordered) and ``occurred_at``; both are
keyword-only with defaults, so events are built positionally from their own fields. An event
is plain JSON data (see :mod:`wtb_domain.events.codec`): it travels through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wtb_domain.ids import new_id


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """The base of every event (subscribe to it to receive all)."""

    event_id: str = field(default_factory=new_id)
    occurred_at: datetime = field(default_factory=_now)


# --- executions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionEvent(Event):
    """``batch_id``: the batch the execution runs for (set from its labels when written)."""

    execution_id: str
    batch_id: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class ExecutionStarted(ExecutionEvent):
    workflow_name: str
    variants: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionPaused(ExecutionEvent):
    paused_at: str
    checkpoint_id: str | None


@dataclass(frozen=True)
class ExecutionResumed(ExecutionEvent):
    checkpoint_id: str | None


@dataclass(frozen=True)
class ExecutionCompleted(ExecutionEvent):
    checkpoint_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionFailed(ExecutionEvent):
    node: str | None
    error_type: str
    message: str


@dataclass(frozen=True)
class ExecutionForked(ExecutionEvent):
    parent_execution_id: str
    from_checkpoint_id: str
    state_patch_keys: list[str] = field(default_factory=list)
    variant_overrides: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionRolledBack(ExecutionEvent):
    to_checkpoint_id: str


@dataclass(frozen=True)
class StateUpdated(ExecutionEvent):
    checkpoint_id: str
    keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NodeReplayed(ExecutionEvent):
    """``execution_id`` is the new (forked) execution that reruns ``node`` with ``variant``."""

    parent_execution_id: str
    from_checkpoint_id: str
    node: str
    variant: str


# --- node runs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeCompleted(ExecutionEvent):
    node: str
    variant: str
    checkpoint_id: str
    duration_ms: float


@dataclass(frozen=True)
class NodeFailed(ExecutionEvent):
    node: str
    variant: str
    error_type: str
    message: str
    duration_ms: float


@dataclass(frozen=True)
class NodeTimedOut(ExecutionEvent):
    node: str
    variant: str
    timeout_s: float


# --- batches ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchEvent(Event):
    batch_id: str


@dataclass(frozen=True)
class BatchStarted(BatchEvent):
    name: str | None
    total: int
    resumed: bool = False


@dataclass(frozen=True)
class BatchProgressed(BatchEvent):
    """A task group recorded results: ``recorded`` new ones for ``case_id``."""

    case_id: str
    recorded: int
    failed: int


@dataclass(frozen=True)
class BatchCompleted(BatchEvent):
    status: str
    total: int
    done: int
    failed: int


@dataclass(frozen=True)
class BatchCancelled(BatchEvent):
    total: int
    done: int


@dataclass(frozen=True)
class CombinationCompleted(BatchEvent):
    """Every case x repeat of one combination has a result."""

    combination: str
    results: int
    failed: int
    mean_score: float


# --- regressions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RegressionVerdict(BatchEvent):
    """``batch_id`` was judged against ``baseline_id``: not_worse, regressed or incomparable."""

    baseline_id: str | None
    status: str
    regressed: list[str] = field(default_factory=list)
    reason: str | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        ExecutionStarted,
        ExecutionPaused,
        ExecutionResumed,
        ExecutionCompleted,
        ExecutionFailed,
        ExecutionForked,
        ExecutionRolledBack,
        StateUpdated,
        NodeReplayed,
        NodeCompleted,
        NodeFailed,
        NodeTimedOut,
        BatchStarted,
        BatchProgressed,
        BatchCompleted,
        BatchCancelled,
        CombinationCompleted,
        RegressionVerdict,
    )
}
"""Every concrete event type by name (the outbox's ``event_type``)."""


def subject(event: Event) -> tuple[str | None, str | None, str | None]:
    """The (batch id, execution id, node) an event is about (None where it has none)."""
    batch_id: Any = getattr(event, "batch_id", None)
    execution_id: Any = getattr(event, "execution_id", None)
    node: Any = getattr(event, "node", None)
    return batch_id, execution_id, node
