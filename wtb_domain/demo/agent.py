"""The shipped agent demo: a LangGraph ReAct-style agent with a tool loop, run by WTB.

Graph (built with LangGraph, adapted with :func:`wtb_domain.langgraph.from_langgraph`)::

    START -> prepare -> agent -(tool calls)-> tools -> agent ...
                              \\-(no tool calls)-> finish -> END

``agent`` calls a chat model (the shipped :class:`RecordedChatModel`) with the variant's
system prompt (``config["configurable"]["prompt"]``); ``tools`` is LangGraph's ``ToolNode``
over ``search_island``. Variants of ``agent``: ``grounded`` (search, answer with the fact),
``chatty`` (search, answer in a sentence) and ``memory`` (no tools). Reference it as
``wtb_domain.demo.agent:workflow``; the batch is ``agent_batch.yaml``.
"""

from __future__ import annotations

import operator
from functools import cache
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph, add_messages
from langgraph.prebuilt import ToolNode, tools_condition

from wtb_domain.demo.agent_model import RecordedChatModel, prompt, search_island
from wtb_domain.langgraph import VariantSpec, from_langgraph
from wtb_domain.workflow import Workflow

DEMO_DIR = Path(__file__).resolve().parent
BATCH_PATH = DEMO_DIR / "agent_batch.yaml"
CASES_PATH = DEMO_DIR / "agent_cases.jsonl"
PROMPT_VARIANTS = ("grounded", "chatty", "memory")
_model = RecordedChatModel()


class AgentState(TypedDict, total=False):
    question: str
    messages: Annotated[list[AnyMessage], add_messages]
    tool_calls: Annotated[int, operator.add]
    answer: str


def prepare(state: AgentState) -> dict[str, Any]:
    """The question as the conversation's first message."""
    return {"messages": [HumanMessage(state["question"])]}


def agent(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
    """One chat-model call with the variant's system prompt; counts tool calls and tokens."""
    configurable = config.get("configurable", {})
    system = configurable.get("prompt") or prompt("grounded")
    reply = _model.invoke([SystemMessage(system), *state["messages"]])
    ctx = configurable.get("wtb_ctx")
    if ctx is not None:
        words = sum(len(str(m.content).split()) for m in state["messages"]) + len(
            str(reply.content).split()
        )
        ctx.record("tokens", words)
    return {"messages": [reply], "tool_calls": len(getattr(reply, "tool_calls", []) or [])}


def finish(state: AgentState) -> dict[str, Any]:
    """The last reply's text is the answer."""
    return {"answer": str(state["messages"][-1].content).strip()}


def build_graph() -> StateGraph[Any]:
    """The uncompiled LangGraph graph (compile it to run it on LangGraph itself)."""
    g = StateGraph(AgentState)
    g.add_node("prepare", prepare)
    g.add_node("agent", agent)
    g.add_node("tools", ToolNode([search_island]))
    g.add_node("finish", finish)
    g.add_edge(START, "prepare")
    g.add_edge("prepare", "agent")
    g.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: "finish"})
    g.add_edge("tools", "agent")
    g.add_edge("finish", END)
    return g


def prompt_variants() -> dict[str, VariantSpec]:
    return {
        name: VariantSpec(params={"prompt": prompt(name)}, default=name == "grounded")
        for name in PROMPT_VARIANTS
    }


def build_workflow() -> Workflow:
    """The WTB workflow of the agent graph, with the three prompt variants of ``agent``."""
    return from_langgraph(build_graph(), name="demo-agent", variants={"agent": prompt_variants()})


def workflow() -> Workflow:
    """:func:`build_workflow`, built once per process (the batch loads it per task)."""
    return _built()


@cache
def _built() -> Workflow:
    return build_workflow()
