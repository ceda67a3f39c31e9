"""Prometheus counters of recorded calls and the node cache (default registry, created once).

``wtb_llm_tokens_total{model,kind}`` (kind: input, output) and ``wtb_llm_cost_usd_total{model}``
count live calls only: what a provider bills. ``wtb_cache_hits_total{node}`` counts node runs
served from the cache.
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, Counter

_lock = threading.Lock()
_counters: dict[str, Counter] = {}


def _counter(name: str, doc: str, labels: list[str]) -> Counter:
    with _lock:
        found = _counters.get(name)
        if found is None:
            found = _counters[name] = Counter(name, doc, labels, registry=REGISTRY)
        return found


def llm_usage(model: str, tokens_in: int, tokens_out: int, cost: float | None) -> None:
    tokens = _counter("wtb_llm_tokens", "LLM tokens of live calls", ["model", "kind"])
    tokens.labels(model, "input").inc(tokens_in)
    tokens.labels(model, "output").inc(tokens_out)
    if cost is not None:
        _counter(
            "wtb_llm_cost_usd", "USD cost of live LLM calls (priced models)", ["model"]
        ).labels(model).inc(cost)


def cache_hit(node: str) -> None:
    _counter("wtb_cache_hits", "Node runs served from the node result cache", ["node"]).labels(
        node
    ).inc()
