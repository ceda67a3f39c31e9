"""A real compiled LangGraph graph run with WtbCheckpointSaver, then WTB's CLI on its thread."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from sqlalchemy import func, select
from typer.testing import CliRunner

from wtb_cli.main import app as cli
from wtb_domain.adapters.sql.database import Database
from wtb_domain.adapters.sql.repositories import BLOBS, CHECKPOINTS
from wtb_domain.langgraph.saver import WtbCheckpointSaver
from wtb_domain.langgraph.store import execution_id, wtb_checkpoint_id

DOC = "reference text " * 2000  # a large channel no node changes


class State(TypedDict):
    messages: Annotated[list[Any], add_messages]
    doc: str
    count: int


def build(saver: WtbCheckpointSaver) -> Any:
    model = FakeListChatModel(responses=["first answer", "second answer", "third answer"])

    def agent(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    async def count(state: State) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"count": state["count"] + 1}

    g = StateGraph(State)
    g.add_node("agent", agent)
    g.add_node("count", count)
    g.add_edge(START, "agent")
    g.add_edge("agent", "count")
    g.add_edge("count", END)
    return g.compile(checkpointer=saver)


def app_history(url: str, exec_id: str) -> list[Any]:
    from wtb_domain.bootstrap import sql_app

    return sql_app(url).controller.history(exec_id)


def _cli(url: str, *args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--db", url])
    assert result.exit_code == 0, result.output
    return result.output


def test_langgraph_thread_is_a_wtb_execution(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wtb.db'}"
    db = Database(url)
    saver = WtbCheckpointSaver(db)
    graph = build(saver)
    config = {"configurable": {"thread_id": "chat-1"}}
    for text in ("hello", "again"):
        out = asyncio.run(
            graph.ainvoke({"messages": [HumanMessage(text)], "doc": DOC, "count": 0}, config)
        )
    assert [m.content for m in out["messages"]] == [
        "hello",
        "first answer",
        "again",
        "second answer",
    ]
    assert isinstance(out["messages"][1], AIMessage)

    history = list(saver.list(config))
    assert len(history) == 8  # per invoke: input, start, agent, count
    with db.engine.connect() as conn:
        doc_blobs = conn.execute(
            select(func.count()).select_from(BLOBS).where(BLOBS.c.data == json.dumps(DOC))
        ).scalar_one()
        manifests = [m for (m,) in conn.execute(select(CHECKPOINTS.c.manifest))]
    # The big channel is stored once; the 7 checkpoints that carry it all point at that row.
    assert doc_blobs == 1
    assert len(manifests) == 8 and len({m["doc"] for m in manifests if "doc" in m}) == 1
    assert sum("doc" in m for m in manifests) == 7

    # Reading back through LangGraph: the latest state is what the graph produced.
    snapshot = graph.get_state(config)
    assert snapshot.values["count"] == 1 and snapshot.values["doc"] == DOC
    assert snapshot.values["messages"] == out["messages"]

    exec_id = execution_id("chat-1", "")
    listing = _cli(url, "history", exec_id)
    ids = [
        wtb_checkpoint_id("chat-1", "", t.config["configurable"]["checkpoint_id"]) for t in history
    ]
    for cp in ids:
        assert cp[:12] in listing
    nodes = {c.node for c in app_history(url, exec_id)}
    assert {"agent", "count"} <= nodes  # the node a checkpoint records, as LangGraph ran it

    after_count, after_agent = history[0], history[1]  # newest first
    assert after_agent.checkpoint["channel_values"]["messages"][-1].content == "second answer"
    assert after_count.checkpoint["channel_values"]["count"] == 1
    cp_agent = wtb_checkpoint_id("chat-1", "", after_agent.config["configurable"]["checkpoint_id"])
    cp_count = wtb_checkpoint_id("chat-1", "", after_count.config["configurable"]["checkpoint_id"])
    shown = _cli(url, "show", cp_agent)
    assert "second answer" in shown
    diff = _cli(url, "diff", cp_agent, cp_count)
    assert "count" in diff and "messages" not in diff

    forked = _cli(url, "fork", cp_agent, "--set", json.dumps({"count": 41}))
    match = re.search(r"graph\.invoke\(None, (\{.*\})\)", forked)
    assert match, forked
    fork_config = json.loads(match.group(1))
    assert fork_config["configurable"]["thread_id"] != "chat-1"
    fork_exec = execution_id(fork_config["configurable"]["thread_id"], "")
    assert fork_exec in forked
    # LangGraph continues the forked thread: the pending "count" node runs on the patched state.
    resumed = asyncio.run(graph.ainvoke(None, fork_config))
    assert resumed["count"] == 42
    assert [m.content for m in resumed["messages"]] == [m.content for m in out["messages"]]
    # The original thread is untouched.
    assert graph.get_state(config).values["count"] == 1
    status = _cli(url, "history", fork_exec)
    assert "fork" in status
    # What WTB cannot do on a LangGraph thread is refused in one line, naming the way out.
    refused = CliRunner().invoke(cli, ["resume", exec_id, "--db", url])
    assert refused.exit_code != 0 and "LangGraph thread" in refused.output, refused.output
    refused = CliRunner().invoke(cli, ["fork", cp_agent, "--variant", "agent=x", "--db", url])
    assert refused.exit_code != 0 and "--set only" in refused.output
    refused = CliRunner().invoke(cli, ["rollback", cp_agent, "--db", url])
    assert refused.exit_code != 0 and "LangGraph thread" in refused.output, refused.output
    db.engine.dispose()


def test_async_graph_on_postgres(pg_url: str) -> None:
    db = Database(pg_url)
    saver = WtbCheckpointSaver(db)
    graph = build(saver)
    config = {"configurable": {"thread_id": "pg-chat"}}
    out = asyncio.run(
        graph.ainvoke({"messages": [HumanMessage("hi")], "doc": DOC, "count": 5}, config)
    )
    assert out["count"] == 6
    again = asyncio.run(graph.aget_state(config))
    assert again.values["messages"][-1].content == "first answer"
    asyncio.run(saver.adelete_thread("pg-chat"))
    assert asyncio.run(graph.aget_state(config)).values == {}
