"""Composition root: builds the store, the message bus and the controller once."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import event

from wtb_domain.adapters.sql.database import Database, database_for
from wtb_domain.adapters.sql.retry import with_retries
from wtb_domain.adapters.sql.uow import SqlUnitOfWork
from wtb_domain.adapters.timed import timed
from wtb_domain.controller import ExecutionController
from wtb_domain.events import Event, MessageBus
from wtb_domain.metrics import PrometheusMetrics, process_metrics
from wtb_domain.outbox import OutboxRelay, Publisher, SeenEvents
from wtb_domain.ports import Retry, UnitOfWork, UnitOfWorkFactory, run_once

if TYPE_CHECKING:  # the in-memory adapters load with memory_app only
    from wtb_domain.adapters.memory import MemoryStore

_SEEN_LOCK = threading.Lock()


@dataclass
class App:
    """What a process needs: a unit-of-work factory, the bus and the controller.

    With ``audit`` on (the default) every change writes its events to the audit trail and
    the outbox in its own transaction; :meth:`publish` sends events of a committed change to
    the bus, :attr:`relay` publishes what a dead process left unpublished.
    """

    uow: UnitOfWorkFactory
    bus: MessageBus
    controller: ExecutionController
    database: Database | None = None
    retry: Retry = run_once
    publisher: Publisher | None = None
    metrics: PrometheusMetrics = field(default_factory=process_metrics)
    relay: OutboxRelay = field(init=False)

    def __post_init__(self) -> None:
        self.relay = OutboxRelay(self.uow, self.bus)

    def publish(self, events: Sequence[Event]) -> None:
        """Publish events whose change committed (and mark them published in the outbox)."""
        if self.publisher is not None:
            self.publisher(events)
        else:
            self.bus.publish(events)

    def flush(self) -> None:
        """Mark every event published so far as published in the outbox."""
        if self.publisher is not None:
            self.publisher.flush()


_seen: SeenEvents | None = None


def _process_metrics_once() -> SeenEvents:
    # At-least-once delivery: an event the relay publishes again is not counted twice.
    global _seen
    metrics = process_metrics()
    with _SEEN_LOCK:
        if _seen is None:
            _seen = SeenEvents(metrics)
        return _seen


def build_bus() -> MessageBus:
    bus = MessageBus()
    bus.subscribe(Event, _process_metrics_once())
    return bus


def _assemble(
    uow: UnitOfWorkFactory, audit: bool, database: Database | None, retry: Retry = run_once
) -> App:
    metrics = process_metrics()
    uow = timed(uow, metrics)
    bus = build_bus()
    publisher = Publisher(bus, uow if audit else None)
    controller = ExecutionController(uow, bus, retry, publish=publisher)
    return App(uow, bus, controller, database, retry, publisher, metrics)


def sql_app(url: str | None = None, *, audit: bool = True) -> App:
    """An App on ``url`` (default: ``WTB_DATABASE_URL`` or ``./.wtb/wtb.db``), migrated.

    ``audit=False`` writes no audit entries and no outbox rows and marks nothing published
    (benchmarks of the bare checkpoint path); events are still published to the process's
    bus. Its node events, stored as their checkpoints, stay unpublished in the store's view
    (``wtb doctor`` reports them; see docs/reliability.md, "Node events").
    """
    db = database_for(url)
    _count_db_errors(db)

    def uow(*, read_only: bool = False) -> UnitOfWork:
        return SqlUnitOfWork(db.engine, record_events=audit, read_only=read_only)

    return _assemble(uow, audit, db, with_retries)


def _count_db_errors(db: Database) -> None:
    """Count the engine's driver errors in ``wtb_db_errors_total`` (one listener per engine)."""
    listener = process_metrics().db_error
    if not event.contains(db.engine, "handle_error", listener):
        event.listen(db.engine, "handle_error", listener)


def memory_app(store: MemoryStore | None = None, *, audit: bool = True) -> App:
    """An App over an in-memory store (tests, notebooks)."""
    from wtb_domain.adapters.memory import MemoryStore

    mem = store or MemoryStore()

    def uow(*, read_only: bool = False) -> UnitOfWork:
        return mem.unit_of_work(record_events=audit)  # one lock for all: nothing to lighten

    return _assemble(uow, audit, None)
