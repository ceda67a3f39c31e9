"""Task runners for batch flows, and the Prefect API a Ray cluster's workers report to."""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.ray_session import RayJob, on_disconnect
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.errors import WtbError

SERVER_START_TIMEOUT_S = 90
WORKER_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "RAY_AUTH_MODE": "disabled"}


def ray_job(spec: BatchSpec, api_url: str | None = None) -> RayJob:
    """The Ray job a batch runs in: its address and ``ray.init`` arguments.

    The job's env vars are only ``WORKER_ENV`` and the Prefect API URL; the spec's own env
    vars go with each task (``flows.batch_test._remote_options``), never into the job, so a
    kept job holds no batch's secrets. The spec's other ``runtime_env`` fields (``working_dir``,
    ``pip``, ...) are the job's: a batch with other ones gets another job.
    """
    env_vars = dict(WORKER_ENV)
    if api_url:
        env_vars["PREFECT_API_URL"] = api_url
    base = {k: v for k, v in (spec.ray.runtime_env or {}).items() if k != "env_vars"}
    init_kwargs: dict[str, Any] = {
        "runtime_env": {**base, "env_vars": env_vars},
        "include_dashboard": False,
        "log_to_driver": True,
        "namespace": "prefect",
    }
    if spec.ray.ray_address is None and spec.ray.num_cpus is not None:
        init_kwargs["num_cpus"] = spec.ray.num_cpus
    return RayJob(spec.ray.ray_address, init_kwargs)


def build_task_runner(spec: BatchSpec, api_url: str | None = None) -> TaskRunner[Any]:
    """ThreadPoolTaskRunner(max_workers), or RayTaskRunner configured from ``spec.ray``.

    A RayTaskRunner entered while the process is connected to Ray (``flows.ray_session``,
    which :func:`flows.batch_test.run_batch` opens first) uses that connection and leaves it
    open; on its own it connects and shuts down per flow run.
    """
    if spec.runner == "threadpool":
        return ThreadPoolTaskRunner(max_workers=spec.max_workers)
    from prefect_ray import RayTaskRunner

    if spec.ray.ray_address is None:
        # A local Ray we start ourselves: it inherits this process's environment.
        for name, value in WORKER_ENV.items():
            os.environ.setdefault(name, value)
    job = ray_job(spec, api_url)
    runner: TaskRunner[Any] = RayTaskRunner(address=job.address, init_kwargs=dict(job.init_kwargs))
    return runner


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPrefectServer:
    """``prefect server`` on 127.0.0.1 (its own PREFECT_HOME under ``WTB_HOME``), by PID."""

    def __init__(self) -> None:
        port = _free_port()
        self.home = Path(os.environ.get("WTB_HOME", ".wtb")).resolve() / "prefect-server"
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **WORKER_ENV, "PREFECT_HOME": str(self.home)}
        self._log = (self.home / "server.log").open("ab")
        args = ["server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-services"]
        self.proc = subprocess.Popen(  # noqa: S603 - sys.executable, fixed arguments, no shell
            [sys.executable, "-m", "prefect", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{port}/api"
        try:
            _wait_healthy(self.url, self.proc, self.home / "server.log")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self._log.close()


_KEPT_LOCK = threading.Lock()
_kept_server: LocalPrefectServer | None = None


def _kept_prefect_server() -> LocalPrefectServer:
    """The server kept with a kept Ray job (same URL for every batch: the job stays the
    same); stopped by ``flows.ray_session.disconnect`` or at exit."""
    global _kept_server
    with _KEPT_LOCK:
        if _kept_server is None or _kept_server.proc.poll() is not None:
            _kept_server = LocalPrefectServer()
            on_disconnect(stop_kept_prefect_server)
            atexit.register(stop_kept_prefect_server)
        return _kept_server


def stop_kept_prefect_server() -> None:
    global _kept_server
    with _KEPT_LOCK:
        server, _kept_server = _kept_server, None
    if server is not None:
        server.stop()


@contextlib.contextmanager
def prefect_api_for_ray(keep: bool = False) -> Iterator[str]:
    """Yield a Prefect API URL Ray workers can reach.

    Uses ``PREFECT_API_URL`` when set (a real server, or the test harness). Otherwise starts
    ``prefect server`` on 127.0.0.1: without it every Ray worker would start its own
    temporary server on the same SQLite file ("database is locked"). The server lasts for
    the block, or with ``keep`` (a kept Ray job, whose workers keep the URL) until
    ``flows.ray_session.disconnect()`` or the process's exit.
    """
    current = PREFECT_API_URL.value()
    if current:
        yield current
        return
    if keep:
        url = _kept_prefect_server().url
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
        return
    server = LocalPrefectServer()
    try:
        with temporary_settings({PREFECT_API_URL: server.url}):
            yield server.url
    finally:
        server.stop()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise WtbError(f"prefect server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise WtbError(f"prefect server did not start within {SERVER_START_TIMEOUT_S}s; see {log}")
