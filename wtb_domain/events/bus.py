"""The message bus: dispatches events to subscribers and keeps a bounded history.

The bus is built once in :mod:`wtb_domain.bootstrap` and passed in; there is no global bus.

- Thread-safe: subscribing and publishing may happen from any thread (batch workers share
  an App); handlers are called outside the bus's lock.
- Reentrant: a handler may publish. Events it publishes are queued and dispatched, in order,
  after the event being handled (per thread), so handlers never see events out of order and
  recursion stays flat.
- History: the last ``history_size`` published events, queryable by type, time and limit.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from wtb_domain.events.types import Event

log = logging.getLogger(__name__)

Handler = Callable[[Any], None]
HISTORY_SIZE = 10_000


class MessageBus:
    """Dispatches events to handlers registered per event type (and for ``Event``: all)."""

    def __init__(self, history_size: int = HISTORY_SIZE) -> None:
        self._handlers: dict[type[Event], list[Handler]] = defaultdict(list)
        self._lock = threading.Lock()
        self._history: deque[Event] = deque(maxlen=history_size)
        self._local = threading.local()

    def subscribe(self, event_type: type[Event], handler: Handler) -> None:
        with self._lock:
            self._handlers[event_type].append(handler)

    def unsubscribe(self, event_type: type[Event], handler: Handler) -> None:
        with self._lock:
            handlers = self._handlers.get(event_type, [])
            if handler in handlers:
                handlers.remove(handler)

    def publish(self, events: Iterable[Event]) -> None:
        """Call every handler for each event. A failing handler is logged, never hides others.

        Handlers run after the change is committed, so their failure cannot undo it. Called
        from inside a handler, the events are queued behind the one being dispatched.
        """
        queue: deque[Event] | None = getattr(self._local, "queue", None)
        if queue is not None:  # reentrant: a handler publishes
            queue.extend(events)
            return
        queue = self._local.queue = deque(events)
        try:
            while queue:
                self._dispatch(queue.popleft())
        finally:
            self._local.queue = None

    def _dispatch(self, event: Event) -> None:
        with self._lock:
            self._history.append(event)
            handlers = [
                h for t in type(event).__mro__ for h in self._handlers.get(t, ()) if t is not object
            ]
        for handler in handlers:
            try:
                handler(event)
            except Exception:  # a broken subscriber must not break the run
                log.exception("event handler %r failed on %r", handler, event)

    def history(
        self,
        event_type: type[Event] | tuple[type[Event], ...] = Event,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Published events (oldest first) of ``event_type`` (subclasses included) that
        occurred in [since, until); with ``limit``, the newest ``limit`` of them."""
        with self._lock:
            rows = list(self._history)
        out = [
            e
            for e in rows
            if isinstance(e, event_type)
            and (since is None or e.occurred_at >= since)
            and (until is None or e.occurred_at < until)
        ]
        if limit is not None:
            out = out[-limit:] if limit > 0 else []
        return out
