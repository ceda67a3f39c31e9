"""Prometheus metrics follow what the engine does."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tests.contract.workflows import LINEAR
from wtb_domain import memory_app
from wtb_domain.events import Event
from wtb_domain.metrics import PrometheusMetrics


def test_node_runs_and_outcomes_are_counted() -> None:
    registry = CollectorRegistry()
    app = memory_app()
    app.bus.subscribe(Event, PrometheusMetrics(registry))
    app.controller.run(LINEAR, {"x": 1})
    app.controller.run(LINEAR, {"x": 1}, break_before=["b"])

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    assert value("wtb_node_runs_total", node="a", variant="default") == 2
    assert value("wtb_node_runs_total", node="c", variant="default") == 1
    assert value("wtb_executions_total", outcome="completed") == 1
    assert value("wtb_executions_total", outcome="paused") == 1
    assert value("wtb_node_duration_seconds_count", node="a") == 2
