"""Simulated latency and usage metrics for the demo nodes, driven by the variant's params."""

from __future__ import annotations

import time

from wtb_domain.workflow import NodeContext


def simulate_latency(ctx: NodeContext) -> None:
    """Sleep for ``params["latency_ms"]`` milliseconds (default 0) to make variants differ.

    Args:
        ctx: The node context whose params are read.
    """
    latency_ms = float(ctx.params.get("latency_ms", 0))
    if latency_ms > 0:
        time.sleep(latency_ms / 1000)


def record_usage(ctx: NodeContext, n_tokens: int) -> None:
    """Record ``tokens`` and ``cost_usd`` (tokens times ``params["usd_per_1k_tokens"]``).

    Args:
        ctx: The node context to record on.
        n_tokens: How many words the node processed.
    """
    price = float(ctx.params.get("usd_per_1k_tokens", 0.0))
    ctx.record("tokens", float(n_tokens))
    ctx.record("cost_usd", round(n_tokens * price / 1000, 8))
