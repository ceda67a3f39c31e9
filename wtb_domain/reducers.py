"""Reducers per state key: how a node's update of a key merges with the key's current value.

A key without a reducer is replaced by the update (``"replace"``). ``"append"`` extends a list
with the items the node returns. Any other reducer is a callable ``(current, update) -> new``
(``current`` is None while the key is absent), given directly or as an import path
``"package.module:function"`` (checked by pattern and imported, never evaluated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wtb_domain.errors import StateError, WorkflowError
from wtb_domain.refs import import_ref, is_ref, one_line

ReducerSpec = str | Callable[[Any, Any], Any]
"""``"replace"``, ``"append"``, ``"package.module:function"`` or a callable."""

REPLACE = "replace"
APPEND = "append"


class _AppendTypeError(Exception):
    """An "append" reducer got something that is not a list (the engine names node and key)."""


def _replace(current: Any, update: Any) -> Any:
    return update


def _append(current: Any, update: Any) -> Any:
    if not isinstance(update, list | tuple):
        raise _AppendTypeError(
            f'returned a {type(update).__name__}; "append" needs a list of the items to append'
        )
    if current is None:
        return list(update)
    if not isinstance(current, list):
        raise _AppendTypeError(
            f'holds a {type(current).__name__} before this update; "append" extends a list: '
            "give the key a list in the input state (or none)"
        )
    return [*current, *update]


@dataclass(frozen=True)
class Reducer:
    """A resolved reducer: ``identity`` (its name, import path or ``module.qualname``) goes
    into the workflow hash; ``fn(current, update)`` returns the merged value."""

    identity: str
    fn: Callable[[Any, Any], Any]

    def __call__(self, current: Any, update: Any) -> Any:
        return self.fn(current, update)


_BUILTIN = {REPLACE: Reducer(REPLACE, _replace), APPEND: Reducer(APPEND, _append)}


def resolve_reducer(key: str, spec: ReducerSpec | Reducer) -> Reducer:
    """The :class:`Reducer` that ``spec`` names; raises WorkflowError naming the key."""
    if not isinstance(key, str) or not key:
        raise WorkflowError(f"reducer key must be a non-empty str, got {key!r}")
    if isinstance(spec, Reducer):
        return spec
    if isinstance(spec, str):
        if spec in _BUILTIN:
            return _BUILTIN[spec]
        if not is_ref(spec):
            shown = spec if len(spec) <= 80 else spec[:77] + "..."
            raise WorkflowError(
                f"reducer for key {key!r}: {shown!r} is not 'replace', 'append' or an import "
                "path 'package.module:function' (e.g. operator:add)"
            )
        fn = import_ref(spec, f"reducer for key {key!r}, import path", "operator:add")
        if not callable(fn):
            raise WorkflowError(
                f"reducer for key {key!r}: {spec!r} is a {type(fn).__name__}, not a function "
                "(current, update) -> new"
            )
        return Reducer(spec, fn)
    if callable(spec):
        module = getattr(spec, "__module__", None) or "?"
        name = getattr(spec, "__qualname__", None) or type(spec).__qualname__
        return Reducer(f"{module}.{name}", spec)
    raise WorkflowError(
        f"reducer for key {key!r} must be 'replace', 'append', an import path "
        f"'package.module:function' or a callable, got {type(spec).__name__}"
    )


def resolve_reducers(specs: Mapping[str, ReducerSpec | Reducer] | None) -> dict[str, Reducer]:
    return {key: resolve_reducer(key, spec) for key, spec in (specs or {}).items()}


def merge_update(
    reducers: Mapping[str, Reducer],
    state: Mapping[str, Any],
    update: Mapping[str, Any],
    *,
    node: str,
) -> dict[str, Any]:
    """``update`` with every key that has a reducer merged into the current value.

    Raises:
        StateError: A reducer refused the update (naming the node, the key and the reducer).
    """
    merged = dict(update)
    for key, value in update.items():
        reducer = reducers.get(key) if isinstance(key, str) else None
        if reducer is None or reducer.fn is _replace:
            continue
        try:
            merged[key] = reducer.fn(state.get(key), value)
        except _AppendTypeError as exc:
            raise StateError(f"node {node!r}: key {key!r} {exc}") from None
        except Exception as exc:
            raise StateError(
                f"node {node!r}: reducer {reducer.identity!r} of key {key!r} failed "
                f"({type(exc).__name__}: {one_line(exc)}); fix the reducer or the update"
            ) from exc
    return merged
