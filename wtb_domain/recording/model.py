"""Recorded calls and cache entries: the records, the modes, and canonical request keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from wtb_domain.errors import RecordingError
from wtb_domain.model import utcnow
from wtb_domain.redaction import redact

LLM_LABEL = "llm"
"""Execution label holding the call settings (``{"mode", "source_batch", "recordings",
"prices"}``)."""
CACHE_LABEL = "cache"
"""Execution label holding the node cache settings (``{"enabled", "nodes", "share_repeats"}``)."""


class CallMode(StrEnum):
    """How a node's LLM and tool calls run.

    ``record`` (the default) calls live and stores every request/response; ``live`` calls
    without storing; ``replay`` serves stored responses only (a request never seen fails the
    node); ``replay-or-live`` serves stored responses and calls live (recording) otherwise.
    """

    LIVE = "live"
    RECORD = "record"
    REPLAY = "replay"
    REPLAY_OR_LIVE = "replay-or-live"

    @classmethod
    def parse(cls, value: object, where: str = "llm.mode") -> CallMode:
        try:
            return cls(str(value))
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise RecordingError(f"{where}: unknown mode {value!r}; use one of {known}") from None

    @property
    def serves_stored(self) -> bool:
        return self in (CallMode.REPLAY, CallMode.REPLAY_OR_LIVE)

    @property
    def stores(self) -> bool:
        return self is not CallMode.LIVE


@dataclass(frozen=True)
class CallSettings:
    """The call settings of one execution (from its ``llm`` label)."""

    mode: CallMode = CallMode.RECORD
    source_batch: str | None = None
    """Replay only responses recorded by this batch (None: any recording in the store)."""
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    recordings: str | None = None
    """Replay from this recordings file (an absolute path) instead of the store."""

    @classmethod
    def from_labels(cls, labels: Mapping[str, Any]) -> CallSettings:
        raw = labels.get(LLM_LABEL)
        if not isinstance(raw, Mapping):
            return cls()
        source = raw.get("source_batch")
        recordings = raw.get("recordings")
        return cls(
            CallMode.parse(raw.get("mode", CallMode.RECORD.value)),
            source if isinstance(source, str) else None,
            dict(raw.get("prices") or {}),
            recordings if isinstance(recordings, str) else None,
        )


def llm_label(
    mode: str | CallMode,
    source_batch: str | None = None,
    prices: Mapping[str, Any] | None = None,
    recordings: str | None = None,
) -> dict[str, Any]:
    """The ``llm`` execution label for these settings (checks the mode)."""
    out: dict[str, Any] = {"mode": CallMode.parse(mode).value}
    if source_batch:
        out["source_batch"] = source_batch
    if recordings:
        out["recordings"] = recordings
    if prices:
        out["prices"] = {k: dict(v) for k, v in prices.items()}
    return out


@dataclass(frozen=True)
class CallRecord:
    """One recorded LLM or tool call, stored with the checkpoint of the node that made it.

    ``request_key`` is the content address of the canonical (redacted) request; the request
    and response bodies are stored once per content (``request_hash``, ``response_hash``).
    """

    checkpoint_id: str
    seq: int
    execution_id: str
    node: str
    variant: str
    kind: str
    """``llm`` or ``tool``."""
    name: str
    """The model (llm) or the tool's name."""
    request_key: str
    request_hash: str
    response_hash: str
    batch_id: str | None = None
    repeat: int | None = None
    occurrence: int = 0
    """How many calls with the same request the node run made before this one."""
    live: bool = True
    """False: served from a recording (replay)."""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class CacheEntry:
    """A node's cached result: the content hashes of the values it wrote."""

    key: str
    node: str
    variant: str
    writes: dict[str, str]
    """State key -> content hash of its value (values live in the state blob store)."""
    checkpoint_id: str
    """The checkpoint of the run that produced it."""
    created_at: datetime = field(default_factory=utcnow)


# Request fields that never change the answer (transport) or hold credentials: never stored,
# never part of the request key.
TRANSPORT_FIELDS = frozenset(
    {"extra_headers", "extra_query", "timeout", "api_key", "headers", "default_headers"}
)
# Request fields that look secret to :func:`redact` by name but are plain settings.
PLAIN_FIELDS = frozenset(
    {"max_tokens", "max_completion_tokens", "prompt_cache_key", "top_logprobs", "logit_bias"}
)


def to_json_data(value: Any, *, where: str) -> Any:
    """JSON data of a request or response: pydantic models dumped, the OpenAI client's
    ``NOT_GIVEN``/``Omit`` sentinels dropped, tuples as lists; anything else non-JSON is a
    RecordingError naming ``where``."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise RecordingError(f"{where}: non-finite number {value!r} cannot be recorded")
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if _sentinel(v):
                continue
            if not isinstance(k, str):
                raise RecordingError(f"{where}: key {k!r} is not a string")
            out[k] = to_json_data(v, where=f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [to_json_data(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # a pydantic model (an OpenAI response, a message)
        return to_json_data(dump(mode="json", exclude_none=True), where=where)
    raise RecordingError(
        f"{where}: a {type(value).__name__} cannot be recorded; pass and return JSON data "
        "(dict, list, str, number, bool, None) or pydantic models"
    )


def _sentinel(value: Any) -> bool:
    return type(value).__name__ in ("NotGiven", "Omit")


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def body_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stored_request(request: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """The request as stored and keyed: transport fields dropped, secrets masked."""
    data = to_json_data(
        {k: v for k, v in request.items() if k not in TRANSPORT_FIELDS}, where=where
    )
    kept = {k: data.pop(k) for k in list(data) if k in PLAIN_FIELDS}
    return {**redact(data), **kept}


def request_key(kind: str, name: str, request: Mapping[str, Any]) -> str:
    """Content address of a stored request (kind, model/tool name, canonical JSON)."""
    return body_hash(canonical({"kind": kind, "name": name, "request": request}))


def summary(kind: str, name: str, request: Mapping[str, Any]) -> str:
    """A one-line description of a request for error messages."""
    if kind == "tool":
        text = canonical(request.get("args"))
    else:
        messages = request.get("messages") or []
        last = messages[-1] if isinstance(messages, list) and messages else {}
        content = last.get("content") if isinstance(last, dict) else last
        text = content if isinstance(content, str) else canonical(content)
    text = " ".join(str(text).split())
    return f"{kind} {name!r}: {text[:77] + '...' if len(text) > 80 else text!r}"


def repeat_of(labels: Mapping[str, Any]) -> int | None:
    """The batch repeat an execution runs for (its leaves' ``#repeat``), if it is only one."""
    leaves = labels.get("leaves")
    if not isinstance(leaves, list) or not leaves:
        return None
    repeats = set()
    for leaf in leaves:
        _, _, tail = str(leaf).rpartition("#")
        if not tail.isdigit():
            return None
        repeats.add(int(tail))
    return repeats.pop() if len(repeats) == 1 else None
