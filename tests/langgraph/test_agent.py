"""A LangGraph ReAct agent (chat model + ToolNode) run by WTB: pause before the tool call, fork
with an edited message, replay the model node with another prompt, batch 3 prompts x 20 cases
with prefix sharing, and parity with LangGraph running the same graph."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import messages_to_dict

from tests.langgraph import graphs
from wtb_domain import App, Status, memory_app, sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import load_spec
from wtb_domain.demo import agent as demo
from wtb_domain.demo.data import load_dataset
from wtb_domain.ids import new_id
from wtb_domain.langgraph import from_langgraph, to_langgraph_state

QUESTION = "How many square kilometres does Marrowick Island cover?"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    if request.param == "memory":
        yield memory_app(audit=False)
        return
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'wtb.db'}"
    application = sql_app(url, audit=False)
    yield application
    assert application.database is not None
    application.database.dispose()


def _contents(state: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["type"], str(m["data"]["content"])) for m in state["messages"]]


def test_pause_before_the_tool_fork_with_an_edited_call_and_replay_another_prompt(
    app: App,
) -> None:
    wf = "wtb_domain.demo.agent:workflow"
    ctl = app.controller
    paused = ctl.run(wf, {"question": QUESTION}, break_before=["tools"])
    assert paused.status is Status.PAUSED and paused.paused_at == "before:tools"
    state = ctl.state(paused.id)
    call = state["messages"][-1]["data"]["tool_calls"][0]
    assert call["name"] == "search_island" and call["args"] == {"query": QUESTION}
    assert state["tool_calls"] == 1

    # fork with the model's tool call edited: the tool runs on the edited query
    edited = copy.deepcopy(state["messages"])
    edited[-1]["data"]["tool_calls"][0]["args"]["query"] = "Who designed the Callow Light?"
    fork = ctl.fork(paused.head_checkpoint_id or "", {"messages": edited})
    assert fork.status is Status.COMPLETED, fork.error_message
    forked = ctl.state(fork.id)
    tool_text = forked["messages"][2]["data"]["content"]
    assert "Edda Varn" in tool_text and "212" not in tool_text
    # ... while the original still waits before the tool, untouched
    assert ctl.get(paused.id).status is Status.PAUSED
    assert ctl.state(paused.id)["messages"] == state["messages"]

    original = ctl.resume(paused.id)
    assert original.status is Status.COMPLETED
    done = ctl.state(original.id)
    assert "212 square kilometres" in done["messages"][2]["data"]["content"]
    assert done["answer"] == "212"

    # replay the model node from the checkpoint before it with the chatty prompt
    before_agent = next(cp for cp in ctl.history(original.id) if cp.node == "prepare")
    replay = ctl.replay(before_agent.id, "agent", "chatty")
    assert replay.status is Status.COMPLETED
    replayed = ctl.state(replay.id)
    assert replayed["answer"] == "Great question! The island records say the answer is 212."
    assert [t for t, _ in _contents(replayed)] == ["human", "ai", "tool", "ai"]


def _run_batch(service: BatchService, sharing: bool, batch_id: str) -> tuple[int, str]:
    batch_id = f"{batch_id}-{new_id()[:8]}"  # the PostgreSQL database is shared by the session
    spec, base = load_spec(demo.BATCH_PATH)
    spec = spec.model_copy(update={"batch_id": batch_id, "prefix_sharing": sharing})
    prepared = service.prepare(spec, base)
    node_runs = sum(
        service.run_group(prepared.payload, g.case_id, list(g.leaf_keys)).node_executions
        for g in prepared.groups
    )
    summary = service.finish(batch_id, node_executions=node_runs)
    assert summary.done == summary.total == 60 and summary.failed == 0
    return node_runs, batch_id


def test_three_prompts_by_twenty_cases_share_the_prefix_and_score_right(app: App) -> None:
    service = BatchService(app)
    shared, shared_id = _run_batch(service, True, "agent-shared")
    unshared, unshared_id = _run_batch(service, False, "agent-unshared")
    # per case: prepare once (shared) or per prompt, then grounded/chatty 4 nodes, memory 2
    assert shared == 20 * (1 + 4 + 4 + 2) == 220
    assert unshared == 20 * 3 * 1 + 20 * (4 + 4 + 2) == 260

    expected = {c["input"]["question"]: c["expected"]["answer"] for c in load_dataset()[:20]}
    for batch_id in (shared_id, unshared_id):
        with app.uow() as uow:
            results = uow.results.for_batch(batch_id)
        assert len(results) == 60
        by: dict[str, list[Any]] = {}
        for r in results:
            by.setdefault(r.variant_config["agent"], []).append(r)
        assert {k: len(v) for k, v in by.items()} == {"grounded": 20, "chatty": 20, "memory": 20}
        for r in by["grounded"]:
            state = app.controller.state(r.execution_id)
            assert state["answer"] == expected[state["question"]]
            assert r.overall_score == 1.0 and r.metrics["tokens"] > 0
        memory_right = [r for r in by["memory"] if r.overall_score == 1.0]
        assert len(memory_right) == 8
        assert all(r.overall_score < 1.0 for r in by["chatty"])
        assert all(app.controller.state(r.execution_id)["tool_calls"] == 0 for r in by["memory"])
        matrix = service.matrix(batch_id)
        means = {s.name: s.mean_score for s in matrix.stats}
        assert means["agent=grounded"] == 1.0
        assert means["agent=memory"] == pytest.approx(0.4)
        assert 0 < means["agent=chatty"] < 0.4
        assert matrix.stats[0].name == "agent=grounded"


def _normalised(messages: list[Any]) -> list[dict[str, Any]]:
    """Messages without the ids each run draws afresh."""
    out = []
    for m in messages_to_dict(messages):
        data = {k: v for k, v in m["data"].items() if k != "id"}
        out.append({"type": m["type"], **data})
    return out


@pytest.mark.parametrize("question", ["6x7", "12x12"])
def test_parity_langgraph_and_wtb_reach_the_same_final_state(question: str) -> None:
    graph = graphs.react_graph()
    lg_final = graph.compile().invoke({"messages": [question]})
    execution = (app := memory_app(audit=False)).controller.run(
        from_langgraph(graph), {"messages": [question]}
    )
    wtb_final = to_langgraph_state(graph, app.controller.state(execution.id))
    assert set(wtb_final) == set(lg_final)
    assert wtb_final["calls"] == lg_final["calls"] == 2
    assert _normalised(wtb_final["messages"]) == _normalised(lg_final["messages"])


def test_parity_on_the_demo_agent() -> None:
    graph = demo.build_graph()
    config = {"configurable": {"prompt": demo.prompt("chatty")}}
    lg_final = graph.compile().invoke({"question": QUESTION}, config)
    app = memory_app(audit=False)
    execution = app.controller.run(
        demo.workflow(), {"question": QUESTION}, variants={"agent": "chatty"}
    )
    wtb_final = to_langgraph_state(graph, app.controller.state(execution.id))
    assert wtb_final["answer"] == lg_final["answer"]
    assert wtb_final["tool_calls"] == lg_final["tool_calls"] == 1
    assert _normalised(wtb_final["messages"]) == _normalised(lg_final["messages"])


def test_a_question_without_a_recording_fails_naming_prompt_and_question() -> None:
    app = memory_app(audit=False)
    execution = app.controller.run(demo.workflow(), {"question": "What is the capital of Mars?"})
    assert execution.status is Status.FAILED
    assert execution.error_type == "ResponseNotRecorded"
    message = execution.error_message or ""
    assert "prompt 'grounded'" in message and "What is the capital of Mars?" in message
    assert execution.paused_at == "failed:agent"
