"""Recordings files: a batch's recorded calls exported to JSON, and replay served from one.

::

    {"wtb_recordings": 1, "batch_id": "nightly-0412",
     "calls": [{"request_key": "...", "kind": "llm", "name": "gpt-x", "node": "answer",
                "variant": "default", "repeat": 0, "occurrence": 0,
                "request": {...}, "response": {...}, "tokens_in": 12, "tokens_out": 3}, ...]}

Request bodies are the stored (redacted, transport fields dropped) requests; a call's
``request_key`` must be the key of its request (checked on load). ``calls`` are oldest first,
which is the order the replay's "oldest" fallback uses.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from wtb_domain.errors import SpecError
from wtb_domain.inputs import load_json, read_text
from wtb_domain.recording.model import CallRecord, canonical, request_key, stored_request
from wtb_domain.redaction import redact_text

if TYPE_CHECKING:
    from wtb_domain.ports import UnitOfWork

SCHEMA_VERSION = 1
"""The ``wtb_recordings`` value this version writes and reads."""


class FileCall(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    request_key: StrictStr = Field(pattern=r"^[0-9a-f]{64}$")
    kind: Literal["llm", "tool"]
    name: StrictStr
    node: StrictStr
    variant: StrictStr
    repeat: StrictInt | None = Field(None, ge=0)
    occurrence: StrictInt = Field(0, ge=0)
    request: dict[str, Any]
    response: Any
    tokens_in: StrictInt = Field(0, ge=0)
    tokens_out: StrictInt = Field(0, ge=0)


class FileDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    wtb_recordings: StrictInt
    batch_id: StrictStr | None = None
    calls: list[FileCall]


@dataclass(frozen=True)
class FileRecord:
    """One call of a recordings file, as a replay serves it."""

    repeat: int | None
    occurrence: int
    tokens_in: int
    tokens_out: int
    response_text: str

    def response(self) -> Any:
        """A fresh copy of the response (the node may change what it gets)."""
        return json.loads(self.response_text)


@dataclass(frozen=True)
class Recordings:
    """The calls of a recordings file by request key, oldest first."""

    path: str
    by_key: dict[str, list[FileRecord]]

    def find(self, key: str) -> list[FileRecord]:
        return self.by_key.get(key, [])


def parse_recordings(text: str, source: str) -> Recordings:
    """The recordings in ``text`` (a file's content); SpecError naming ``source`` and the field."""
    data = load_json(text, source)
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a JSON object with wtb_recordings and calls")
    if "wtb_recordings" not in data:
        raise SpecError(
            f"{source}: wtb_recordings: missing; this is not a recordings file "
            "(write one with wtb recordings export)"
        )
    version = data["wtb_recordings"]
    if type(version) is not int or version != SCHEMA_VERSION:
        raise SpecError(
            f"{source}: wtb_recordings: schema version {canonical(version)[:20]} is not "
            f"supported (this WTB reads {SCHEMA_VERSION}); export the batch again"
        )
    try:
        doc = FileDoc.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in first["loc"])
        where = where.replace(".[", "[")
        raise SpecError(
            f"{source}: {where or 'file'}: {first['msg']}; export the batch again "
            "(wtb recordings export)"
        ) from None
    by_key: dict[str, list[FileRecord]] = {}
    for i, call in enumerate(doc.calls):
        if request_key(call.kind, call.name, call.request) != call.request_key:
            raise SpecError(
                f"{source}: calls[{i}].request_key does not match its kind, name and request "
                "(the file was edited); export the batch again"
            )
        by_key.setdefault(call.request_key, []).append(
            FileRecord(
                call.repeat,
                call.occurrence,
                call.tokens_in,
                call.tokens_out,
                canonical(call.response),
            )
        )
    return Recordings(source, by_key)


_loaded: dict[tuple[str, int, int] | None, Recordings] = {}
_lock = threading.Lock()


def load_recordings(path: str | Path) -> Recordings:
    """The recordings file at ``path``, read once per content version (path, mtime, size)."""
    file = Path(path)
    what = "recordings file"
    try:
        st = file.stat()
    except OSError:
        st = None
    key = (str(file.resolve()), st.st_mtime_ns, st.st_size) if st is not None else None
    with _lock:
        found = _loaded.get(key) if key is not None else None
    if found is not None:
        return found
    parsed = parse_recordings(read_text(file, what), f"{what} {file}")
    if key is None:
        return parsed
    with _lock:
        _loaded[key] = parsed
    return parsed


def export_batch(uow: UnitOfWork, batch_id: str) -> dict[str, Any]:
    """The recordings file content of ``batch_id``'s live calls (NotFoundError: no batch)."""
    uow.batches.get(batch_id)
    records = uow.calls.for_batch(batch_id)
    hashes = [h for r in records for h in (r.request_hash, r.response_hash)]
    bodies = uow.calls.bodies(hashes) if hashes else {}
    calls = [_file_call(r, bodies[r.request_hash], bodies[r.response_hash]) for r in records]
    return {"wtb_recordings": SCHEMA_VERSION, "batch_id": batch_id, "calls": calls}


def _file_call(r: CallRecord, request: Any, response: Any) -> dict[str, Any]:
    """One call of the file, redacted again (bodies stored before a redaction rule existed
    stay in the database; they never reach a file in clear). A request the redaction
    changed gets the key a replay computes from it."""
    where = f"call {r.request_key[:16]} of node {r.node!r}"
    if r.kind == "tool" and isinstance(request.get("args"), dict):  # as the recorder keys it
        stored = {**request, "args": stored_request(request["args"], where=where)}
    else:
        stored = stored_request(request, where=where)
    key = r.request_key if stored == request else request_key(r.kind, r.name, stored)
    return {
        "request_key": key,
        "kind": r.kind,
        "name": r.name,
        "node": r.node,
        "variant": r.variant,
        "repeat": r.repeat,
        "occurrence": r.occurrence,
        "request": stored,
        "response": redact_text(response),
        "tokens_in": r.tokens_in,
        "tokens_out": r.tokens_out,
    }


def check_out(out: str | Path) -> None:
    """Refuse an ``--out`` that cannot be written, before any work is done."""
    file = Path(out)
    if file.is_dir():
        raise SpecError(f"--out: {file} is a directory; give the path of a file")
    if not file.parent.is_dir():
        raise SpecError(f"--out: directory {file.parent} does not exist; create it first")


def write_recordings(doc: dict[str, Any], out: str | Path) -> None:
    """Write ``doc`` to ``out`` (atomically: a reader never sees half a file)."""
    check_out(out)
    file = Path(out)
    tmp = file.with_name(f".{file.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, file)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SpecError(f"--out: cannot write {file} ({exc.strerror or exc})") from None
