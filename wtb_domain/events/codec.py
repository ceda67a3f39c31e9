"""Events as JSON: what the outbox stores and the relay reads back."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from wtb_domain.errors import StoreError
from wtb_domain.events.types import EVENT_TYPES, Event

_ENVELOPE = ("event_id", "occurred_at")


def event_type(event: Event) -> str:
    return type(event).__name__


_FIELDS: dict[type[Event], tuple[str, ...]] = {}


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name not in _ENVELOPE)
        _FIELDS[cls] = names
    return names


def to_payload(event: Event) -> dict[str, Any]:
    """The event's own fields (not its id or time, which the outbox has as columns)."""
    return {name: getattr(event, name) for name in _field_names(type(event))}


def from_payload(
    type_name: str, payload: dict[str, Any], event_id: str, occurred_at: datetime
) -> Event:
    """Rebuild an event stored by :func:`to_payload` (unknown fields are ignored)."""
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise StoreError(f"outbox event {event_id}: unknown event type {type_name!r}")
    names = _field_names(cls)
    fields = {k: v for k, v in payload.items() if k in names}
    return cls(**fields, event_id=event_id, occurred_at=occurred_at)
