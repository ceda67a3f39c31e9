"""Reducer specs: resolution, errors, and their place in the workflow hash."""

from __future__ import annotations

import operator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wtb_domain import END, GraphBuilder, NodeContext, WorkflowError
from wtb_domain.reducers import merge_update, resolve_reducer
from wtb_domain.workflow import State


def noop(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {}


def builder(**kwargs: Any) -> GraphBuilder:
    g = GraphBuilder("w", **kwargs)
    g.add_node("a", noop).add_edge("a", END).set_entry("a")
    return g


def keep_max(current: Any, update: Any) -> Any:
    return update if current is None else max(current, update)


def test_builtins_import_paths_and_callables_resolve() -> None:
    assert resolve_reducer("k", "replace").identity == "replace"
    assert resolve_reducer("k", "append")([1], [2, 3]) == [1, 2, 3]
    assert resolve_reducer("k", "append")(None, (1,)) == [1]
    add = resolve_reducer("k", "operator:add")
    assert add.identity == "operator:add" and add(2, 3) == 5
    own = resolve_reducer("k", keep_max)
    assert own.identity == "tests.test_reducers.keep_max"
    assert own(3, 1) == 3


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("appendd", "is not 'replace', 'append' or an import path"),
        ("os.system('x')", "is not 'replace', 'append' or an import path"),
        ("no_such_module_xyz:fn", "module 'no_such_module_xyz' not found"),
        ("operator:no_such", "has no attribute 'no_such'"),
        ("math:pi", "not a function"),
        (42, "must be 'replace', 'append'"),
    ],
)
def test_bad_specs_are_one_line_workflow_errors_naming_the_key(spec: Any, fragment: str) -> None:
    with pytest.raises(WorkflowError) as err:
        builder().set_reducer("messages", spec)
    message = str(err.value)
    assert "key 'messages'" in message and fragment in message
    assert "\n" not in message


@given(st.text(max_size=80))
def test_any_spec_string_resolves_or_is_a_workflow_error(spec: str) -> None:
    try:
        reducer = resolve_reducer("k", spec)
    except WorkflowError as exc:
        assert "\n" not in str(exc)
    else:
        assert callable(reducer.fn)


def test_the_reducer_is_part_of_the_workflow_hash() -> None:
    plain = builder().build().structural_hash
    replace = builder(reducers={"m": "replace"}).build().structural_hash
    append = builder(reducers={"m": "append"}).build().structural_hash
    custom = builder().set_reducer("m", "operator:add").build().structural_hash
    other = builder().set_reducer("m", keep_max).build().structural_hash
    assert len({plain, replace, append, custom, other}) == 5
    assert builder(reducers={"m": "append"}).build().structural_hash == append
    assert builder().build().structural_hash == plain  # no reducers: the hash of before


def test_with_variants_keeps_the_reducers() -> None:
    wf = builder(reducers={"m": "append"}).build()
    assert dict(wf.with_variants({"a": {}}).reducers) == dict(wf.reducers)


def test_merge_update_applies_only_keys_with_a_reducer() -> None:
    reducers = {"m": resolve_reducer("m", "append"), "n": resolve_reducer("n", operator.add)}
    merged = merge_update(
        reducers, {"m": [1], "n": 1, "o": 1}, {"m": [2], "n": 2, "o": 5}, node="x"
    )
    assert merged == {"m": [1, 2], "n": 3, "o": 5}
