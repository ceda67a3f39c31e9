"""How LangGraph values are stored in WTB's content-addressed blobs (JSON text).

A value that is plain JSON (dict with str keys, list, str, int, finite float, bool, None) is
stored as its canonical JSON, readable by every WTB command. Anything else (LangChain
messages, tuples, bytes, datetimes, ...) goes through LangGraph's serde (``JsonPlusSerializer``:
msgpack, never pickle) and is stored as an envelope ``{"__lg__": <serde type>, "b64": <bytes>}``;
``wtb show``/``wtb diff``/``wtb status`` display it decoded (:func:`readable`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from datetime import date, datetime, time
from typing import Any, Protocol

from wtb_domain.state import content_hash

ENVELOPE = "__lg__"
WRAPPED = "wtb:json"
"""The envelope type of a plain dict that has an ``__lg__`` key of its own."""
_MAX_DEPTH = 200


class Serde(Protocol):
    def dumps_typed(self, obj: Any) -> tuple[str, bytes]: ...

    def loads_typed(self, data: tuple[str, bytes]) -> Any: ...


def is_plain(value: Any, depth: int = 0) -> bool:
    """True when ``value`` reads back from JSON as an equal value of the same types."""
    if depth > _MAX_DEPTH:
        return False
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(is_plain(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and is_plain(v, depth + 1) for k, v in value.items())
    return False


def canonical(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def encode(value: Any, serde: Serde) -> str:
    """The JSON text stored for ``value`` (see the module docstring)."""
    if is_plain(value):
        if isinstance(value, dict) and ENVELOPE in value:  # a plain dict that looks like one
            value = {ENVELOPE: WRAPPED, "value": value}
        try:
            text = canonical(value)
            text.encode("utf-8")
            return text
        except (UnicodeEncodeError, RecursionError, ValueError):
            pass  # lone surrogates etc.: serde keeps them exactly
    return envelope(value, serde)


def envelope(value: Any, serde: Serde) -> str:
    """``value`` through LangGraph's serde, as a JSON envelope."""
    kind, data = serde.dumps_typed(value)
    return canonical({ENVELOPE: kind, "b64": base64.b64encode(data).decode("ascii")})


def encode_hashed(value: Any, serde: Serde) -> tuple[str, str]:
    """``(content hash, text)`` of ``value``."""
    text = encode(value, serde)
    return content_hash(text), text


def decode(text: str, serde: Serde) -> Any:
    return unwrap(json.loads(text), serde)


def unwrap(loaded: Any, serde: Serde) -> Any:
    """The value a decoded blob stands for (an envelope goes back through serde)."""
    if isinstance(loaded, dict) and ENVELOPE in loaded:
        if loaded[ENVELOPE] == WRAPPED:
            return loaded["value"]
        return serde.loads_typed((str(loaded[ENVELOPE]), base64.b64decode(loaded["b64"])))
    return loaded


def readable(value: Any) -> Any:
    """``value`` for display: an envelope decoded by LangGraph's serde and rendered as JSON
    (``{"__lg__": type, "bytes": n}`` when LangGraph is not installed); anything else as is."""
    if not (isinstance(value, dict) and ENVELOPE in value):
        return value
    if value[ENVELOPE] == WRAPPED:
        return value.get("value")
    try:
        from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    except ImportError:
        return {ENVELOPE: value[ENVELOPE], "bytes": len(str(value["b64"])) * 3 // 4}
    try:
        return view(unwrap(value, JsonPlusSerializer()))
    except Exception:
        return value


def view(value: Any, depth: int = 0) -> Any:
    """A JSON rendering of any value for people (lossy: never read back)."""
    if depth > 50:
        return "..."
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): view(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [view(v, depth + 1) for v in value]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump()
        except Exception:  # a view never fails: fall back to repr
            dumped = None
        if isinstance(dumped, dict):
            return {"type": type(value).__name__, **view(dumped, depth + 1)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **view(dataclasses.asdict(value), depth + 1)}
    return repr(value)[:500]
