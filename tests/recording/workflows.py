"""Workflows of the recording tests: a QA agent calling the official OpenAI client (wrapped)
and a tool through ctx, plus a cached, counted node."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

from openai import AsyncOpenAI, OpenAI

from wtb_domain.recording.openai import wrap
from wtb_domain.workflow import GraphBuilder, NodeContext

URL_ENV = "WTB_TEST_OPENAI_URL"
RUNS: Counter[str] = Counter()
TOOL_RUNS: Counter[str] = Counter()


def client() -> Any:
    return wrap(OpenAI(base_url=os.environ[URL_ENV], api_key="sk-test-secret", max_retries=0))


def aclient() -> Any:
    return wrap(AsyncOpenAI(base_url=os.environ[URL_ENV], api_key="sk-test-secret", max_retries=0))


def lookup(term: str) -> dict[str, Any]:
    TOOL_RUNS[term] += 1
    return {"term": term, "length": len(term)}


def retrieve(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    RUNS["retrieve"] += 1
    found = ctx.tool("lookup", lookup, {"term": state["question"]})
    return {"docs": [f"doc about {found['term']}"]}


def answer(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    RUNS["answer"] += 1
    reply = client().chat.completions.create(
        model=ctx.params.get("model", "fake-small"),
        messages=[
            {"role": "system", "content": ctx.params.get("prompt", "Be brief.")},
            {"role": "user", "content": state["question"]},
        ],
        temperature=ctx.params.get("temperature", 0.0),
        max_tokens=20,
        extra_headers={"Authorization-Extra": "Bearer header-secret"},
    )
    return {"answer": reply.choices[0].message.content, "model": reply.model}


async def aanswer(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    RUNS["aanswer"] += 1
    reply = await aclient().chat.completions.create(
        model="fake-small", messages=[{"role": "user", "content": state["question"]}]
    )
    return {"answer": reply.choices[0].message.content}


def shout(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    RUNS["shout"] += 1
    return {"loud": f"{state['answer'].upper()}{ctx.params.get('suffix', '!')}"}


def agent() -> GraphBuilder:
    g = GraphBuilder("recorded-agent")
    g.add_node("retrieve", retrieve, cache=True, reads=["question"])
    g.add_node("answer", answer, deterministic=False)
    g.add_variant("answer", "careful", params={"prompt": "Think, then answer."})
    g.add_node("shout", shout, cache=True, reads=["answer"])
    g.add_variant("shout", "calm", params={"suffix": "."})
    g.add_edge("retrieve", "answer")
    g.add_edge("answer", "shout")
    g.set_entry("retrieve")
    return g


workflow = agent()


def remember(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    RUNS["remember"] += 1
    return {"messages": [f"seen {state['question']}"]}


def async_agent() -> GraphBuilder:
    """An async node calling the wrapped AsyncOpenAI client, then a cached node whose update
    an append reducer merges."""
    g = GraphBuilder("recorded-async-agent")
    g.set_reducer("messages", "append")
    g.add_node("aanswer", aanswer)
    g.add_node("remember", remember, cache=True, reads=["question"])
    g.add_edge("aanswer", "remember")
    g.set_entry("aanswer")
    return g


async_workflow = async_agent()
