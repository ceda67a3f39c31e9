"""Task runners for batch flows, and the Prefect API a Ray cluster's workers report to."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from wtb_domain.batch.spec import BatchSpec
from wtb_domain.errors import WtbError

SERVER_START_TIMEOUT_S = 90
WORKER_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "RAY_AUTH_MODE": "disabled"}


def build_task_runner(spec: BatchSpec, api_url: str | None = None) -> TaskRunner[Any]:
    """ThreadPoolTaskRunner(max_workers), or RayTaskRunner configured from ``spec.ray``."""
    if spec.runner == "threadpool":
        return ThreadPoolTaskRunner(max_workers=spec.max_workers)
    from prefect_ray import RayTaskRunner

    env_vars = dict(WORKER_ENV)
    if api_url:
        env_vars["PREFECT_API_URL"] = api_url
    init_kwargs: dict[str, Any] = {
        "runtime_env": {**(spec.ray.runtime_env or {}), "env_vars": env_vars},
        "include_dashboard": False,
        "log_to_driver": True,
    }
    if spec.ray.ray_address is None:
        # A local Ray we start ourselves: it inherits this process's environment.
        for name, value in WORKER_ENV.items():
            os.environ.setdefault(name, value)
        if spec.ray.num_cpus is not None:
            init_kwargs["num_cpus"] = spec.ray.num_cpus
    runner: TaskRunner[Any] = RayTaskRunner(address=spec.ray.ray_address, init_kwargs=init_kwargs)
    return runner


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def prefect_api_for_ray() -> Iterator[str]:
    """Yield a Prefect API URL Ray workers can reach.

    Uses ``PREFECT_API_URL`` when set (a real server, or the test harness). Otherwise starts
    ``prefect server`` on 127.0.0.1 for the duration: without it every Ray worker would start
    its own temporary server on the same SQLite file ("database is locked").
    """
    current = PREFECT_API_URL.value()
    if current:
        yield current
        return
    port = _free_port()
    home = Path(os.environ.get("WTB_HOME", ".wtb")).resolve() / "prefect-server"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **WORKER_ENV, "PREFECT_HOME": str(home)}
    log = (home / "server.log").open("ab")
    proc = subprocess.Popen(  # noqa: S603 - sys.executable with fixed arguments, no shell
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-services",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(url, proc, home / "server.log")
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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
