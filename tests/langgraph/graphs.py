"""Small LangGraph graphs for the adapter tests (plain LangGraph code, nothing WTB-specific)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph, add_messages
from langgraph.prebuilt import ToolNode, tools_condition


class Counter(TypedDict, total=False):
    total: Annotated[int, operator.add]
    log: Annotated[list[str], operator.add]
    last: str


def inc(state: Counter) -> dict[str, Any]:
    return {"total": 1, "log": [f"inc:{state.get('total', 0)}"], "last": "inc"}


def double(state: Counter) -> dict[str, Any]:
    return {"total": state["total"], "log": ["double"], "last": "double"}


def counter_graph(*, path_map: bool = True) -> StateGraph[Any]:
    """inc -> (total < 4: inc | else double) -> END; with or without a path map."""
    g = StateGraph(Counter)
    g.add_node("inc", inc)
    g.add_node("double", double)
    g.add_edge(START, "inc")
    if path_map:
        g.add_conditional_edges("inc", lambda s: s["total"] < 4, {True: "inc", False: "double"})
    else:
        g.add_conditional_edges("inc", lambda s: "inc" if s["total"] < 4 else "double")
    g.add_edge("double", END)
    return g


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class Chat(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    calls: Annotated[int, operator.add]


def scripted_reply(messages: list[BaseMessage], style: str) -> AIMessage:
    """What the fake model says: a tool call for a new question, then the tool's result."""
    last = messages[-1]
    if last.type == "tool":
        text = str(last.content) if style == "plain" else f"The product is {last.content}."
        return AIMessage(text)
    a, b = (int(x) for x in str(last.content).split("x"))
    call = {"name": "multiply", "args": {"a": a, "b": b}, "id": f"call-{a}-{b}"}
    return AIMessage("", tool_calls=[call])


def model_node(state: Chat, config: RunnableConfig) -> dict[str, Any]:
    """A chat-model node: LangChain's fake chat model replying with the scripted message."""
    style = config.get("configurable", {}).get("style", "plain")
    reply = scripted_reply(state["messages"], style)
    model = FakeMessagesListChatModel(responses=[reply])
    return {"messages": [model.invoke(state["messages"])], "calls": 1}


async def async_model_node(state: Chat, config: RunnableConfig) -> dict[str, Any]:
    style = config.get("configurable", {}).get("style", "plain")
    model = FakeMessagesListChatModel(responses=[scripted_reply(state["messages"], style)])
    return {"messages": [await model.ainvoke(state["messages"])], "calls": 1}


def react_graph(model: Any = model_node) -> StateGraph[Any]:
    """START -> model -(tools_condition)-> tools -> model ... -> END."""
    g = StateGraph(Chat)
    g.add_node("model", model)
    g.add_node("tools", ToolNode([multiply]))
    g.add_edge(START, "model")
    g.add_conditional_edges("model", tools_condition)
    g.add_edge("tools", "model")
    return g


def runnable_graph() -> StateGraph[Any]:
    """A node that is a LangChain Runnable (not a function)."""
    g = StateGraph(Counter)
    g.add_node("step", RunnableLambda(lambda s: {"total": 10, "last": "runnable"}))
    g.add_edge(START, "step")
    g.add_edge("step", END)
    return g
