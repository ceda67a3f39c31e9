"""GraphBuilder validation, load_workflow errors and the structural hash."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tests.contract import workflows
from wtb_domain import END, GraphBuilder, NodeContext, Workflow, WorkflowError, load_workflow

# Targets for load_workflow, importable as ``tests.test_workflow:<name>``.
NOT_A_WORKFLOW = 42


def returns_a_number() -> int:
    return 42


def step(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    return {"n": state.get("n", 0) + 1}


def other_step(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    return {"n": 0}


def route(state: Mapping[str, Any]) -> str:
    return "a"


a_builder = GraphBuilder("from_builder").add_node("a", step).set_entry("a")


def chain(*names: str) -> GraphBuilder:
    g = GraphBuilder("chain")
    for name in names:
        g.add_node(name, step)
    for src, dst in itertools.pairwise(names):
        g.add_edge(src, dst)
    g.add_edge(names[-1], END)
    g.set_entry(names[0])
    return g


# --- GraphBuilder validation --------------------------------------------------------------------


def test_a_valid_graph_builds() -> None:
    wf = chain("a", "b").build()
    assert isinstance(wf, Workflow)
    assert list(wf.nodes) == ["a", "b"]
    assert wf.next_node(None, {}) == "a"
    assert wf.next_node("a", {}) == "b"
    assert wf.next_node("b", {}) == END


def test_edge_to_unknown_node_names_it() -> None:
    g = chain("a", "b").add_edge("ghost_src", "a")  # an edge from a node that does not exist
    with pytest.raises(WorkflowError, match="ghost_src"):
        g.build()

    g = GraphBuilder("g").add_node("a", step).set_entry("a").add_edge("a", "ghost")
    with pytest.raises(WorkflowError, match="unknown node 'ghost'"):
        g.build()


def test_conditional_edge_to_unknown_node_names_it() -> None:
    g = GraphBuilder("g").add_node("a", step).set_entry("a")
    g.add_conditional_edges("a", route, {"a": "a", "b": "ghost"})
    with pytest.raises(WorkflowError, match="ghost"):
        g.build()


def test_unreachable_node_is_named() -> None:
    g = chain("a", "b").add_node("orphan", step)
    with pytest.raises(WorkflowError, match="'orphan' is unreachable"):
        g.build()


def test_missing_entry() -> None:
    g = GraphBuilder("g").add_node("a", step).add_edge("a", END)
    with pytest.raises(WorkflowError, match="no entry node"):
        g.build()


def test_entry_that_is_not_a_node() -> None:
    g = GraphBuilder("g").add_node("a", step).set_entry("ghost")
    with pytest.raises(WorkflowError, match="'ghost'"):
        g.build()


def test_no_nodes() -> None:
    with pytest.raises(WorkflowError, match="no nodes"):
        GraphBuilder("g").build()


def test_duplicate_node() -> None:
    g = GraphBuilder("g").add_node("a", step)
    with pytest.raises(WorkflowError, match="'a' is added twice"):
        g.add_node("a", other_step)


def test_duplicate_variant_and_variant_of_unknown_node() -> None:
    g = GraphBuilder("g").add_node("a", step).add_variant("a", "v2", params={"k": 1})
    with pytest.raises(WorkflowError, match="'v2'"):
        g.add_variant("a", "v2")
    with pytest.raises(WorkflowError, match="'ghost'"):
        g.add_variant("ghost", "v")


def test_second_outgoing_edge() -> None:
    g = GraphBuilder("g").add_node("a", step).add_node("b", step).add_edge("a", "b")
    with pytest.raises(WorkflowError, match="'a' already has an outgoing edge"):
        g.add_edge("a", END)
    with pytest.raises(WorkflowError, match="'a' already has an outgoing edge"):
        g.add_conditional_edges("a", route, ["b"])


@pytest.mark.parametrize("name", ["", END])
def test_reserved_or_empty_node_name(name: str) -> None:
    with pytest.raises(WorkflowError):
        GraphBuilder("g").add_node(name, step)


def test_node_fn_and_router_must_be_callable() -> None:
    with pytest.raises(WorkflowError, match="callable"):
        GraphBuilder("g").add_node("a", "not a function")  # type: ignore[arg-type]
    g = GraphBuilder("g").add_node("a", step)
    with pytest.raises(WorkflowError, match="callable"):
        g.add_conditional_edges("a", "state.x > 1", ["a"])  # type: ignore[arg-type]


def test_max_steps_must_be_positive() -> None:
    g = GraphBuilder("g", max_steps=0).add_node("a", step).set_entry("a")
    with pytest.raises(WorkflowError, match="max_steps"):
        g.build()


def test_unknown_node_and_variant_lookups_name_them() -> None:
    wf = workflows.linear()
    with pytest.raises(WorkflowError, match="no node 'zzz'"):
        wf.node("zzz")
    with pytest.raises(WorkflowError, match="no variant 'nope'"):
        wf.node("a").variant("nope")
    with pytest.raises(WorkflowError, match="'nope'"):
        wf.check_variants({"a": "nope"})


# --- load_workflow ------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["no_colon", ":attr", "module:", "", "tests.contract.workflows"])
def test_load_workflow_bad_format(ref: str) -> None:
    with pytest.raises(WorkflowError, match=re.escape("package.module:attr")):
        load_workflow(ref)


def test_load_workflow_missing_module_names_it() -> None:
    with pytest.raises(WorkflowError, match=re.escape("tests.no_such_module")):
        load_workflow("tests.no_such_module:workflow")
    with pytest.raises(WorkflowError, match="wtb_no_such_package"):
        load_workflow("wtb_no_such_package.mod:workflow")


def test_load_workflow_missing_attribute_names_it() -> None:
    with pytest.raises(WorkflowError, match="no attribute 'nope'"):
        load_workflow("tests.contract.workflows:nope")


@pytest.mark.parametrize(
    "attr",
    [
        "NOT_A_WORKFLOW",  # a constant
        "returns_a_number",  # a factory returning something else
        "step",  # a node function by mistake: it cannot be called without arguments
    ],
)
def test_load_workflow_target_must_be_a_workflow(attr: str) -> None:
    ref = f"tests.test_workflow:{attr}"
    with pytest.raises(WorkflowError, match=re.escape(ref)) as err:
        load_workflow(ref)
    assert "Workflow" in str(err.value)


@pytest.mark.parametrize(
    "ref", ["tests.contract.workflows:linear", "tests.test_workflow:a_builder"]
)
def test_load_workflow_accepts_factories_and_builders_and_records_the_ref(ref: str) -> None:
    wf = load_workflow(ref)
    assert isinstance(wf, Workflow)
    assert wf.ref == ref


# --- structural hash ----------------------------------------------------------------------------


def base(
    *,
    v2_params: Mapping[str, Any] | None = None,
    v2_fn: Callable[..., Any] = step,
    order: tuple[str, ...] = ("a", "b", "c"),
    extra_variant: bool = False,
) -> GraphBuilder:
    g = GraphBuilder("h")
    g.add_node("a", step, params={"k": 1})
    g.add_variant("a", "v2", v2_fn, params=v2_params or {"k": 2})
    g.add_node("b", step)
    g.add_node("c", step)
    if extra_variant:
        g.add_variant("b", "new")
    for src, dst in itertools.pairwise(order):
        g.add_edge(src, dst)
    g.add_edge(order[-1], END)
    g.set_entry(order[0])
    return g


def test_structural_hash_is_stable_for_the_same_graph() -> None:
    assert base().build().structural_hash == base().build().structural_hash
    assert workflows.linear().structural_hash == load_workflow(workflows.LINEAR).structural_hash


CHANGED: dict[str, Callable[[], GraphBuilder]] = {
    "add-variant": lambda: base(extra_variant=True),
    "variant-params": lambda: base(v2_params={"k": 3}),
    "variant-fn": lambda: base(v2_fn=other_step),
    "edge": lambda: base(order=("a", "c", "b")),
}


@pytest.mark.parametrize("change", list(CHANGED))
def test_structural_hash_changes_with_variants_and_edges(change: str) -> None:
    assert CHANGED[change]().build().structural_hash != base().build().structural_hash


def test_structural_hash_changes_with_a_conditional_edge() -> None:
    g = GraphBuilder("h")
    g.add_node("a", step).add_node("b", step).set_entry("a")
    g.add_edge("b", END)
    plain = GraphBuilder("h").add_node("a", step).add_node("b", step).set_entry("a")
    plain.add_edge("a", "b").add_edge("b", END)
    g.add_conditional_edges("a", route, {"a": "b", "done": END})
    assert g.build().structural_hash != plain.build().structural_hash
