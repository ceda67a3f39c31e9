"""The recorder of one node run: ``ctx.llm``/``ctx.allm``/``ctx.tool`` go through it.

It calls live, serves stored responses, or both (see :class:`CallMode`), and keeps what the
node run called; the engine stores that with the node's checkpoint, in its transaction.
Replay lookups read the store in short units of work of their own (none is held while the
node runs).
"""

from __future__ import annotations

import contextvars
import inspect
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from wtb_domain.errors import RecordingError
from wtb_domain.ports import UnitOfWorkFactory
from wtb_domain.recording import counters
from wtb_domain.recording.file import load_recordings
from wtb_domain.recording.model import (
    CallMode,
    CallRecord,
    CallSettings,
    body_hash,
    canonical,
    request_key,
    stored_request,
    summary,
    to_json_data,
)
from wtb_domain.recording.prices import cost_usd, token_usage
from wtb_domain.redaction import redact_text

_active: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "wtb_recorder", default=None
)


def active() -> Recorder | None:
    """The recorder of the node run in progress in this context (None outside a node)."""
    return _active.get()


@dataclass
class _Call:
    kind: str
    name: str
    stored: dict[str, Any]
    key: str
    occurrence: int


@dataclass
class Recorder:
    """What one node run called; built by the engine for each node run."""

    node: str
    variant: str
    execution_id: str
    settings: CallSettings
    uow_factory: UnitOfWorkFactory
    record_metric: Callable[[str, float], None]
    batch_id: str | None = None
    repeat: int | None = None
    records: list[CallRecord] = field(default_factory=list)
    bodies: dict[str, str] = field(default_factory=dict)
    live_calls: int = 0
    _seen: Counter[str] = field(default_factory=Counter)

    # -- the node's API --------------------------------------------------------------------

    def llm(self, call: Callable[..., Any], **request: Any) -> Any:
        """Call ``call(**request)`` (or serve its recorded response); the response as JSON."""
        c = self._begin("llm", _model(request), request)
        stored = self._stored(c)
        if stored is not None:
            return stored
        return self._finish(c, call(**request))

    async def allm(self, call: Callable[..., Awaitable[Any]], **request: Any) -> Any:
        """``await call(**request)`` (or serve its recorded response); the response as JSON."""
        c = self._begin("llm", _model(request), request)
        stored = self._stored(c)
        if stored is not None:
            return stored
        return self._finish(c, await call(**request))

    def tool(self, name: str, fn: Callable[..., Any], args: Mapping[str, Any]) -> Any:
        """Call ``fn(**args)`` (or serve its recorded result); the result as JSON.

        In replay the tool does not run at all (no side effects)."""
        if not isinstance(args, Mapping):
            raise RecordingError(
                f"node {self.node!r}: ctx.tool({name!r}, fn, args): args must be a dict of "
                f"keyword arguments, got {type(args).__name__}"
            )
        c = self._begin("tool", name, {"tool": name, "args": dict(args)})
        stored = self._stored(c)
        if stored is not None:
            return stored
        result = fn(**args)
        if inspect.isawaitable(result):
            raise RecordingError(
                f"node {self.node!r}: tool {name!r} returned an awaitable; use "
                "await ctx.atool(...) for async tools"
            )
        return self._finish(c, result)

    async def atool(
        self, name: str, fn: Callable[..., Awaitable[Any]], args: Mapping[str, Any]
    ) -> Any:
        """``await fn(**args)`` (or serve its recorded result); the result as JSON."""
        c = self._begin("tool", name, {"tool": name, "args": dict(args)})
        stored = self._stored(c)
        if stored is not None:
            return stored
        return self._finish(c, await fn(**args))

    # -- internals -------------------------------------------------------------------------

    def _where(self, kind: str) -> str:
        return f"node {self.node!r} {kind} request"

    def _begin(self, kind: str, name: str, request: Mapping[str, Any]) -> _Call:
        if request.get("stream"):
            raise RecordingError(
                f"node {self.node!r}: streaming responses (stream=True) cannot be recorded "
                "or replayed; call without stream"
            )
        where = self._where(kind)
        stored = (
            stored_request(request, where=where)
            if kind == "llm"
            else {"tool": name, "args": stored_request(request["args"], where=where)}
        )
        key = request_key(kind, name, stored)
        occurrence = self._seen[key]
        self._seen[key] += 1
        return _Call(kind, name, stored, key, occurrence)

    def _stored(self, c: _Call) -> Any:
        """The recorded response for this call, if the mode serves stored ones."""
        mode = self.settings.mode
        if not mode.serves_stored:
            return None
        found = self._lookup(c)
        if found is None:
            if mode is CallMode.REPLAY:
                source = self.settings.source_batch
                scope = f"batch {source!r}" if source else "the store"
                fix = "record it first (--llm-mode record)"
                if self.settings.recordings:
                    scope = f"recordings file {self.settings.recordings}"
                    fix = "export a batch that made this call"
                raise RecordingError(
                    f"node {self.node!r}: replay found no recorded response for request "
                    f"{c.key[:16]} ({summary(c.kind, c.name, c.stored)}) in {scope}; {fix} "
                    "or use --llm-mode replay-or-live"
                )
            return None
        tokens_in, tokens_out, response = found
        self._keep(c, response, tokens_in, tokens_out, live=False, cost=None)
        self.record_metric(f"{c.kind}_replayed_calls", 1)
        return response

    def _lookup(self, c: _Call) -> tuple[int, int, Any] | None:
        """(tokens in, tokens out, response) of the recording to serve, if there is one."""
        if self.settings.recordings:
            in_file = load_recordings(self.settings.recordings).find(c.key)
            if not in_file:
                return None
            chosen = _pick(in_file, self.repeat, c.occurrence)
            return chosen.tokens_in, chosen.tokens_out, chosen.response()
        with self.uow_factory(read_only=True) as uow:
            candidates = uow.calls.find(c.key, batch_id=self.settings.source_batch)
            if not candidates:
                return None
            record = _pick(candidates, self.repeat, c.occurrence)
            response = uow.calls.bodies([record.response_hash])[record.response_hash]
        return record.tokens_in, record.tokens_out, response

    def _finish(self, c: _Call, response: Any) -> Any:
        data = to_json_data(response, where=f"node {self.node!r} {c.kind} response")
        self.live_calls += 1
        self.record_metric(f"{c.kind}_live_calls", 1)
        tokens_in = tokens_out = 0
        cost = None
        if c.kind == "llm":
            model = str(data.get("model") or c.name) if isinstance(data, dict) else c.name
            tokens_in, tokens_out = token_usage(data)
            cost = cost_usd(self.settings.prices, model, tokens_in, tokens_out)
            counters.llm_usage(model, tokens_in, tokens_out, cost)
            if cost is not None:
                self.record_metric("llm_cost_usd", cost)
        self._keep(c, data, tokens_in, tokens_out, live=True, cost=cost)
        # What the node gets is what a replay serves: the JSON round trip.
        return _round_trip(data)

    def _keep(
        self,
        c: _Call,
        response: Any,
        tokens_in: int,
        tokens_out: int,
        *,
        live: bool,
        cost: float | None,
    ) -> None:
        if c.kind == "llm":
            self.record_metric("llm_tokens_in", tokens_in)
            self.record_metric("llm_tokens_out", tokens_out)
        if not self.settings.mode.stores:
            return
        # The request is stored redacted already (stored_request); the response loses
        # credential-shaped text (a key the model echoed): secrets are never stored in clear.
        request_text, response_text = canonical(c.stored), canonical(redact_text(response))
        request_hash, response_hash = body_hash(request_text), body_hash(response_text)
        self.bodies[request_hash] = request_text
        self.bodies[response_hash] = response_text
        self.records.append(
            CallRecord(
                checkpoint_id="",
                seq=len(self.records),
                execution_id=self.execution_id,
                node=self.node,
                variant=self.variant,
                kind=c.kind,
                name=c.name,
                request_key=c.key,
                request_hash=request_hash,
                response_hash=response_hash,
                batch_id=self.batch_id,
                repeat=self.repeat,
                occurrence=c.occurrence,
                live=live,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=cost,
            )
        )

    def for_checkpoint(self, checkpoint_id: str) -> list[CallRecord]:
        return [replace(r, checkpoint_id=checkpoint_id) for r in self.records]

    # -- binding to the node's callable ----------------------------------------------------

    def bind(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` running with this recorder active (for the wrapped OpenAI clients), in
        whatever thread or event loop the engine runs it."""
        if inspect.iscoroutinefunction(fn):

            async def run_async(*args: Any, **kwargs: Any) -> Any:
                token = _active.set(self)
                try:
                    return await fn(*args, **kwargs)
                finally:
                    _active.reset(token)

            return run_async

        def run(*args: Any, **kwargs: Any) -> Any:
            token = _active.set(self)
            try:
                return fn(*args, **kwargs)
            finally:
                _active.reset(token)

        return run


def _model(request: Mapping[str, Any]) -> str:
    model = request.get("model")
    return model if isinstance(model, str) else "?"


def _round_trip(data: Any) -> Any:
    import json

    return json.loads(canonical(data))


class _Recorded(Protocol):
    @property
    def repeat(self) -> int | None: ...
    @property
    def occurrence(self) -> int: ...


_R = TypeVar("_R", bound=_Recorded)


def _pick(candidates: Sequence[_R], repeat: int | None, occurrence: int) -> _R:
    """The recording to serve, deterministically: the same repeat and occurrence, else the
    same occurrence, else the first recorded (``candidates`` are oldest first)."""
    for record in candidates:
        if record.repeat == repeat and record.occurrence == occurrence:
            return record
    for record in candidates:
        if record.occurrence == occurrence:
            return record
    return candidates[0]
