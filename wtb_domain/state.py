"""JSON state codec: canonical encoding, content hashes and diffs of top-level keys."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wtb_domain.deltas import MAX_DELTA_CHAIN, delta_data, tail_prefix
from wtb_domain.errors import SpecError, StateError

MAX_STATE_ENV = "WTB_MAX_STATE_BYTES"
DEFAULT_MAX_STATE_BYTES = 16 * 1024 * 1024
"""16 MiB: the sum of the encoded (canonical JSON, UTF-8) sizes of a state's top-level values."""


def max_state_bytes(value: str | None = None) -> int:
    """The state size limit: ``value``, else ``WTB_MAX_STATE_BYTES``, else 16 MiB.

    Raises:
        SpecError: The value is not a whole number of bytes >= 1 (one line, naming the
            variable and the fix).
    """
    text = os.environ.get(MAX_STATE_ENV) if value is None else value
    if text is None or not text.strip():
        return DEFAULT_MAX_STATE_BYTES
    digits = text.strip().replace("_", "")
    if not digits.isdigit() or len(digits) > 18 or int(digits) < 1:
        raise SpecError(
            f"{MAX_STATE_ENV}: {text[:40]!r} is not a whole number of bytes >= 1; "
            f"set it to e.g. {DEFAULT_MAX_STATE_BYTES} (16 MiB) or unset it"
        )
    return int(digits)


def value_size(value: Any, *, node: str | None, key: str) -> int:
    """Bytes of one state value as stored (its canonical JSON in UTF-8)."""
    return len(encode_value(value, node=node, key=key).encode("utf-8"))


def check_state_size(
    sizes: Mapping[str, int], update_sizes: Mapping[str, int], *, node: str | None, limit: int
) -> None:
    """Refuse an update after which the state (``sizes`` updated) exceeds ``limit`` bytes.

    Raises:
        StateError: Naming the node, the biggest key of the update and the limit.
    """
    total = sum(sizes.get(k, 0) for k in sizes.keys() - update_sizes.keys())
    total += sum(update_sizes.values())
    if total <= limit or not update_sizes:
        return
    before = sum(sizes.values())
    if total <= before:  # the update did not make the state bigger
        return
    key = max(update_sizes, key=lambda k: update_sizes[k] - sizes.get(k, 0))
    where = f"node {node!r} made the state" if node else "the input state is"
    raise StateError(
        f"{where} {total} bytes (key {key!r}: {update_sizes[key]} bytes), over "
        f"the limit of {limit} bytes ({MAX_STATE_ENV}); store large data outside the state "
        "(a file or object store) and keep a reference, or raise the limit"
    )


def encode_value(value: Any, *, node: str | None, key: str) -> str:
    """Canonical JSON of one state value; raises StateError naming the node and the key.

    Refused: non-JSON values (sets, objects, NaN), nesting too deep to encode, and text that
    is not Unicode (lone surrogates such as ``"\\ud800"``).
    """
    where = f"node {node!r} returned" if node else "input state has"
    try:
        encoded = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except RecursionError:
        raise StateError(
            f"{where} a value nested too deeply for key {key!r}; "
            "flatten it (state values are JSON, stored and read back with bounded depth)"
        ) from None
    except (TypeError, ValueError) as exc:
        raise StateError(
            f"{where} a non-JSON value for key {key!r} ({type(value).__name__}): {exc}. "
            "State values must be dict, list, str, int, float (finite), bool or None; "
            "convert sets/tuples/objects before returning them"
        ) from None
    try:
        encoded.encode("utf-8")
    except UnicodeEncodeError:
        raise StateError(
            f"{where} text that is not Unicode for key {key!r} (a lone surrogate such as "
            "\\ud800); decode bytes properly or drop the character"
        ) from None
    return encoded


def content_hash(encoded: str) -> str:
    """A 128-bit content address of an encoded value."""
    return hashlib.blake2b(encoded.encode(), digest_size=16).hexdigest()


def decode_value(encoded: str) -> Any:
    return json.loads(encoded)


