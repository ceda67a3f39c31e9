"""Delta blobs: a list value that extends the previous value of its key is stored as the
appended tail plus the content hash of the previous value (its base).

A blob's hash is always the content hash of the FULL value, so content addressing, prefix
sharing and diffs by hash are unchanged; only what a blob row holds differs. A delta blob's
data is ``"~" + base hash + canonical JSON of the tail`` (canonical JSON never starts with
``~``). Chains stay short: the engine writes the full value again after
:data:`MAX_DELTA_CHAIN` deltas, or when the tail is more than half the value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wtb_domain.errors import NotFoundError, StateError

DELTA_MARK = "~"
HASH_LENGTH = 32
MAX_DELTA_CHAIN = 32
"""At most this many deltas between a value and the full value it is rebuilt from."""
_MAX_ROUNDS = 4096
"""Reads give up (StateError) on a chain longer than this (only a damaged store has one)."""

Fetch = Callable[[Sequence[str]], Mapping[str, str]]
"""Stored data of the hashes it finds (absent ones are left out)."""


def is_delta(data: str) -> bool:
    return data.startswith(DELTA_MARK)


def delta_base(data: str) -> str:
    return data[1 : 1 + HASH_LENGTH]


def delta_data(base_hash: str, tail_encoded: str) -> str:
    return DELTA_MARK + base_hash + tail_encoded


def tail_prefix(full_encoded: str, tail_encoded: str) -> str:
    """The canonical JSON of the list ``full`` without its tail (both canonical JSON lists,
    the tail non-empty and shorter than ``full``): ``[P,T]`` less ``[T]`` is ``[P]``."""
    return full_encoded[: len(full_encoded) - len(tail_encoded)] + "]"


def load_values(hashes: Sequence[str], fetch: Fetch) -> dict[str, Any]:
    """The decoded values of ``hashes``, delta chains followed to their full base.

    Raises:
        NotFoundError: A value or a delta's base is not stored.
        StateError: A chain that does not end (a damaged store).
    """
    wanted = list(dict.fromkeys(hashes))
    raw: dict[str, str] = {}
    need = wanted
    for _ in range(_MAX_ROUNDS):
        if not need:
            break
        got = fetch(need)
        missing = [h for h in need if h not in got]
        if missing:
            raise NotFoundError(f"state values missing from the store: {missing[:3]}")
        raw.update(got)
        bases = {delta_base(d) for d in got.values() if is_delta(d)}
        need = [b for b in bases if b not in raw]
    else:
        raise StateError(f"a delta chain of {wanted[:1]} is longer than {_MAX_ROUNDS}")
    memo: dict[str, Any] = {}
    return {h: _value(h, raw, memo) for h in wanted}


def _value(digest: str, raw: Mapping[str, str], memo: dict[str, Any]) -> Any:
    chain: list[str] = []
    current = digest
    while current not in memo and is_delta(raw[current]):
        chain.append(current)
        current = delta_base(raw[current])
    if current not in memo:
        memo[current] = json.loads(raw[current])
    value = memo[current]
    for d in reversed(chain):
        if not isinstance(value, list):
            raise StateError(f"delta blob {d} extends a value that is not a list")
        value = [*value, *json.loads(raw[d][1 + HASH_LENGTH :])]
        memo[d] = value
    return value


def referenced_bases(blobs: Mapping[str, str]) -> set[str]:
    """The base hashes that the delta blobs among ``blobs`` refer to."""
    return {delta_base(d) for d in blobs.values() if is_delta(d)}
