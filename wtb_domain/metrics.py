"""Prometheus metrics fed by the message bus (executions, node runs, node latency).

``bootstrap`` subscribes one :class:`PrometheusMetrics` per process; expose them with
``prometheus_client.start_http_server(port)`` (the CLI and flows do when ``WTB_METRICS_PORT``
is set) or scrape a Prefect worker's registry.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from wtb_domain import events as ev

NODE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120)


class PrometheusMetrics:
    """Bus subscriber counting executions by outcome and timing node runs."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.executions = Counter(
            "wtb_executions_total", "Executions by outcome", ["outcome"], registry=registry
        )
        self.node_runs = Counter(
            "wtb_node_runs_total",
            "Node runs by node and variant",
            ["node", "variant"],
            registry=registry,
        )
        self.node_seconds = Histogram(
            "wtb_node_duration_seconds",
            "Node run time",
            ["node"],
            buckets=NODE_BUCKETS,
            registry=registry,
        )

    def __call__(self, event: ev.Event) -> None:
        match event:
            case ev.NodeCompleted(node=node, variant=variant, duration_ms=ms):
                self.node_runs.labels(node, variant).inc()
                self.node_seconds.labels(node).observe(ms / 1000.0)
            case ev.ExecutionCompleted():
                self.executions.labels("completed").inc()
            case ev.ExecutionFailed():
                self.executions.labels("failed").inc()
            case ev.ExecutionPaused():
                self.executions.labels("paused").inc()
