"""Prometheus metrics: executions, node runs, checkpoint writes, batch results, DB errors.

``bootstrap`` builds one :class:`PrometheusMetrics` per process (the default registry) and
subscribes it to the bus; recording is an in-memory increment, never a network call. Expose
them with ``wtb metrics serve --port`` (or ``WTB_METRICS_PORT`` while a command runs), or,
from batch workers (Prefect, Ray), push them to a Pushgateway at the end of each task when
``WTB_PUSHGATEWAY_URL`` is set (:func:`push_if_configured`): grouped by a worker id
(host, process and a random part), so no worker's samples replace another's.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from wtb_domain import events as ev

if TYPE_CHECKING:  # prometheus_client loads with the first metric recorded, served or pushed
    from prometheus_client import CollectorRegistry

NODE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120)
WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
PUSHGATEWAY_ENV = "WTB_PUSHGATEWAY_URL"
PUSH_JOB = "wtb"
PUSH_TIMEOUT_S = 5.0

log = logging.getLogger(__name__)
T = TypeVar("T")


def default_registry() -> CollectorRegistry:
    """prometheus_client's default registry (importing it: the first use pays for it)."""
    from prometheus_client import REGISTRY

    return REGISTRY


class _Families:
    """The wtb_* metric families, registered with ``registry`` when built."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.executions = Counter(
            "wtb_executions_total", "Executions by outcome", ["outcome"], registry=registry
        )
        self.node_seconds = Histogram(
            "wtb_node_duration_seconds",
            "Node run time by node and variant",
            ["node", "variant"],
            buckets=NODE_BUCKETS,
            registry=registry,
        )
        # ``wtb_node_runs_total`` is the histogram's count, read when scraped or pushed: a
        # node run pays for one observation, not also a counter of its own.
        self.node_runs = _NodeRuns(self.node_seconds)
        registry.register(self.node_runs)
        self.checkpoint_write_seconds = Histogram(
            "wtb_checkpoint_write_seconds",
            "Time to store a checkpoint and move the head (one commit)",
            buckets=WRITE_BUCKETS,
            registry=registry,
        )
        self.batch_results = Counter(
            "wtb_batch_results_total",
            "Batch results stored, by batch and outcome (passed, failed, error)",
            ["batch", "outcome"],
            registry=registry,
        )
        self.batch_in_flight = Gauge(
            "wtb_batch_in_flight",
            "Batch task groups running in this process",
            registry=registry,
        )
        self.db_errors = Counter(
            "wtb_db_errors_total", "Database errors raised by the driver", registry=registry
        )
        # ``labels()`` takes a lock and validates its values on every call: the children of
        # the per-event series are looked up once (node x variant pairs are few).
        self.outcomes = {o: self.executions.labels(o) for o in ("completed", "failed", "paused")}
        self.node_series: dict[tuple[str, str], Any] = {}


class _NodeRuns:
    """The ``wtb_node_runs_total`` counter (node, variant): the count of each series of the
    node-duration histogram, collected from it (a custom collector)."""

    NAME, DOC = "wtb_node_runs", "Node runs by node and variant"

    def __init__(self, histogram: Any) -> None:
        self._histogram = histogram

    def describe(self) -> list[Any]:
        from prometheus_client.core import CounterMetricFamily

        return [CounterMetricFamily(self.NAME, self.DOC, labels=["node", "variant"])]

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        runs = CounterMetricFamily(self.NAME, self.DOC, labels=["node", "variant"])
        for family in self._histogram.collect():
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    labels = sample.labels
                    runs.add_metric([labels["node"], labels["variant"]], sample.value)
        yield runs


class PrometheusMetrics:
    """The process's metrics; as a bus subscriber it counts executions and times node runs.

    The families are built (and ``prometheus_client`` imported) when a metric is first
    recorded, or by :meth:`families` (serving and pushing call it): a process that records
    nothing, such as ``wtb matrix``, never loads the client.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._registry = registry
        self._families: _Families | None = None
        self._lock = threading.Lock()

    @property
    def registry(self) -> CollectorRegistry:
        if self._registry is None:
            self._registry = default_registry()
        return self._registry

    def families(self) -> _Families:
        """The families, registered with the registry on the first call (thread-safe)."""
        found = self._families
        if found is None:
            with self._lock:
                if self._families is None:
                    self._families = _Families(self.registry)
                found = self._families
        return found

    def _node(self, node: str, variant: str) -> Any:
        fam = self._families or self.families()
        series = fam.node_series.get((node, variant))
        if series is None:
            series = fam.node_series[(node, variant)] = fam.node_seconds.labels(node, variant)
        return series

    def __call__(self, event: ev.Event) -> None:
        if type(event) is ev.NodeCompleted:  # (by type: cheaper than a match on every event)
            self._node(event.node, event.variant).observe(event.duration_ms / 1000.0)
        else:
            outcome = _OUTCOMES.get(type(event))
            if outcome is not None:
                self._outcome(outcome)

    def _outcome(self, outcome: str) -> None:
        (self._families or self.families()).outcomes[outcome].inc()

    def timed_write(self, write: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a checkpoint write, ``write(*args, **kwargs)``, observing its time (also when
        it fails)."""
        started = time.perf_counter()
        try:
            return write(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            (self._families or self.families()).checkpoint_write_seconds.observe(elapsed)

    @contextmanager
    def batch_task(self) -> Iterator[None]:
        """A batch task group running in this process (``wtb_batch_in_flight``)."""
        gauge = (self._families or self.families()).batch_in_flight
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def results_stored(self, batch_id: str, outcomes: Sequence[str]) -> None:
        results = (self._families or self.families()).batch_results
        for outcome in outcomes:
            results.labels(batch_id, outcome).inc()

    def db_error(self, *_: Any) -> None:
        """A SQLAlchemy ``handle_error`` listener."""
        (self._families or self.families()).db_errors.inc()


_OUTCOMES: dict[type[ev.Event], str] = {
    ev.ExecutionCompleted: "completed",
    ev.ExecutionFailed: "failed",
    ev.ExecutionPaused: "paused",
}
"""Events counted in ``wtb_executions_total`` (by exact type: events are final classes)."""

_process_lock = threading.Lock()
_process: PrometheusMetrics | None = None


def process_metrics() -> PrometheusMetrics:
    """The process's metrics (the default registry); one instance per process.

    Thread-safe: the CLI's batch thread and its progress thread both build an App at once,
    and a second registration with the default registry would raise ``DuplicateTimeseries``
    (``functools.cache`` does not serialise concurrent first calls).
    """
    global _process
    with _process_lock:
        if _process is None:
            _process = PrometheusMetrics()
        return _process


def exposed_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """``registry``, or the default one with the process's wtb_* families in it (at zero
    until recorded): what is served or pushed always has them."""
    if registry is not None:
        return registry
    metrics = process_metrics()
    metrics.families()
    return metrics.registry


_worker: tuple[int, str] | None = None
_push_lock = threading.Lock()


def worker_id() -> str:
    """This process's push group: host, pid and a random part (a new one after a fork, and
    a reused pid never takes over a dead worker's samples)."""
    global _worker
    pid = os.getpid()
    if _worker is None or _worker[0] != pid:
        _worker = (pid, f"{socket.gethostname()}-{pid}-{uuid.uuid4().hex[:8]}")
    return _worker[1]


