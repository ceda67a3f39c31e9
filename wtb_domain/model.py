"""Domain records: executions, checkpoints and audit entries."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from wtb_domain.events import Event, ExecutionEvent


def utcnow() -> datetime:
    return datetime.now(UTC)


_TICK = timedelta(microseconds=1)  # the stores keep microseconds


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Source(StrEnum):
    """Why a checkpoint was written (LangGraph's ``metadata.source``)."""

    INPUT = "input"
    NODE = "node"
    UPDATE = "update"
    FORK = "fork"


@dataclass(frozen=True)
class Checkpoint:
    """The state after a step. ``node`` is the node that produced it (None for the input).

    ``manifest`` maps each top-level state key to the content hash of its value; ``state`` is
    filled when the checkpoint is read on its own and left ``None`` in history listings.
    """

    id: str
    execution_id: str
    parent_id: str | None
    step: int
    node: str | None
    variant: str | None
    source: Source
    manifest: dict[str, str]
    metadata: dict[str, Any]
    created_at: datetime
    state: dict[str, Any] | None = None


@dataclass
class Execution:
    """One run of a workflow with a fixed variant selection; its head points at a checkpoint."""

    id: str
    workflow_name: str
    workflow_hash: str
    workflow_ref: str | None = None
    status: Status = Status.PENDING
    variants: dict[str, str] = field(default_factory=dict)
    break_before: list[str] = field(default_factory=list)
    break_after: list[str] = field(default_factory=list)
    head_checkpoint_id: str | None = None
    paused_at: str | None = None
    parent_execution_id: str | None = None
    forked_from_checkpoint_id: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    events: list[Event] = field(default_factory=list, compare=False, repr=False)
    nodes_run: int = field(default=0, compare=False, repr=False)
    """Nodes this process ran for the execution (not stored)."""
    cache_hits: int = field(default=0, compare=False, repr=False)
    """Of ``nodes_run``, how many the node result cache served (not stored)."""
    recorded: int = field(default=0, init=False, compare=False, repr=False)
    """How many of ``events`` were written with a store write (outbox + audit; not stored)."""
    head: Checkpoint | None = field(default=None, compare=False, repr=False)
    """The head checkpoint with its state, when the runner that last moved it holds it in
    memory (not stored): a fork or a scorer then need not read it back."""

    @property
    def finished(self) -> bool:
        return self.status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    def touch(self, at: datetime | None = None) -> datetime:
        """Set ``updated_at`` to ``at`` (default: now), never backwards: a runner whose clock
        is behind the previous runner's does not move it back."""
        self.updated_at = max(at or utcnow(), self.updated_at)
        return self.updated_at

    def next_write_time(self) -> datetime:
        """A time for a checkpoint written now: later than any write before (``updated_at``)
        even when this host's clock is behind the previous runner's. Node events are ordered
        by it (``adapters.sql.node_events``: a publication mark is a time)."""
        return max(utcnow(), self.updated_at + _TICK)

    def pop_events(self) -> list[Event]:
        """The events written with the execution's store writes (to publish), now forgotten;
        events no write carried (the write was refused) are dropped."""
        events = self.events[: self.recorded]
        self.events, self.recorded = [], 0
        return events

    @property
    def batch_id(self) -> str | None:
        """The batch this execution runs for (its ``batch_test_id`` label), if any."""
        value = self.labels.get("batch_test_id")
        return value if isinstance(value, str) else None

    def stamp(self, event: Event) -> Event:
        """``event`` with this execution's batch id (for the audit trail's batch filter)."""
        batch_id = self.batch_id
        if batch_id is not None and isinstance(event, ExecutionEvent) and event.batch_id is None:
            return replace(event, batch_id=batch_id)
        return event

    def emit(self, event: Event) -> None:
        """Add an event for the next store write (see ``UnitOfWork.record``)."""
        self.events.append(self.stamp(event))

    def unrecorded_events(self) -> list[Event]:
        return self.events[self.recorded :]

    def mark_recorded(self) -> None:
        self.recorded = len(self.events)


class Severity(StrEnum):
    """How much an audit entry matters, lowest first (filters keep a level and above)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    ERROR = "ERROR"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)

    def and_above(self) -> list[Severity]:
        return [s for s in Severity if s.rank >= self.rank]


@dataclass(frozen=True)
class AuditEntry:
    """A persisted line of the audit trail (one per domain event; see :mod:`wtb_domain.audit`)."""

    event_type: str
    message: str
    execution_id: str | None = None
    severity: Severity = Severity.INFO
    details: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    id: int | None = None
    batch_id: str | None = None
    node: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class OutboxRecord:
    """An event in the outbox: written with the change it describes, published by the relay.
    ``id``: the event row's; None for a node event read from its checkpoint."""

    id: int | None
    event: Event
    created_at: datetime
    published_at: datetime | None = None


class BatchStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_FAILURES = "completed_with_failures"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class BatchTest:
    """A batch test run: its spec, size and status (results are rows of their own)."""

    id: str
    workflow_ref: str
    spec: dict[str, Any]
    total: int
    name: str | None = None
    status: BatchStatus = BatchStatus.RUNNING
    cancel_requested: bool = False
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class BatchResult:
    """One combination x case x repeat of a batch: how it ran and how it scored."""

    batch_test_id: str
    execution_id: str
    combination_name: str
    variant_config: dict[str, str]
    case_id: str
    repeat: int
    success: bool
    passed: bool
    overall_score: float
    duration_ms: float
    metrics: dict[str, float] = field(default_factory=dict)
    worker_id: str | None = None
    error: str | None = None
    created_at: datetime = field(default_factory=utcnow)

    @property
    def leaf_key(self) -> str:
        return f"{self.combination_name}#{self.repeat}"


@dataclass(frozen=True)
class Baseline:
    """One blessing: batch ``batch_test_id`` became the baseline of ``name``.

    The blessings of a name are its history; the current baseline is the newest one.
    """

    name: str
    batch_test_id: str
    note: str | None = None
    blessed_by: str | None = None
    blessed_at: datetime = field(default_factory=utcnow)
    id: str = ""


@dataclass(frozen=True)
class BatchProgress:
    total: int
    done: int
    failed: int

    @property
    def pending(self) -> int:
        return self.total - self.done