def check_keys(update: Mapping[str, Any], *, node: str | None) -> None:
    where = f"node {node!r}" if node else "input state"
    for key in update:
        if not isinstance(key, str):
            raise StateError(f"{where} has a non-string key {key!r}; state keys must be str")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise StateError(
                f"{where} has a key that is not Unicode text ({key!r}, a lone surrogate); rename it"
            ) from None


@dataclass(frozen=True)
class EncodedUpdate:
    """The hashes of every top-level key after an update, and the values that are new."""

    manifest: dict[str, str]
    new_blobs: dict[str, str]
    changed_keys: list[str]
    decoded: dict[str, Any]
    """The changed values as they read back from JSON (tuples become lists, ...)."""
    sizes: dict[str, int] = field(default_factory=dict)
    """Encoded bytes (UTF-8) of every key of the update."""
    deltas: dict[str, int] = field(default_factory=dict)
    """Per key whose value is stored as a delta blob: the length of its delta chain (kept in
    the checkpoint's metadata as ``deltas``, so the next write knows when to store in full)."""


def encode_update(
    manifest: Mapping[str, str],
    update: Mapping[str, Any],
    *,
    node: str | None,
    previous: Mapping[str, Any] | None = None,
    deltas: Mapping[str, int] | None = None,
) -> EncodedUpdate:
    """Encode only the keys in ``update``; unchanged keys keep their hash from ``manifest``.

    With ``previous`` (the state ``manifest`` describes), a list that extends its previous
    value is stored as a delta blob (see :mod:`wtb_domain.deltas`); ``deltas`` are the chain
    lengths of the keys stored so (the previous checkpoint's ``deltas`` metadata).
    """
    check_keys(update, node=node)
    new_manifest = dict(manifest)
    blobs: dict[str, str] = {}
    changed: list[str] = []
    decoded: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    chains = dict(deltas or {})
    for key, value in update.items():
        encoded = encode_value(value, node=node, key=key)
        sizes[key] = len(encoded.encode("utf-8"))
        digest = content_hash(encoded)
        old = new_manifest.get(key)
        if old != digest:
            new_manifest[key] = digest
            depth = chains.pop(key, 0) + 1
            data = None
            if previous is not None and old is not None and depth <= MAX_DELTA_CHAIN:
                data = _delta(encoded, value, previous.get(key), old, node=node, key=key)
            blobs[digest] = encoded if data is None else data
            if data is not None:
                chains[key] = depth
            changed.append(key)
            decoded[key] = value if _plain(value) else json.loads(encoded)
    return EncodedUpdate(new_manifest, blobs, changed, decoded, sizes, chains)


def deltas_metadata(encoded: EncodedUpdate) -> dict[str, Any]:
    """The ``deltas`` entry of a checkpoint's metadata (empty when no value is a delta)."""
    return {"deltas": encoded.deltas} if encoded.deltas else {}


def _delta(
    encoded: str, value: Any, before: Any, before_hash: str, *, node: str | None, key: str
) -> str | None:
    """The delta blob of ``value`` if it is ``before`` plus a tail at most half its size."""
    if not isinstance(value, list) or not isinstance(before, list):
        return None
    kept = len(before)
    if kept == 0 or len(value) <= kept:
        return None
    tail = encode_value(value[kept:], node=node, key=key)
    if 2 * len(tail) > len(encoded):
        return None
    if content_hash(tail_prefix(encoded, tail)) != before_hash:
        return None  # not an extension (an item changed), or equal only by Python's ==
    return delta_data(before_hash, tail)


def _plain(value: Any) -> bool:
    """True for values whose JSON round trip is the value itself (skips re-decoding)."""
    return value is None or isinstance(value, str | bool | int | float)


@dataclass(frozen=True)
class StateDiff:
    """What changed between two states, key by key."""

    added: dict[str, Any] = field(default_factory=dict)
    removed: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": {k: {"before": a, "after": b} for k, (a, b) in self.changed.items()},
        }


def diff_states(before: Mapping[str, Any], after: Mapping[str, Any]) -> StateDiff:
    added = {k: v for k, v in after.items() if k not in before}
    removed = {k: v for k, v in before.items() if k not in after}
    changed = {
        k: (before[k], after[k]) for k in before.keys() & after.keys() if before[k] != after[k]
    }
    return StateDiff(added, removed, dict(sorted(changed.items())))
