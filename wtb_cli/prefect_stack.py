"""A local Prefect stack for WTB: server (with its UI), work pool, deployments and a worker.

``wtb prefect up`` starts ``prefect server start`` on 127.0.0.1 with its own PREFECT_HOME
(analytics off, the UI pointed at that server), creates the process work pool, deploys
``prefect.yaml`` from the repository (so the worker runs flows from it, with no variable to
set), starts ``prefect worker start`` and records both PIDs in ``PREFECT_HOME/wtb-stack.json``.
``wtb prefect down`` stops exactly those processes, by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from wtb_domain.errors import SpecError, WtbError

STATE_FILE = "wtb-stack.json"
SERVER_START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 20
QUIET_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "RAY_AUTH_MODE": "disabled"}
# A local worker polls every 2 s (Prefect's default is 10 s): a run triggered from the UI or
# Python starts within ~2 s. PREFECT_WORKER_QUERY_SECONDS in the environment wins.
WORKER_QUERY_SECONDS = "2"


def repo_dir() -> Path:
    """The directory holding ``prefect.yaml`` and ``flows/`` (an editable install or a clone)."""
    import flows

    root = Path(flows.__file__).resolve().parent.parent
    if not (root / "prefect.yaml").is_file():
        raise SpecError(
            f"prefect.yaml not found next to {root / 'flows'}; install WTB from a clone "
            "(pip install -e .) to deploy it"
        )
    return root


@dataclass
class Stack:
    """What ``up`` started: the API URL, the PIDs, the logs."""

    api_url: str
    ui_url: str
    home: str
    pool: str
    server_pid: int | None
    worker_pid: int | None

    def save(self) -> None:
        (Path(self.home) / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, home: Path) -> Stack | None:
        file = home / STATE_FILE
        if not file.is_file():
            return None
        return cls(**json.loads(file.read_text()))


def stack_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    """The environment of the stack's processes and of the ``prefect`` commands it runs."""
    env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": str(home)}
    if api_url:
        env["PREFECT_API_URL"] = api_url
        env["PREFECT_UI_API_URL"] = api_url
    return env


def healthy(api_url: str) -> bool:
    import httpx  # only the prefect commands need it: `wtb matrix` starts faster without

    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _spawn(args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> int:
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our interpreter, Prefect's CLI
            [sys.executable, "-m", "prefect", *args],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives `wtb prefect up`; stopped by `down` by PID
        )
    return proc.pid


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process counts as gone.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _prefect(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run a ``prefect`` CLI command; its output, or a WtbError with the tail of it."""
    proc = subprocess.run(  # noqa: S603 - our interpreter, Prefect's CLI
        [sys.executable, "-m", "prefect", "--no-prompt", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-8:]
        raise WtbError(f"`prefect {' '.join(args)}` failed ({proc.returncode}): {' | '.join(tail)}")
    return proc.stdout


def wait_healthy(api_url: str, pid: int | None, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(api_url):
            return
        if pid is not None and not _alive(pid):
            raise WtbError(f"prefect server exited during start-up; see {log}")
        time.sleep(0.5)
    raise WtbError(f"prefect server not healthy at {api_url} after {timeout:.0f} s; see {log}")


def up(
    home: Path,
    port: int = 4200,
    pool: str = "wtb",
    api_url: str | None = None,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Stack:
    """Start (or reuse) a server, then the work pool, the deployments and a worker.

    With ``api_url`` an existing server is used and only the pool, deployments and worker are
    created. ``database_url`` is the worker's ``WTB_DATABASE_URL`` (default: the repository's
    ``./.wtb/wtb.db``). Idempotent: a stack already up in ``home`` is returned as it is.
    """
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    current = Stack.load(home)
    if current and healthy(current.api_url) and _alive(current.worker_pid):
        return current
    root = repo_dir()
    server_pid = None
    if api_url is None:
        api_url = f"http://127.0.0.1:{port}/api"
        if not healthy(api_url):
            env = {**stack_env(home, api_url), **(extra_env or {})}
            log = home / "server.log"
            server_pid = _spawn(
                ["server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log
            )
            wait_healthy(api_url, server_pid, log, SERVER_START_TIMEOUT_S)
    elif not healthy(api_url):
        raise SpecError(f"--api-url: no healthy Prefect server at {api_url}")
    env = {**stack_env(home, api_url), **(extra_env or {})}
    if database_url:
        env["WTB_DATABASE_URL"] = database_url
    _prefect(["work-pool", "create", pool, "--type", "process", "--overwrite"], env, root)
    _prefect(["deploy", "--all"], env, root)
    worker_env = {"PREFECT_WORKER_QUERY_SECONDS": WORKER_QUERY_SECONDS, **env}
    worker_pid = _spawn(
        ["worker", "start", "--pool", pool, "--type", "process"],
        worker_env,
        home / "worker.log",
        root,
    )
    stack = Stack(api_url, api_url.removesuffix("/api"), str(home), pool, server_pid, worker_pid)
    stack.save()
    return stack


def _stop(pid: int | None) -> bool:
    """SIGTERM the process group ``up`` started, then SIGKILL after a grace period."""
    if pid is None or not _alive(pid):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        with_kill = True
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            with_kill = False
        return with_kill
    return True


def down(home: Path) -> Stack | None:
    """Stop the worker, then the server that ``up`` started in ``home`` (never anything else)."""
    home = home.resolve()
    stack = Stack.load(home)
    if stack is None:
        return None
    _stop(stack.worker_pid)
    _stop(stack.server_pid)
    (home / STATE_FILE).unlink(missing_ok=True)
    return stack
