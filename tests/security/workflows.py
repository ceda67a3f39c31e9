"""A workflow that uses secrets without storing them: it records only their digests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from wtb_domain import END, GraphBuilder, NodeContext, Workflow

State = Mapping[str, Any]
ENV_NAMES = ("WTB_SEC_LITERAL_KEY", "WTB_SEC_FROM_BLOCK", "WTB_SEC_FROM_ENV")
WORKFLOW = "tests.security.workflows:vault"


def digest(value: str | None) -> str | None:
    return None if value is None else hashlib.sha256(value.encode()).hexdigest()


def use_secrets(state: State, ctx: NodeContext) -> dict[str, Any]:
    seen = {name: digest(os.environ.get(name)) for name in ENV_NAMES}
    return {"env_digests": seen, "param_digest": digest(ctx.params.get("api_key"))}


def answer(state: State, ctx: NodeContext) -> dict[str, Any]:
    return {"answer": str(state.get("q", ""))}


def vault() -> Workflow:
    """``call`` (variants plain | keyed, keyed takes an ``api_key`` param) -> ``answer``."""
    g = GraphBuilder("vault")
    g.add_node("call", use_secrets, variant="plain", params={"api_key": None})
    g.add_variant("call", "keyed")
    g.add_node("answer", answer)
    g.add_edge("call", "answer").add_edge("answer", END)
    g.set_entry("call")
    return g.build()
