"""The process's Ray connection (flows.ray_session) on a fake Ray: kept, replaced, waited for.

The fake records every init/shutdown and refuses a second ``init`` while connected (what
Ray does), so a test fails if two jobs were ever open at once. Its connection can die behind
WTB's back (``fake.die()``: the cluster was restarted) while ``is_initialized`` stays True, as
Ray's does; the liveness probe (``alive``) then says so, or raises, or hangs. The real cluster
is in ``test_ray_cluster.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.ray_session import RayConnections, RayJob, disconnect
from flows.runners import prefect_api_for_ray, ray_job
from wtb_domain.batch.spec import BatchSpec, RayConfig
from wtb_domain.errors import WtbError

CLUSTER = "10.0.0.1:6379"


class FakeRay:
    def __init__(self) -> None:
        self.connected: tuple[str | None, dict[str, Any]] | None = None
        self.calls: list[str] = []
        self.jobs = 0
        self.dead = False  # the connection's cluster is gone (is_initialized() stays True)
        self.probe: str = "answer"  # how alive() behaves: "answer", "raise" or "hang"
        self.probes: list[float] = []  # the timeout of every alive() call
        self.unblock = threading.Event()  # ends a hanging probe

    def is_initialized(self) -> bool:
        return self.connected is not None

    def init(self, address: str | None, **kwargs: Any) -> None:
        if self.connected is not None:
            raise RuntimeError("Maybe you called ray.init twice by accident?")
        self.jobs += 1
        self.connected = (address, kwargs)
        self.dead = False
        self.calls.append(f"init {address}")

    def shutdown(self) -> None:
        self.connected = None
        self.calls.append("shutdown")

    def die(self) -> None:
        """The cluster behind the connection was restarted: Ray still says initialized."""
        assert self.connected is not None
        self.dead = True

    def alive(self, timeout: float) -> bool:
        self.probes.append(timeout)
        if self.probe == "raise":
            raise ConnectionError("GCS unavailable: failed to connect to all addresses")
        if self.probe == "hang":
            self.unblock.wait(60)
        return not self.dead

    def job_id(self) -> str:
        return f"{self.jobs:02x}000000"


def job(address: str | None = CLUSTER, **env: str) -> RayJob:
    return RayJob(address, {"runtime_env": {"env_vars": {"PREFECT_API_URL": "u", **env}}})


def test_a_cluster_job_is_kept_and_reused_by_the_next_batch() -> None:
    fake = FakeRay()
    conns = RayConnections(fake)
    with conns.use(job()) as first:
        pass
    assert fake.is_initialized(), "the cluster connection was closed after its batch"
    with conns.use(job()) as second:
        pass
    assert first == second == conns.job_id
    assert (fake.calls, conns.connects) == ([f"init {CLUSTER}"], 1)
    assert conns.disconnect()
    assert fake.calls[-1] == "shutdown" and conns.live is None


def test_a_kept_job_closed_outside_wtb_is_opened_again() -> None:
    fake = FakeRay()
    conns = RayConnections(fake)
    with conns.use(job()) as first:
        pass
    fake.shutdown()  # someone called ray.shutdown()
    with conns.use(job()) as second:
        assert fake.is_initialized()
    assert first != second and conns.connects == 2


def test_a_dead_kept_job_is_shut_down_and_opened_again(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeRay()
    conns = RayConnections(fake)
    with conns.use(job()) as first:
        pass
    fake.die()  # the head was restarted behind the kept connection
    with caplog.at_level(logging.WARNING, logger="wtb.ray"), conns.use(job()) as second:
        assert fake.is_initialized() and not fake.dead, "the batch got the dead connection"
    assert first != second and conns.connects == 2
    assert fake.calls == [f"init {CLUSTER}", "shutdown", f"init {CLUSTER}"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and CLUSTER in warnings[0].getMessage(), caplog.text


def test_a_live_kept_job_is_checked_and_reused_without_a_second_init() -> None:
    fake = FakeRay()
    conns = RayConnections(fake, liveness_timeout=2.5)
    with conns.use(job()) as first:
        pass
    with conns.use(job()) as second:
        pass
    assert first == second and conns.connects == 1
    assert fake.calls == [f"init {CLUSTER}"]
    assert fake.probes == [2.5], "the kept connection was reused unchecked (or checked twice)"


@pytest.mark.parametrize("probe", ["raise", "hang"])
def test_a_liveness_check_that_fails_or_hangs_counts_as_dead_in_bounded_time(
    probe: str,
) -> None:
    fake = FakeRay()
    conns = RayConnections(fake, liveness_timeout=0.2)
    with conns.use(job()) as first:
        pass
    fake.probe = probe
    started = time.monotonic()
    try:
        with conns.use(job()) as second:
            elapsed = time.monotonic() - started
            fake.probe = "answer"
    finally:
        fake.unblock.set()
    assert elapsed < 0.2 + 2.0, f"the check took {elapsed:.1f} s"
    assert first != second and conns.connects == 2
    assert fake.calls == [f"init {CLUSTER}", "shutdown", f"init {CLUSTER}"]


def test_a_dead_job_in_use_is_not_shut_down_under_its_batch() -> None:
    """A batch that finds the connection dead while another batch holds it waits for that
    batch to end (it may still be finishing), then replaces the connection."""
    fake = FakeRay()
    conns = RayConnections(fake)
    order: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def first_batch() -> None:
        with conns.use(job()):
            order.append("first started")
            holding.set()
            release.wait(10)
            order.append(f"first ended, connected={fake.is_initialized()}")

    def second_batch() -> None:
        with conns.use(job()):
            order.append(f"second started, dead={fake.dead}")

    t1 = threading.Thread(target=first_batch)
    t1.start()
    assert holding.wait(10)
    fake.die()
    t2 = threading.Thread(target=second_batch)
    t2.start()
    t2.join(0.3)
    assert t2.is_alive(), "the second batch joined a dead connection"
    assert fake.calls == [f"init {CLUSTER}"], "another batch's check shut the connection down"
    release.set()
    t1.join(10)
    t2.join(10)
    assert order == [
        "first started",
        "first ended, connected=True",
        "second started, dead=False",
    ]
    assert fake.calls == [f"init {CLUSTER}", "shutdown", f"init {CLUSTER}"]


def test_a_local_ray_ends_with_its_run() -> None:
    fake = FakeRay()
    conns = RayConnections(fake)
    for _ in range(2):
        with conns.use(job(address=None)):
            assert fake.is_initialized()
        assert not fake.is_initialized()
    assert fake.calls == ["init None", "shutdown", "init None", "shutdown"]


def test_another_job_replaces_an_idle_kept_one() -> None:
    fake = FakeRay()
    conns = RayConnections(fake)
    with conns.use(job()) as first:
        pass
    with conns.use(job(PREFECT_API_URL="other")) as second:
        assert fake.connected is not None
        assert fake.connected[1]["runtime_env"]["env_vars"]["PREFECT_API_URL"] == "other"
    assert first != second
    assert fake.calls == [f"init {CLUSTER}", "shutdown", f"init {CLUSTER}"]


def test_another_job_waits_for_the_batches_of_the_live_one() -> None:
    fake = FakeRay()
    conns = RayConnections(fake)
    order: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def first_batch() -> None:
        with conns.use(job()):
            order.append("first started")
            holding.set()
            release.wait(10)
            order.append("first ended")

    def second_batch() -> None:
        with conns.use(job(address=None)):
            order.append("second started")

    t1 = threading.Thread(target=first_batch)
    t1.start()
    assert holding.wait(10)
    t2 = threading.Thread(target=second_batch)
    t2.start()
    t2.join(0.3)
    assert t2.is_alive(), "the second job opened while a batch still used the first"
    release.set()
    t1.join(10)
    t2.join(10)
    assert order == ["first started", "first ended", "second started"]
    assert fake.calls == [f"init {CLUSTER}", "shutdown", "init None", "shutdown"]


def test_concurrent_batches_of_one_job_share_it() -> None:
    fake = FakeRay()
    conns = RayConnections(fake)
    barrier = threading.Barrier(3)
    ids: list[str] = []

    def batch() -> None:
        with conns.use(job(address=None)) as job_id:
            ids.append(job_id)
            barrier.wait(10)

    threads = [threading.Thread(target=batch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(set(ids)) == 1 and len(ids) == 3
    assert fake.calls == ["init None", "shutdown"], "the local Ray ended under a running batch"


def test_a_connection_opened_outside_wtb_is_refused() -> None:
    fake = FakeRay()
    fake.init("elsewhere:6379")
    with pytest.raises(WtbError, match=r"ray\.shutdown\(\) first"), RayConnections(fake).use(job()):
        pass


def test_disconnect_waits_for_a_running_batch_and_gives_up_after_its_timeout() -> None:
    fake = FakeRay()
    conns = RayConnections(fake)
    with conns.use(job()):
        started = time.monotonic()
        assert conns.disconnect(timeout=0.2) is False
        assert time.monotonic() - started >= 0.2
        assert fake.is_initialized()
    assert conns.disconnect(timeout=0.2) is True
    assert not fake.is_initialized()


def _spec(**ray: Any) -> BatchSpec:
    return BatchSpec.parse(
        {
            "workflow": "tests.batch.workflows:linear3",
            "cases": [{"id": "c1", "input": {}}],
            "runner": "ray",
            "ray": RayConfig(**{"ray_address": CLUSTER, **ray}).model_dump(),
        }
    )


def test_a_batch_env_vars_never_enter_the_job_and_do_not_change_it() -> None:
    """Batch env vars go per task (Ray starts a worker per task runtime_env): two batches
    that differ only in them share the job; a secret literal never reaches ray.init."""
    a = ray_job(_spec(runtime_env={"env_vars": {"TOKEN": "s3cret-a"}}), "http://p/api")
    b = ray_job(_spec(runtime_env={"env_vars": {"TOKEN": "s3cret-b"}}), "http://p/api")
    assert a.key == b.key
    assert "s3cret" not in a.key
    env_vars = a.init_kwargs["runtime_env"]["env_vars"]
    assert env_vars["PREFECT_API_URL"] == "http://p/api" and "TOKEN" not in env_vars


def test_the_job_changes_with_its_prefect_api_and_runtime_env_fields() -> None:
    base = ray_job(_spec(), "http://p/api")
    assert ray_job(_spec(), "http://q/api").key != base.key
    assert ray_job(_spec(runtime_env={"working_dir": "/srv/wf"}), "http://p/api").key != base.key
    local = ray_job(_spec(ray_address=None, num_cpus=2), "http://p/api")
    assert (local.address, local.init_kwargs["num_cpus"], local.keep) == (None, 2, False)
    assert base.keep and "num_cpus" not in base.init_kwargs


@pytest.mark.slow
def test_the_prefect_server_kept_for_a_kept_job_serves_every_batch_and_stops_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without PREFECT_API_URL a kept job keeps its workers' API URL: one server, until
    disconnect (a one-run server, keep=False, is stopped after its block)."""
    from flows import runners

    monkeypatch.setenv("WTB_HOME", str(tmp_path))
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        with prefect_api_for_ray(keep=True) as first:
            assert PREFECT_API_URL.value() == first
        server = runners._kept_server
        assert server is not None and server.proc.poll() is None
        with prefect_api_for_ray(keep=True) as second:
            assert second == first
            assert httpx.get(f"{second}/health", timeout=10).status_code == 200
        assert disconnect(timeout=10)
        assert server.proc.poll() is not None, "the kept server outlived disconnect()"
        assert runners._kept_server is None
