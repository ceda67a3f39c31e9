"""LangChain messages in a JSON state: ``messages_to_dict`` out, ``messages_from_dict`` back.

Only the keys whose channel holds messages (an ``add_messages`` reducer, or a type that names
a LangChain message class) are converted. Decoding builds messages by their ``type`` field
through LangChain's own table of message classes (no import paths are followed, nothing is
unpickled). Inputs may also use LangChain's short forms: ``"text"``, ``["user", "text"]`` or
``{"role": "user", "content": "text"}``.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import (
    BaseMessage,
    convert_to_messages,
    messages_from_dict,
    messages_to_dict,
)

from wtb_domain.errors import StateError


def is_message_reducer(operator: Any) -> bool:
    """True for LangGraph's ``add_messages`` (it is wrapped once the graph is built)."""
    qualname = getattr(operator, "__qualname__", "") or ""
    return "add_messages" in qualname


def _mentions_message(tp: Any, depth: int = 0) -> bool:
    if depth > 8:
        return False
    if isinstance(tp, type) and issubclass(tp, BaseMessage):
        return True
    return any(_mentions_message(arg, depth + 1) for arg in typing.get_args(tp))


def decode_messages(value: Any, *, key: str) -> list[BaseMessage]:
    """JSON (or LangChain's short forms) to a list of messages."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    out: list[BaseMessage] = []
    for item in items:
        if isinstance(item, BaseMessage):
            out.append(item)
        elif isinstance(item, Mapping) and set(item) == {"type", "data"}:
            try:
                out.extend(messages_from_dict([dict(item)]))
            except (ValueError, TypeError, KeyError) as exc:
                raise StateError(
                    f"state key {key!r}: {item.get('type')!r} is not a LangChain message "
                    f"({exc}); store messages as messages_to_dict() writes them"
                ) from None
        else:
            try:
                out.extend(convert_to_messages([item]))
            except (ValueError, TypeError, NotImplementedError) as exc:
                raise StateError(
                    f"state key {key!r}: cannot read {str(item)[:60]!r} as a message ({exc}); "
                    "use 'text', ['user', 'text'] or {'role': 'user', 'content': 'text'}"
                ) from None
    return out


def encode_messages(value: Any, *, key: str) -> list[dict[str, Any]]:
    """Messages (one, a list, or short forms) as JSON dicts (``messages_to_dict``)."""
    return messages_to_dict(decode_messages(value, key=key))


@dataclass(frozen=True)
class StateCodec:
    """Which state keys hold messages; converts a whole state or one node update."""

    message_keys: frozenset[str]
    single_message_keys: frozenset[str] = frozenset()
    """Keys holding one message (not a list)."""

    @classmethod
    def for_graph(cls, state_graph: Any) -> StateCodec:
        from langgraph.channels.binop import BinaryOperatorAggregate

        keys: set[str] = set()
        single: set[str] = set()
        for key, channel in state_graph.channels.items():
            if isinstance(channel, BinaryOperatorAggregate) and is_message_reducer(
                channel.operator
            ):
                keys.add(key)
        for schema in state_graph.schemas:
            try:
                hints = typing.get_type_hints(schema, include_extras=True)
            except Exception:  # unresolvable annotations: leave those keys as plain JSON
                hints = {}
            for key, tp in hints.items():
                if _mentions_message(tp):
                    keys.add(key)
                    if isinstance(tp, type) and issubclass(tp, BaseMessage):
                        single.add(key)
        return cls(frozenset(keys), frozenset(single))

    def decode(self, state: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(state)
        for key in self.message_keys & out.keys():
            messages = decode_messages(out[key], key=key)
            if key in self.single_message_keys:
                out[key] = messages[0] if messages else None
            else:
                out[key] = messages
        return out

    def encode_value(self, key: str, value: Any) -> Any:
        if key not in self.message_keys or value is None:
            return value
        encoded = encode_messages(value, key=key)
        if key in self.single_message_keys and not isinstance(value, list | tuple):
            return encoded[0] if encoded else None
        return encoded

    def encode(self, update: Mapping[str, Any]) -> dict[str, Any]:
        return {key: self.encode_value(key, value) for key, value in update.items()}