def grouping_key() -> dict[str, str]:
    return {"worker": worker_id()}


def push_if_configured(
    registry: CollectorRegistry | None = None, env: Mapping[str, str] | None = None
) -> bool:
    """Push the registry (default: the process's) to ``WTB_PUSHGATEWAY_URL`` (if set) under
    this worker's group.

    A PUT of the process's cumulative values: every push replaces only this worker's previous
    one. Pushes of one process are serialised, so a later push never carries older values.
    A failing gateway is logged, never fails the task. True if pushed.
    """
    url = (env if env is not None else os.environ).get(PUSHGATEWAY_ENV, "").strip()
    if not url:
        return False
    from prometheus_client.exposition import push_to_gateway

    exposed = exposed_registry(registry)
    with _push_lock:
        try:
            push_to_gateway(
                url,
                job=PUSH_JOB,
                registry=exposed,
                grouping_key=grouping_key(),
                timeout=PUSH_TIMEOUT_S,
            )
        except Exception as exc:  # the gateway is down or refuses: metrics must not fail work
            log.warning("could not push metrics to %s: %s", url, exc)
            return False
    return True


def serve(port: int, addr: str = "127.0.0.1", registry: CollectorRegistry | None = None) -> Any:
    """Serve ``/metrics`` of ``registry`` (default: the process's) on ``addr:port`` from a
    daemon thread; returns the HTTP server (``shutdown()`` stops it).

    Raises:
        SpecError: The port is not free or the address is not this machine's.
    """
    from prometheus_client import start_http_server

    from wtb_domain.errors import SpecError

    try:
        server, _thread = start_http_server(port, addr=addr, registry=exposed_registry(registry))
    except OSError as exc:
        raise SpecError(
            f"--port: cannot serve metrics on {addr}:{port} ({exc.strerror}); choose a free port"
        ) from None
    return server
