"""Fixtures of the PostgreSQL suite: a TCP proxy that can cut the server off, a real PgBouncer,
sized apps, and small workflows and result rows to write.

Everything here talks to 127.0.0.1 only. The server itself is the shared one of
``tests/conftest.py`` (``pg_url``: one throwaway database per session; ``pg_databases`` for
tests that need a database of their own).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PgDatabases, _in_ci
from wtb_domain import END, App, GraphBuilder, NodeContext, Workflow, sql_app
from wtb_domain.adapters.sql import database as database_module
from wtb_domain.adapters.sql.database import Database
from wtb_domain.model import BatchResult

PGBOUNCER_APT = "apt-get install -y pgbouncer"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def url_via(url: str, port: int, database: str | None = None) -> str:
    """``url`` pointed at ``127.0.0.1:port`` (a proxy or PgBouncer in front of the server)."""
    parsed = make_url(url).set(host="127.0.0.1", port=port)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def sized_sql_app(url: str, pool_size: int, *, audit: bool = False) -> App:
    """``sql_app(url)`` whose process-wide Database has ``pool_size`` (+ as many overflow).

    ``sql_app`` takes the Database from the per-process registry (``database_for``), created
    with the default pool; registering one of the wanted size first is how a runner process
    would size its pool to its concurrency today.
    """
    with database_module._lock:
        if url not in database_module._databases:
            database_module._databases[url] = Database(url, pool_size=pool_size)
    return sql_app(url, audit=audit)


def forget_database(url: str) -> None:
    """Dispose of and unregister the process-wide Database of ``url``."""
    with database_module._lock:
        db = database_module._databases.pop(url, None)
    if db is not None:
        db.dispose()


# --------------------------------------------------------------------------- workflows


def _inc(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    ctx.record("tokens", 1)
    return {"x": state["x"] + 1}


def _double(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    ctx.record("cost_usd", 0.001)
    return {"x": state["x"] * 2}


def _label(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    return {"label": f"x={state['x']}"}


def double(state: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    return _double(state, ctx)


def small_workflow(b: Any = None) -> Workflow:
    """a -> b -> c: three tiny nodes (three checkpoints after the input one).

    ``b`` replaces node b's function (it must still double ``x``).
    """
    g = GraphBuilder("pg-small")
    g.add_node("a", _inc)
    g.add_node("b", b or _double)
    g.add_node("c", _label)
    g.add_edge("a", "b").add_edge("b", "c")
    g.add_edge("c", END)
    g.set_entry("a")
    return g.build()


def result_for(
    batch_id: str, execution_id: str, combination: str, case_id: str, repeat: int = 0
) -> BatchResult:
    return BatchResult(
        batch_test_id=batch_id,
        execution_id=execution_id,
        combination_name=combination,
        variant_config={"node": combination},
        case_id=case_id,
        repeat=repeat,
        success=True,
        passed=True,
        overall_score=0.75,
        duration_ms=1.5,
        metrics={"cost_usd": 0.001, "tokens": 3},
        worker_id=threading.current_thread().name,
    )


# --------------------------------------------------------------------------- TCP proxy


class TcpProxy:
    """A threaded TCP forwarder ``127.0.0.1:<port> -> target`` that can be cut off.

    :meth:`stop` closes the listener (new connections are refused) and resets every open
    connection, as a server restart would; :meth:`start` listens again on the same port.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._accepting = threading.Event()
        self._thread: threading.Thread | None = None
        self.accepted = 0

    def start(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            listener.settimeout(0.1)
            self._listener = listener
        self._accepting.set()
        self._thread = threading.Thread(
            target=self._accept_loop, args=(listener,), name="pg-proxy-accept", daemon=True
        )
        self._thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._accepting.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(src, dst), name="pg-proxy-pump", daemon=True
                ).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop_connections(self) -> None:
        """Reset every open connection (the listener stays)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def stop(self) -> None:
        """Refuse new connections and reset the open ones."""
        self._accepting.clear()
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        self.drop_connections()

    def restart_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.start)
        timer.daemon = True
        timer.start()
        return timer


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[TcpProxy]:
    parsed = make_url(pg_url)
    proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


# --------------------------------------------------------------------------- PgBouncer


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    for candidate in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class PgBouncer:
    port: int
    url: str
    directory: Path
    process: subprocess.Popen[bytes]
    pool_size: int

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def show(self, what: str) -> list[dict[str, str]]:
        """``SHOW <what>`` on the admin console (simple protocol, via psql)."""
        out = subprocess.run(
            [
                *("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"),
                *("-d", "pgbouncer", "-A", "-F", "\t", "-P", "footer=off", "-c", f"SHOW {what}"),
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
        header = out[0].split("\t")
        return [dict(zip(header, line.split("\t"), strict=False)) for line in out[1:]]


def _write_pgbouncer_config(
    directory: Path, port: int, database: str, pool_size: int, server: tuple[str, int]
) -> Path:
    (directory / "userlist.txt").write_text('"postgres" ""\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(
        "\n".join(
            [
                "[databases]",
                f"{database} = host={server[0]} port={server[1]} dbname={database} user=postgres",
                "",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {directory / 'userlist.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                "max_client_conn = 400",
                "admin_users = postgres",
                "ignore_startup_parameters = extra_float_digits",
                f"logfile = {directory / 'pgbouncer.log'}",
                f"pidfile = {directory / 'pgbouncer.pid'}",
                "",
            ]
        )
    )
    return ini


def start_pgbouncer(pg_url: str, pool_size: int = 8) -> PgBouncer:
    """Start the real pgbouncer binary in transaction pooling mode in front of ``pg_url``."""
    binary = pgbouncer_binary()
    if binary is None:
        reason = f"the pgbouncer binary is not installed ({PGBOUNCER_APT})"
        if _in_ci():
            pytest.fail(f"CI is set, so the PgBouncer test must run: {reason}", pytrace=False)
        pytest.skip(f"SKIPPING THE PGBOUNCER TEST: {reason}")
    parsed = make_url(pg_url)
    database = parsed.database or "postgres"
    directory = Path(tempfile.mkdtemp(prefix="wtb-pgbouncer-"))
    directory.chmod(0o755)
    port = free_port()
    ini = _write_pgbouncer_config(
        directory, port, database, pool_size, (parsed.host or "127.0.0.1", parsed.port or 5432)
    )
    cmd = [binary]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(directory, user.pw_uid, user.pw_gid)
        for f in directory.iterdir():
            os.chown(f, user.pw_uid, user.pw_gid)
        cmd += ["-u", "postgres"]
    cmd.append(str(ini))
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    bouncer = PgBouncer(port, url_via(pg_url, port), directory, process, pool_size)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"pgbouncer exited with {process.returncode}: {err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return bouncer
        except OSError:
            time.sleep(0.1)
    stop_pgbouncer(bouncer)
    raise RuntimeError(f"pgbouncer did not listen on {port} within 15 s: {bouncer.log()}")


def stop_pgbouncer(bouncer: PgBouncer) -> None:
    if bouncer.process.poll() is None:
        bouncer.process.terminate()
        try:
            bouncer.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            bouncer.process.kill()
            bouncer.process.wait(timeout=10)
    if bouncer.process.stderr is not None:
        bouncer.process.stderr.close()
    shutil.rmtree(bouncer.directory, ignore_errors=True)


@pytest.fixture(scope="module")
def own_pg_url(pg_databases: PgDatabases) -> Iterator[str]:
    """A throwaway database for this module alone."""
    url = pg_databases.create()
    try:
        yield url
    finally:
        forget_database(url)
        pg_databases.drop(url)
