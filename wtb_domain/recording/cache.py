"""The node result cache: settings, and the key of a node run.

A node opts in with ``add_node(..., cache=True)`` or a batch spec's ``cache: {nodes: [...]}``.
The key is a hash of: the workflow's structural hash, the node, its variant (name, callable,
params), the code of the callable, the state the node reads (``reads=[...]``, else the whole
state) and -- unless ``share_repeats`` -- the batch repeat index, so repeats of a
nondeterministic node never share a cached result. ``cache: false`` / ``--no-cache`` turn the
cache off for a run (nothing read, nothing written).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wtb_domain.recording.model import CACHE_LABEL, repeat_of

CACHE_HITS = "cache_hits"
"""Node metric: 1 for a node run served from the cache (adds up in execution totals)."""


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool = True
    nodes: frozenset[str] = field(default_factory=frozenset)
    """Nodes cached besides those added with ``cache=True``."""
    share_repeats: bool = False

    @classmethod
    def from_labels(cls, labels: Mapping[str, Any]) -> CacheSettings:
        raw = labels.get(CACHE_LABEL)
        if raw is False:
            return cls(enabled=False)
        if not isinstance(raw, Mapping):
            return cls()
        return cls(
            bool(raw.get("enabled", True)),
            frozenset(raw.get("nodes") or ()),
            bool(raw.get("share_repeats", False)),
        )

    def applies(self, node: str, node_opt_in: bool) -> bool:
        return self.enabled and (node_opt_in or node in self.nodes)


def cache_label(
    enabled: bool = True, nodes: Sequence[str] = (), share_repeats: bool = False
) -> dict[str, Any]:
    return {"enabled": enabled, "nodes": sorted(nodes), "share_repeats": share_repeats}


def code_identity(fn: Callable[..., Any]) -> str:
    """The callable's module, qualified name and a hash of its bytecode, constants and
    closure values (a change in its body, or in a value it closes over, changes the key); a
    ``functools.partial``: its function and arguments; a callable object: its class's
    ``__call__``."""
    target = getattr(fn, "__wrapped__", fn)
    h = hashlib.sha256()
    if isinstance(target, functools.partial):
        h.update(code_identity(target.func).encode())
        h.update(_stable_repr((target.args, sorted(target.keywords.items()))).encode())
        return f"partial@{h.hexdigest()[:16]}"
    code = getattr(target, "__code__", None)
    if code is None:
        call = vars(type(target)).get("__call__")
        code = getattr(call, "__code__", None)
    if code is not None:
        h.update(code.co_code)
        h.update(repr(_consts(code)).encode())
    for cell in getattr(target, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        h.update(_stable_repr(value).encode())
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', '?')}"
    return f"{name}@{h.hexdigest()[:16]}"


def _stable_repr(value: Any) -> str:
    """A repr without memory addresses: callables by their code identity."""
    if callable(value) and not isinstance(value, type):
        return code_identity(value)
    if isinstance(value, tuple | list):
        return "[" + ",".join(_stable_repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k!r}:{_stable_repr(v)}" for k, v in value.items()) + "}"
    return repr(value).split(" at 0x")[0]


def _consts(code: Any) -> tuple[Any, ...]:
    out: list[Any] = []
    for c in code.co_consts:
        out.append(_consts(c) if hasattr(c, "co_code") else c)
    return tuple(out)


def cache_key(
    *,
    workflow_hash: str,
    node: str,
    variant: Mapping[str, Any],
    code: str,
    read_hashes: Mapping[str, str | None],
    labels: Mapping[str, Any],
    share_repeats: bool,
) -> str:
    """``read_hashes``: the content hash of each key the node reads (None: absent)."""
    doc = {
        "workflow": workflow_hash,
        "node": node,
        "variant": dict(variant),
        "code": code,
        "reads": dict(sorted(read_hashes.items())),
        "repeat": None if share_repeats else repeat_of(labels),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
