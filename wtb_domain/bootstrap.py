"""Composition root: builds the store, the message bus and the controller once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import event

from wtb_domain.adapters.memory import MemoryStore
from wtb_domain.adapters.sql.database import Database, database_for
from wtb_domain.adapters.sql.retry import with_retries
from wtb_domain.adapters.sql.uow import SqlUnitOfWork
from wtb_domain.adapters.timed import timed
from wtb_domain.audit import AuditTrail
from wtb_domain.controller import ExecutionController
from wtb_domain.events import Event, MessageBus
from wtb_domain.metrics import PrometheusMetrics
from wtb_domain.ports import Retry, UnitOfWork, UnitOfWorkFactory, run_once


@functools.cache
def process_metrics() -> PrometheusMetrics:
    """The process's Prometheus metrics (registered once with the default registry)."""
    return PrometheusMetrics()


@dataclass
class App:
    """What a process needs: a unit-of-work factory, the bus and the controller."""

    uow: UnitOfWorkFactory
    bus: MessageBus
    controller: ExecutionController
    database: Database | None = None
    retry: Retry = run_once
    metrics: PrometheusMetrics = field(default_factory=process_metrics)


def build_bus(uow: UnitOfWorkFactory, audit: bool = True) -> MessageBus:
    bus = MessageBus()
    if audit:
        bus.subscribe(Event, AuditTrail(uow))
    bus.subscribe(Event, process_metrics())
    return bus


def _assemble(
    uow: UnitOfWorkFactory, audit: bool, database: Database | None, retry: Retry = run_once
) -> App:
    metrics = process_metrics()
    uow = timed(uow, metrics)
    bus = build_bus(uow, audit)
    return App(uow, bus, ExecutionController(uow, bus, retry), database, retry, metrics)


def sql_app(url: str | None = None, *, audit: bool = True) -> App:
    """An App on ``url`` (default: ``WTB_DATABASE_URL`` or ``./.wtb/wtb.db``), migrated."""
    db = database_for(url)
    _count_db_errors(db)

    def uow() -> UnitOfWork:
        return SqlUnitOfWork(db.engine)

    return _assemble(uow, audit, db, with_retries)


def _count_db_errors(db: Database) -> None:
    """Count the engine's driver errors in ``wtb_db_errors_total`` (one listener per engine)."""
    listener = process_metrics().db_error
    if not event.contains(db.engine, "handle_error", listener):
        event.listen(db.engine, "handle_error", listener)


def memory_app(store: MemoryStore | None = None, *, audit: bool = True) -> App:
    """An App over an in-memory store (tests, notebooks)."""
    mem = store or MemoryStore()
    factory: Callable[[], UnitOfWork] = mem.unit_of_work
    return _assemble(factory, audit, None)
