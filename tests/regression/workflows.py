"""A tiny workflow for regression tests, importable by reference (``MODULE:gate``).

``answer`` doubles ``n``; with ``WTB_TEST_BROKEN=1`` in the environment, or while the file
named by ``WTB_TEST_BROKEN_FILE`` exists (a switch for long-lived workers), it gets every
answer wrong: the same variant, code that regressed overnight (works in CLI subprocesses too).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from wtb_domain import END, GraphBuilder, NodeContext, Workflow

GATE = "tests.regression.workflows:gate"
BROKEN_ENV = "WTB_TEST_BROKEN"
BROKEN_FILE_ENV = "WTB_TEST_BROKEN_FILE"


def _broken() -> bool:
    flag = os.environ.get(BROKEN_FILE_ENV)
    return os.environ.get(BROKEN_ENV) == "1" or bool(flag and os.path.exists(flag))


def answer(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    ctx.record("cost_usd", 0.01)
    n = int(state["n"])
    broken = _broken() or not ctx.params["right"]
    return {"answer": str(2 * n + 1 if broken else 2 * n)}


def gate() -> Workflow:
    """answer: good (right unless WTB_TEST_BROKEN=1) | bad (always wrong)."""
    g = GraphBuilder("gate")
    g.add_node("answer", answer, variant="good", params={"right": True})
    g.add_variant("answer", "bad", params={"right": False})
    g.set_entry("answer")
    g.add_edge("answer", END)
    return g.build()


def spec(
    name: str = "gate-nightly", variants: list[str] | None = None, **fields: Any
) -> dict[str, Any]:
    """A spec over 8 cases (enough for a significant paired test) of ``gate``."""
    data: dict[str, Any] = {
        "name": name,
        "workflow": GATE,
        "variants": {"answer": variants or ["good"]},
        "cases": [
            {"id": f"n{n}", "input": {"n": n}, "expected": {"answer": str(2 * n)}}
            for n in range(1, 9)
        ],
        "evaluators": [{"type": "exact_match", "field": "answer"}],
        "max_workers": 2,
        # Sub-millisecond latencies on a shared 2-core CI machine are noise: these tests judge
        # scores; the latency and cost rules are tested on hand-made rows (test_verdict.py).
        "regression": {"p95_ms": None},
    }
    data.update(fields)
    return data
