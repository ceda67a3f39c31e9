"""A workflow whose LLM and tool calls carry secrets in every place a user might put one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wtb_domain.workflow import GraphBuilder, NodeContext

PROMPT_KEY = "sk-proj-Pr0mptS3cretAbCdEfGh1234"
HEADER_TOKEN = "hdr9Secret8Token7Value6"
PARAM_KEY = "param-key-literal-42"
ECHOED_KEY = "sk-ant-Echo3dBackByTheModel9876"
TOOL_PASSWORD = "tool-pw-literal-77"
SECRETS = (PROMPT_KEY, HEADER_TOKEN, PARAM_KEY, ECHOED_KEY, TOOL_PASSWORD)


def fake_llm(**request: Any) -> dict[str, Any]:
    return {
        "model": request["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"use {ECHOED_KEY}"}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def lookup(term: str, password: str) -> dict[str, Any]:
    return {"term": term, "note": f"signed with Bearer {HEADER_TOKEN}"}


def ask(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    reply = ctx.llm(
        fake_llm,
        model="fake-small",
        messages=[{"role": "user", "content": f"{state['q']} (my key is {PROMPT_KEY})"}],
        extra_headers={"Authorization": f"Bearer {HEADER_TOKEN}"},
        metadata={"user_api_key": PARAM_KEY, "trace": "plain"},
        max_tokens=20,
    )
    found = ctx.tool("lookup", lookup, {"term": state["q"], "password": TOOL_PASSWORD})
    content = reply["choices"][0]["message"]["content"]
    return {"answer_len": len(content), "term": found["term"]}


def workflow() -> GraphBuilder:
    g = GraphBuilder("leaky")
    g.add_node("ask", ask, deterministic=False)
    g.set_entry("ask")
    return g
