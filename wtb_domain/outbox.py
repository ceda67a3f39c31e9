"""The outbox: events are written with their change (see ``UnitOfWork.record``), then
published at least once to the bus's subscribers.

- :class:`Publisher`: the fast path. After a commit, the process publishes its own events to
  its bus, then marks them published -- deferred and batched (every ``mark_every`` events or
  ``mark_after_s`` seconds, and on :meth:`Publisher.flush`), so marking costs no round trip
  per event.
- :class:`OutboxRelay`: the safety net. Publishes what is still unpublished -- events of a
  process that died between commit and publish (or before it marked them) -- and marks them.
- Delivery is at least once: an event may reach a subscriber twice (a relay may republish
  an event its process published but had not marked yet). Consumers are idempotent by event
  id: :class:`SeenEvents` (in-process, bounded) or :class:`IdempotentConsumer` (durable: the
  processed id commits in the same transaction as the consumer's effect).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import timedelta

from wtb_domain.events import Event, MessageBus
from wtb_domain.model import utcnow
from wtb_domain.ports import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)


class Publisher:
    """Publishes committed events to the bus and marks them published in the outbox."""

    def __init__(
        self,
        bus: MessageBus,
        uow_factory: UnitOfWorkFactory | None,
        *,
        mark_every: int = 200,
        mark_after_s: float = 1.0,
    ) -> None:
        self._bus = bus
        self._uow = uow_factory
        self._mark_every = mark_every
        self._mark_after_s = mark_after_s
        self._lock = threading.Lock()
        self._unmarked: list[Event] = []
        self._last_mark = 0.0

    def __call__(self, events: Sequence[Event]) -> None:
        if not events:
            return
        self._bus.publish(events)
        if self._uow is None:
            return
        with self._lock:
            self._unmarked.extend(events)
            due = (
                len(self._unmarked) >= self._mark_every
                or time.monotonic() - self._last_mark >= self._mark_after_s
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Mark every event published so far as published (best effort: the relay would
        publish an unmarked one again, which idempotent consumers ignore)."""
        if self._uow is None:
            return
        with self._lock:
            events, self._unmarked = self._unmarked, []
            self._last_mark = time.monotonic()
        if not events:
            return
        try:
            with self._uow() as uow:
                uow.outbox.mark_published(events)
                uow.commit()
        except Exception as exc:  # the store is failing: the relay publishes them again
            log.warning("could not mark %d outbox events published: %s", len(events), exc)


class OutboxRelay:
    """Publishes unpublished outbox events to a bus, oldest first, and marks them."""

    def __init__(self, uow_factory: UnitOfWorkFactory, bus: MessageBus, batch: int = 500) -> None:
        self._uow = uow_factory
        self._bus = bus
        self._batch = batch

    def run_once(self, min_age_s: float = 0.0) -> int:
        """Publish every event unpublished for at least ``min_age_s`` seconds (a grace period
        for live processes to mark their own); the number published."""
        published = 0
        sent: set[str] = set()
        while True:
            with self._uow() as uow:
                rows = uow.outbox.pending(self._batch)
            cutoff = utcnow() - timedelta(seconds=min_age_s)
            rows = [r for r in rows if r.created_at <= cutoff]
            if not rows or sent.issuperset(r.event.event_id for r in rows):
                return published  # (or nothing new: events this run could not mark)
            events = [r.event for r in rows]
            self._bus.publish(events)
            with self._uow() as uow:
                uow.outbox.mark_published(events)
                uow.commit()
            sent.update(e.event_id for e in events)
            published += len(rows)
            if len(rows) < self._batch:
                return published


class SeenEvents:
    """Wraps an in-process handler so an event id it already handled is skipped (the last
    ``size`` ids are remembered).

    Without a lock: ``dict.setdefault`` inserts an id or returns the one there in one
    atomic step, so two threads handed the same event (the publisher and the relay) cannot
    both handle it; ``deque`` appends and pops are atomic too.
    """

    def __init__(self, handler: Callable[[Event], None], size: int = 100_000) -> None:
        self._handler = handler
        self._size = size
        self._seen: dict[str, object] = {}
        self._order: deque[str] = deque()

    def __call__(self, event: Event) -> None:
        mine = object()
        if self._seen.setdefault(event.event_id, mine) is not mine:
            return
        order = self._order
        order.append(event.event_id)
        while len(order) > self._size:
            try:
                oldest = order.popleft()
            except IndexError:  # another thread emptied it meanwhile
                break
            self._seen.pop(oldest, None)
        self._handler(event)


class IdempotentConsumer:
    """A durable consumer: ``apply(event, uow)`` runs at most once per (consumer, event id)
    -- its writes on ``uow`` commit together with the processed id, or not at all."""

    def __init__(
        self,
        name: str,
        uow_factory: UnitOfWorkFactory,
        apply: Callable[[Event, UnitOfWork], None],
    ) -> None:
        self.name = name
        self._uow = uow_factory
        self._apply = apply

    def __call__(self, event: Event) -> None:
        with self._uow() as uow:
            if not uow.processed.first_time(self.name, event.event_id):
                return
            self._apply(event, uow)
            uow.commit()
