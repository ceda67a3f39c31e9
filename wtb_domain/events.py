"""Domain events and the message bus that dispatches them after a commit.

The bus is built once in :mod:`wtb_domain.bootstrap` and passed in; there is no global bus.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    execution_id: str


@dataclass(frozen=True)
class ExecutionStarted(Event):
    workflow_name: str
    variants: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeCompleted(Event):
    node: str
    variant: str
    checkpoint_id: str
    duration_ms: float


@dataclass(frozen=True)
class ExecutionPaused(Event):
    paused_at: str
    checkpoint_id: str | None


@dataclass(frozen=True)
class ExecutionResumed(Event):
    checkpoint_id: str | None


@dataclass(frozen=True)
class ExecutionCompleted(Event):
    checkpoint_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionFailed(Event):
    node: str | None
    error_type: str
    message: str


@dataclass(frozen=True)
class ExecutionForked(Event):
    parent_execution_id: str
    from_checkpoint_id: str
    state_patch_keys: list[str] = field(default_factory=list)
    variant_overrides: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionRolledBack(Event):
    to_checkpoint_id: str


Handler = Callable[[Any], None]


class MessageBus:
    """Dispatches events to handlers registered per event type (and for ``Event``: all)."""

    def __init__(self) -> None:
        self._handlers: dict[type[Event], list[Handler]] = defaultdict(list)

    def subscribe(self, event_type: type[Event], handler: Handler) -> None:
        self._handlers[event_type].append(handler)

    def publish(self, events: Iterable[Event]) -> None:
        """Call every handler for each event. A failing handler is logged, never hides others.

        Handlers run after the change is committed, so their failure cannot undo it.
        """
        for event in events:
            for event_type in type(event).__mro__:
                for handler in self._handlers.get(event_type, ()):
                    try:
                        handler(event)
                    except Exception:  # a broken subscriber must not break the run
                        log.exception("event handler %r failed on %r", handler, event)
