"""Prometheus metrics follow what the engine does; /metrics is scraped over loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.contract.workflows import LINEAR
from wtb_domain import memory_app
from wtb_domain.events import Event
from wtb_domain.metrics import PrometheusMetrics, serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


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
    assert value("wtb_node_duration_seconds_count", node="a", variant="default") == 2


def test_metrics_endpoint_is_scraped_and_parsed_over_loopback() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    app = memory_app()
    app.bus.subscribe(Event, metrics)
    port = free_port()
    server = serve(port, "127.0.0.1", registry)
    try:
        app.controller.run(LINEAR, {"x": 1})
        metrics.timed_write(lambda: None)
        metrics.results_stored("b1", ["passed", "passed", "error"])
        with metrics.batch_task():
            body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
    got = samples(body)
    node_a = (("node", "a"), ("variant", "default"))
    assert got["wtb_node_duration_seconds_count", node_a] == 1
    assert got["wtb_node_runs_total", node_a] == 1
    assert got["wtb_executions_total", (("outcome", "completed"),)] == 1
    assert got["wtb_checkpoint_write_seconds_count", ()] == 1
    assert got["wtb_batch_results_total", (("batch", "b1"), ("outcome", "passed"))] == 2
    assert got["wtb_batch_results_total", (("batch", "b1"), ("outcome", "error"))] == 1
    assert got["wtb_batch_in_flight", ()] == 1
    assert got["wtb_db_errors_total", ()] == 0
    families = {f.name: f.type for f in text_string_to_metric_families(body)}
    assert families["wtb_node_duration_seconds"] == "histogram"
    assert families["wtb_executions"] == "counter"


def test_wtb_metrics_serve_serves_until_stopped() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wtb_cli.main", "metrics", "serve", "--port", str(port)],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        body = ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert body, proc.stdout.read().decode() if proc.stdout and proc.poll() else "no answer"
        names = {f.name for f in text_string_to_metric_families(body)}
        assert {"wtb_executions", "wtb_node_duration_seconds", "wtb_db_errors"} <= names
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_refuses_a_port_in_use_in_one_line() -> None:
    import pytest

    from wtb_domain.errors import SpecError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SpecError, match=f"--port: cannot serve metrics on 127.0.0.1:{port}"):
            serve(port, "127.0.0.1", CollectorRegistry())
