"""from_langgraph: structure, reducers, messages, variants and the features it refuses."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from tests.langgraph import graphs
from wtb_domain import END as WTB_END
from wtb_domain import Status, WorkflowError, memory_app
from wtb_domain.langgraph import VariantSpec, from_langgraph, to_langgraph_state, to_wtb_state
from wtb_domain.langgraph.messages import decode_messages, encode_messages


def run(wf: Any, state: dict[str, Any], **kw: Any) -> tuple[Any, dict[str, Any]]:
    app = memory_app(audit=False)
    execution = app.controller.run(wf, state, **kw)
    return execution, app.controller.state(execution.id)


@pytest.mark.parametrize("path_map", [True, False])
def test_conditional_edges_loop_and_reducers_match_langgraph(path_map: bool) -> None:
    graph = graphs.counter_graph(path_map=path_map)
    wf = from_langgraph(graph)
    assert wf.entry == "inc"
    assert wf.edges == {"double": WTB_END}
    execution, state = run(wf, {"last": ""})
    assert execution.status is Status.COMPLETED, execution.error_message
    expected = graph.compile().invoke({"last": ""})
    assert state == expected
    assert state == {
        "total": 8,
        "log": ["inc:0", "inc:1", "inc:2", "inc:3", "double"],
        "last": "double",
    }


def test_channel_reducers_become_the_engines_reducers() -> None:
    wf = from_langgraph(graphs.counter_graph())
    assert wf.reducers["log"].identity == "append"  # operator.add on a list
    assert "langgraph_reducer[total:" in wf.reducers["total"].identity
    assert "last" not in wf.reducers  # plain keys are replaced
    chat = from_langgraph(graphs.react_graph())
    assert "add_messages" in chat.reducers["messages"].identity


def test_every_node_run_is_a_checkpoint_with_the_merged_value() -> None:
    app = memory_app(audit=False)
    execution = app.controller.run(from_langgraph(graphs.counter_graph()), {})
    history = app.controller.history(execution.id)
    nodes = [cp.node for cp in history if cp.node is not None]
    assert sorted(nodes) == ["double", "inc", "inc", "inc", "inc"]
    totals = [app.controller.checkpoint(cp.id).state["total"] for cp in history if cp.node]
    assert sorted(totals) == [1, 2, 3, 4, 8]


def test_conditional_entry_from_start_runs_a_routing_step() -> None:
    g = StateGraph(graphs.Counter)
    g.add_node("inc", graphs.inc)
    g.add_node("double", graphs.double)
    g.add_conditional_edges(START, lambda s: "double" if s.get("total") else "inc")
    g.add_edge("inc", END)
    g.add_edge("double", END)
    wf = from_langgraph(g)
    _, state = run(wf, {"total": 3})
    assert state["total"] == 6 and state["last"] == "double"
    _, state = run(wf, {})
    assert state["total"] == 1 and state["last"] == "inc"


def test_runnable_node_and_unknown_key_errors() -> None:
    _, state = run(from_langgraph(graphs.runnable_graph()), {})
    assert state == {"total": 10, "last": "runnable"}

    g = StateGraph(graphs.Counter)
    g.add_node("bad", lambda s: {"nope": 1})
    g.add_edge(START, "bad")
    execution, _ = run(from_langgraph(g), {})
    assert execution.status is Status.FAILED
    assert "'bad' wrote key 'nope'" in (execution.error_message or "")


def test_react_agent_messages_are_json_in_wtb_and_messages_for_the_nodes() -> None:
    graph = graphs.react_graph()
    wf = from_langgraph(graph)
    execution, state = run(wf, {"messages": [{"role": "user", "content": "6x7"}]})
    assert execution.status is Status.COMPLETED, execution.error_message
    assert [m["type"] for m in state["messages"]] == ["human", "ai", "tool", "ai"]
    assert state["messages"][2]["data"]["content"] == "42"
    assert state["calls"] == 2
    decoded = to_langgraph_state(graph, state)
    assert isinstance(decoded["messages"][0], HumanMessage)
    assert isinstance(decoded["messages"][2], ToolMessage)
    assert decoded["messages"][-1].content == "42"


def test_variants_replace_params_through_configurable_or_the_callable() -> None:
    def shouting(state: graphs.Chat) -> dict[str, Any]:
        return {"messages": [AIMessage("NO TOOLS")], "calls": 1}

    wf = from_langgraph(
        graphs.react_graph(),
        variants={
            "model": {
                "sentence": VariantSpec(params={"style": "sentence"}),
                "shout": VariantSpec(fn=shouting),
            }
        },
    )
    assert set(wf.node("model").variants) == {"default", "sentence", "shout"}
    _, state = run(wf, {"messages": ["3x5"]}, variants={"model": "sentence"})
    assert state["messages"][-1]["data"]["content"] == "The product is 15."
    _, state = run(wf, {"messages": ["3x5"]}, variants={"model": "shout"})
    assert [m["data"]["content"] for m in state["messages"]] == ["3x5", "NO TOOLS"]
    other = from_langgraph(graphs.react_graph(), variants={"model": {"x": VariantSpec()}})
    assert other.structural_hash != wf.structural_hash


def test_a_default_variant_takes_the_nodes_place() -> None:
    wf = from_langgraph(
        graphs.react_graph(),
        variants={"model": {"sentence": VariantSpec(params={"style": "sentence"}, default=True)}},
    )
    assert wf.node("model").default == "sentence"
    _, state = run(wf, {"messages": ["2x2"]})
    assert state["messages"][-1]["data"]["content"] == "The product is 4."


def test_async_nodes_run() -> None:
    wf = from_langgraph(graphs.react_graph(graphs.async_model_node))
    assert wf.node("model").variant(None).is_async  # the engine awaits it on its loop
    assert not wf.node("tools").variant(None).is_async
    execution, state = run(wf, {"messages": ["4x4"]})
    assert execution.status is Status.COMPLETED, execution.error_message
    assert state["messages"][-1]["data"]["content"] == "16"


class _S(TypedDict, total=False):
    x: int


def _one(name: str, fn: Any, **kw: Any) -> StateGraph[Any]:
    g = StateGraph(_S)
    g.add_node(name, fn, **kw)
    g.add_edge(START, name)
    return g


def test_unsupported_structure_is_refused_naming_node_and_feature() -> None:
    with pytest.raises(WorkflowError, match=r"uncompiled StateGraph.*before \.compile"):
        from_langgraph(graphs.counter_graph().compile())

    sub = _one("inner", lambda s: {"x": 1}).compile()
    with pytest.raises(WorkflowError, match="node 'outer' is a subgraph"):
        from_langgraph(_one("outer", sub))

    def routes(state: _S) -> Command[Any]:
        return Command(goto="a")

    g = _one("a", routes, destinations=("a",))
    with pytest.raises(WorkflowError, match="node 'a' declares Command destinations"):
        from_langgraph(g)

    g = StateGraph(_S)
    for n in ("a", "b", "c"):
        g.add_node(n, lambda s: {"x": 1})
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("a", "c")
    with pytest.raises(WorkflowError, match=r"node 'a' has 2 outgoing edges.*parallel"):
        from_langgraph(g)

    g = StateGraph(_S)
    for n in ("a", "b", "c"):
        g.add_node(n, lambda s: {"x": 1})
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge(["a", "b"], "c")
    with pytest.raises(WorkflowError, match="joins parallel branches"):
        from_langgraph(g)

    with pytest.raises(WorkflowError, match="variants: graph has no node 'nope'"):
        from_langgraph(_one("a", lambda s: {}), variants={"nope": {}})


def test_runtime_commands_sends_and_interrupts_fail_the_run_with_a_clear_error() -> None:
    def commands(state: _S) -> Any:
        return Command(update={"x": 1})

    def interrupts(state: _S) -> Any:
        interrupt("approve?")
        return {"x": 1}

    cases = {
        "commands": (commands, "returned a Command"),
        "interrupts": (interrupts, "interrupt"),
    }
    for name, (fn, message) in cases.items():
        execution, _ = run(from_langgraph(_one(name, fn)), {})
        assert execution.status is Status.FAILED
        assert f"node {name!r}" in (execution.error_message or "")
        assert message in (execution.error_message or ""), execution.error_message

    g = _one("a", lambda s: {"x": 1})
    g.add_node("b", lambda s: {"x": 2})
    g.add_conditional_edges("a", lambda s: [Send("b", {}), Send("b", {})])
    execution, _ = run(from_langgraph(g), {})
    assert execution.status is Status.FAILED
    assert "router after node 'a' returned 2 destinations" in (execution.error_message or "")


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_message = st.one_of(
    st.builds(HumanMessage, content=_text),
    st.builds(AIMessage, content=_text),
    st.builds(lambda c, i: ToolMessage(content=c, tool_call_id=i), _text, _text),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_message, max_size=5))
def test_messages_round_trip_through_json(messages: list[Any]) -> None:
    encoded = encode_messages(messages, key="m")
    import json

    assert decode_messages(json.loads(json.dumps(encoded)), key="m") == messages


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.dictionaries(_text, _text, max_size=3), st.lists(_text, max_size=3)))
def test_any_input_decodes_to_messages_or_a_state_error(value: Any) -> None:
    from wtb_domain import StateError

    try:
        out = decode_messages(value, key="m")
    except StateError as exc:
        assert "state key 'm'" in str(exc)
    else:
        assert all(hasattr(m, "content") for m in out)


def test_wtb_domain_imports_without_langgraph_and_the_adapter_says_how_to_install() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('langgraph', 'langchain_core'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib.util\n"
        "importlib.util.find_spec = lambda n, *a: None if n in ('langgraph','langchain_core') "
        "else __import__('importlib.machinery').machinery.PathFinder.find_spec(n)\n"
        "import wtb_domain, wtb_domain.langgraph as lg\n"
        "try:\n"
        "    lg.from_langgraph(object())\n"
        "except wtb_domain.WorkflowError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install -e ".[langgraph]"' in out.stdout, out.stderr


def test_a_pydantic_state_schema_reaches_the_node_as_the_model() -> None:
    from pydantic import BaseModel

    class Doc(BaseModel):
        text: str = ""
        words: int = 0

    seen: list[type] = []

    def count(state: Doc) -> dict[str, Any]:
        seen.append(type(state))
        return {"words": len(state.text.split())}

    g = StateGraph(Doc)
    g.add_node("count", count)
    g.add_edge(START, "count")
    _, state = run(from_langgraph(g), {"text": "one two three"})
    assert state == {"text": "one two three", "words": 3}
    assert seen == [Doc]
    assert g.compile().invoke({"text": "one two three"}) == state


def test_params_also_fill_the_graphs_context_schema_for_runtime_context() -> None:
    from dataclasses import dataclass

    from langgraph.runtime import Runtime

    @dataclass
    class Ctx:
        greeting: str = "hello"

    def greet(state: _S, runtime: Runtime[Ctx]) -> dict[str, Any]:
        return {"x": len(runtime.context.greeting)}

    g = StateGraph(_S, context_schema=Ctx)
    g.add_node("greet", greet)
    g.add_edge(START, "greet")
    wf = from_langgraph(
        g, variants={"greet": {"long": VariantSpec(params={"greeting": "bonjour"})}}
    )
    _, state = run(wf, {})
    assert state == {"x": 5}
    _, state = run(wf, {}, variants={"greet": "long"})
    assert state == {"x": 7}
    assert g.compile().invoke({}, context=Ctx("bonjour")) == state


def test_a_growing_message_history_is_stored_as_deltas_not_snapshots() -> None:
    def talk(state: graphs.Chat) -> dict[str, Any]:
        return {
            "messages": [
                AIMessage(f"turn {len(state['messages'])}", id=f"m{len(state['messages'])}")
            ]
        }

    g = StateGraph(graphs.Chat)
    g.add_node("talk", talk)
    g.add_edge(START, "talk")
    g.add_conditional_edges("talk", lambda s: "talk" if len(s["messages"]) < 30 else END)
    app = memory_app(audit=False)
    start = to_wtb_state(g, {"messages": [HumanMessage("hi", id="h")]})
    assert start == {"messages": [{"type": "human", "data": start["messages"][0]["data"]}]}
    execution = app.controller.run(from_langgraph(g, max_steps=40), start)
    assert execution.status is Status.COMPLETED, execution.error_message
    assert len(app.controller.state(execution.id)["messages"]) == 30
    node_cps = [cp for cp in app.controller.history(execution.id) if cp.node == "talk"]
    with_delta = [cp for cp in node_cps if "messages" in cp.metadata.get("deltas", {})]
    assert len(node_cps) == 29
    assert len(with_delta) >= 25, [cp.metadata.get("deltas") for cp in node_cps]
