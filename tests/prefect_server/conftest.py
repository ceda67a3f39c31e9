"""A real Prefect stack for the tests of this package, started by ``wtb prefect up``.

``prefect server start`` on a free loopback port with its own PREFECT_HOME (analytics off, the
scheduler looping every few seconds so the nightly deployment gets its SCHEDULED runs within
the test), the process work pool, ``prefect deploy --all`` of the repository's prefect.yaml and
a worker; the WTB database is a SQLite file of the session. ``wtb prefect down`` stops them and
a last pass kills by PID whatever of *those* processes is still alive. Never skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

WTB = str(Path(sys.executable).parent / "wtb")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LiveStack:
    api_url: str
    home: Path
    database_url: str
    env: dict[str, str]

    @property
    def broken_flag(self) -> Path:
        return Path(self.env["WTB_TEST_BROKEN_FILE"])

    def wtb(
        self, *args: str, timeout: float = 600, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [WTB, *args],
            env={**self.env, **(env or {})},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _kill_recorded(home: Path) -> None:
    state = home / "wtb-stack.json"
    if not state.is_file():
        return
    recorded = json.loads(state.read_text())
    for key in ("worker_pid", "server_pid"):
        pid = recorded.get(key)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    home = tmp_path_factory.mktemp("prefect-home")
    database_url = f"sqlite:///{home / 'wtb.db'}"
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "3",
        "WTB_DATABASE_URL": database_url,
        # tests/regression/workflows.py:gate answers wrong while this file exists.
        "WTB_TEST_BROKEN_FILE": str(home / "broken"),
    }
    env.pop("PREFECT_API_URL", None)
    stack = LiveStack(f"http://127.0.0.1:{port}/api", home, database_url, env)
    try:
        up = stack.wtb("prefect", "up", "--home", str(home), "--port", str(port))
        assert up.returncode == 0, up.stdout + up.stderr + _logs(home)
        assert f"http://127.0.0.1:{port}" in up.stdout
        yield stack
    finally:
        down = stack.wtb("prefect", "down", "--home", str(home), timeout=120)
        _kill_recorded(home)
        assert down.returncode == 0, down.stdout + down.stderr


def _logs(home: Path) -> str:
    out = []
    for name in ("server.log", "worker.log"):
        log = home / name
        if log.is_file():
            out.append(f"\n--- {name} ---\n" + log.read_text()[-4000:])
    return "".join(out)


@pytest.fixture
def api(live_stack: LiveStack) -> Iterator[LiveStack]:
    """This process talks to the live server (not to the session's test harness)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    with temporary_settings({PREFECT_API_URL: live_stack.api_url, PREFECT_HOME: live_stack.home}):
        yield live_stack
