"""LangGraph channels as WTB reducers: how a node's update merges into a state key.

``LastValue`` keys are replaced (WTB's default). A ``BinaryOperatorAggregate`` key (an
``Annotated[T, reducer]`` such as ``operator.add`` or ``add_messages``) merges with its
reducer, applied to the JSON values (messages are decoded for ``add_messages`` and encoded
again). Channels WTB cannot keep in a JSON state are refused by name.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from wtb_domain.errors import WorkflowError
from wtb_domain.langgraph.messages import StateCodec, decode_messages, encode_messages

Reducer = Callable[[Any, Any], Any]


class ChannelReducer:
    """``(current, update) -> new`` over JSON values, for one state key."""

    def __init__(self, key: str, operator: Callable[[Any, Any], Any], empty: Any, messages: bool):
        self.key = key
        self.operator = operator
        self.empty = empty
        self.messages = messages
        name = getattr(operator, "__qualname__", type(operator).__name__)
        self.__qualname__ = f"langgraph_reducer[{key}:{name}]"
        self.__module__ = getattr(operator, "__module__", None) or __name__

    def initial(self) -> Any:
        return copy.deepcopy(self.empty)

    def __call__(self, current: Any, update: Any) -> Any:
        from langgraph.types import Overwrite

        if isinstance(update, Overwrite):
            raise WorkflowError(
                f"state key {self.key!r}: Overwrite(...) is not supported by the WTB adapter; "
                "return the value for the reducer to merge"
            )
        if current is None:
            current = self.initial()
        if self.messages:
            merged = self.operator(
                decode_messages(current, key=self.key), decode_messages(update, key=self.key)
            )
            return encode_messages(merged, key=self.key)
        return self.operator(current, update)


def channel_reducers(state_graph: Any, codec: StateCodec) -> dict[str, ChannelReducer]:
    """The reducer of every key that has one; raises WorkflowError for unsupported channels."""
    from langgraph.channels import binop
    from langgraph.channels.binop import BinaryOperatorAggregate
    from langgraph.channels.last_value import LastValue

    reducers: dict[str, ChannelReducer] = {}
    for key, channel in state_graph.channels.items():
        if isinstance(channel, BinaryOperatorAggregate):
            empty = getattr(channel, "value", None)
            empty = None if empty is getattr(binop, "MISSING", None) else empty
            if isinstance(empty, set | frozenset | tuple):
                empty = list(empty)
            reducers[key] = ChannelReducer(
                key, channel.operator, empty, messages=key in codec.message_keys
            )
        elif type(channel) is LastValue or type(channel).__name__ == "LastValueAfterFinish":
            continue
        else:
            raise WorkflowError(
                f"state key {key!r} uses a {type(channel).__name__} channel, which the WTB "
                "adapter does not support; use a plain or Annotated[T, reducer] key"
            )
    managed = getattr(state_graph, "managed", {}) or {}
    if managed:
        key = next(iter(managed))
        raise WorkflowError(
            f"state key {key!r} is a managed value ({type(managed[key]).__name__}), which the "
            "WTB adapter does not support; compute it in a node instead"
        )
    return reducers
