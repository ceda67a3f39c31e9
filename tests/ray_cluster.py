"""A long-lived Ray cluster on loopback (a head and worker nodes), owned and stopped by PID.

``ray start --block`` runs in its own session (process group) per node; stopping kills each
group, then any process still running with the cluster's ``--temp-dir`` on its command line
(Ray's daemons carry it). ``ray stop`` is never used: it kills every user's Ray by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RayCluster:
    """A running cluster: its GCS address and the ``ray start --block`` process per node."""

    address: str
    temp_dir: Path
    env: dict[str, str]
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    node_dirs: list[Path] = field(default_factory=list)  # each node's own --temp-dir

    def node_of_worker(self, pid: int) -> int | None:
        """The node (index) whose raylet started worker process ``pid``: its log files
        (``worker-<id>-<job>-<pid>.out``) are in that node's temp dir."""
        for n, root in enumerate(self.node_dirs):
            if any(root.glob(f"session_*/logs/worker-*-{pid}.out")):
                return n
        return None

    def daemon_pids(self) -> set[int]:
        """Processes whose command line names this cluster's temp dir (raylet, gcs, ...)."""
        out = subprocess.run(
            ["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True
        ).stdout
        mine = set()
        for line in out.splitlines():
            pid, _, args = line.strip().partition(" ")
            if str(self.temp_dir) in args and int(pid) != os.getpid():
                mine.add(int(pid))
        return mine

    def alive_nodes(self) -> int:
        """Nodes the GCS reports alive (asked in a subprocess: no Ray in the test process)."""
        code = (
            "import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, self.address],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=START_TIMEOUT_S,
        )
        return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else 0

    def kill(self) -> None:
        """Kill every node at once (SIGKILL), as a crash would: no graceful stop."""
        self.stop(sig=signal.SIGKILL)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        for proc in reversed(self.nodes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        for proc in self.nodes:
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while (left := self.daemon_pids()) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)


def _start_node(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [RAY, "start", "--block", *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextlib.contextmanager
def ray_cluster(
    cpus_per_node: tuple[int, ...] = (1, 1),
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[RayCluster]:
    """A head plus ``len(cpus_per_node) - 1`` worker nodes on 127.0.0.1, stopped on exit.

    ``env`` is the nodes' environment, which every Ray worker process inherits (the import
    path of the workflows, WTB_DATABASE_URL). The temp dir is short: Ray's Unix socket paths
    must fit in 107 bytes, which a pytest ``tmp_path`` does not guarantee. ``port`` is the
    head's GCS port (a free one by default; pass the port of a stopped cluster to start a
    new cluster at the same address).
    """
    temp_dir = Path(tempfile.mkdtemp(prefix="wtbray", dir="/tmp"))
    node_env = {**os.environ, "RAY_AUTH_MODE": "disabled", **(env or {})}
    node_env.pop("RAY_ADDRESS", None)
    port = port or free_port()
    address = f"127.0.0.1:{port}"
    cluster = RayCluster(address, temp_dir, node_env)
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    cluster.node_dirs = [temp_dir / f"n{n}" for n in range(len(cpus_per_node))]
    try:
        head = [
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--num-cpus={cpus_per_node[0]}",
            f"--ray-client-server-port={free_port()}",
            f"--temp-dir={cluster.node_dirs[0]}",
            *common,
        ]
        cluster.nodes.append(_start_node(head, node_env, temp_dir / "head.log"))
        _wait_for_nodes(cluster, 1)
        for n, cpus in enumerate(cpus_per_node[1:], start=1):
            worker = [
                f"--address={address}",
                f"--num-cpus={cpus}",
                f"--temp-dir={cluster.node_dirs[n]}",
                *common,
            ]
            cluster.nodes.append(_start_node(worker, node_env, temp_dir / f"worker{n}.log"))
        _wait_for_nodes(cluster, len(cpus_per_node))
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_nodes(cluster: RayCluster, n: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for proc in cluster.nodes:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"ray start exited with {proc.returncode}; see {cluster.temp_dir}/*.log"
                )
        if cluster.alive_nodes() >= n:
            return
        time.sleep(0.5)
    raise RuntimeError(f"Ray cluster did not reach {n} nodes in {START_TIMEOUT_S}s")
