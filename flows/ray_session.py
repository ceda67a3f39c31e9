"""One Ray connection per process, kept across flow runs: warm worker processes.

Ray binds worker processes to a *job*, and a job is one driver connection (``ray.init`` to
``ray.shutdown``). ``RayTaskRunner`` reuses a connection that is already open and then leaves
it open, so a process that stays connected keeps one job, and the job's worker processes
(with WTB's warm caches, ``wtb_domain/batch/warm.py``) serve its next batches.

``CONNECTIONS.use(job)`` opens the job's connection, or reuses the live one when it is the same
job: the same address and the same job ``runtime_env`` (the env vars every worker of the job
starts with: ``WORKER_ENV`` and ``PREFECT_API_URL``; the spec's ``working_dir``, ``pip``, ...).
A batch that needs another job waits until no batch uses the live connection, which is then
shut down and replaced: a batch never runs in a job started with another job's environment.
A batch's own env vars (``ray.runtime_env.env_vars`` and ``environments``, secrets resolved)
never enter the job: they go with each task (``remote_options``), and Ray starts a worker
process per distinct task ``runtime_env``, so no worker process started with one batch's env
vars runs a task of a batch with other values.

A connection to a cluster (``ray_address`` set) is kept when its last batch ends, until
:func:`disconnect` (or the process exits). A local Ray (``ray_address`` None) is shut down when
its last batch ends, as before: one local Ray per run.

A kept connection can die behind the process's back (the cluster was restarted, the head
died) while ``ray.is_initialized()`` still says True. So before a batch reuses the live
connection, ``use`` asks the cluster's GCS whether the driver's own node is still alive
(:meth:`_Ray.alive`: one RPC with a deadline, ``LIVENESS_TIMEOUT_S``; the call runs in a
watchdog thread, so even a probe that ignores its deadline cannot hold the batch longer). An
answer of "not alive", an error or no answer in time all count as dead: WTB logs one warning
naming the address, shuts the dead connection down and opens a new one for the job. A dead
connection that other batches still hold is not shut down under them: the batch waits until
they end (as for another job), then replaces it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from wtb_domain.errors import WtbError

logger = logging.getLogger("wtb.ray")

LIVENESS_TIMEOUT_S = 5.0  # the GCS's answer to "is my node alive?" within this, or dead
PROBE_GRACE_S = 1.0  # how much longer the watchdog waits for a probe that overruns its deadline


@dataclass(frozen=True)
class RayJob:
    """What a driver connection is: where it goes and the ``ray.init`` arguments of the job.

    ``init_kwargs`` holds no secret (WTB never puts a batch's env vars into the job), so it
    can be compared and logged.
    """

    address: str | None
    init_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return json.dumps([self.address, dict(self.init_kwargs)], sort_keys=True, default=str)

    @property
    def keep(self) -> bool:
        """A cluster connection outlives its batches; a local Ray ends with its last one."""
        return self.address is not None


class RayBackend(Protocol):
    def is_initialized(self) -> bool: ...

    def init(self, address: str | None, **kwargs: Any) -> Any: ...

    def shutdown(self) -> None: ...

    def job_id(self) -> str: ...

    def alive(self, timeout: float) -> bool:
        """Whether the open connection still works; may raise or overrun (counted as dead)."""
        ...


class _Ray:
    """The real Ray, imported on first use (ThreadPool batches never import it)."""

    def is_initialized(self) -> bool:
        import ray

        return bool(ray.is_initialized())

    def init(self, address: str | None, **kwargs: Any) -> Any:
        import ray

        return ray.init(address, **kwargs)

    def shutdown(self) -> None:
        import ray

        ray.shutdown()

    def job_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_job_id())

    def alive(self, timeout: float) -> bool:
        """Ask the GCS at the connection's address whether the driver's node is alive.

        ``ray.is_initialized()`` is a local flag: it stays True after the cluster went away.
        ``ray.nodes()`` takes no deadline: on Ray 2.60 it hung while the head was down, and a
        call still waiting when a new head came up on the same port aborted the process
        (a failed C++ check on the ``WrongClusterID`` answer). A tiny task
        (``ray.get(f.remote(), timeout=...)``) needs a worker process, which a loaded cluster
        may take longer than any short deadline to start: a false "dead" would throw away
        the warm job. The driver's node (the raylet it is attached to,
        ``get_runtime_context().get_node_id()``) is alive only in the cluster the connection
        was opened on. So: one ``CheckAlive`` RPC for it to the GCS
        (``global_worker.gcs_client``, the client Ray's own driver uses) with a deadline. A
        head that is down fails it at the deadline (``RpcError``: timed out waiting for the
        GCS); a new head on the same port refuses it at once (``AuthenticationError``:
        ``WrongClusterID``); a live cluster answers in about a millisecond.

        A Ray Client connection (``ray://``) has no GCS client in this process: its server
        is pinged instead (``ping_server``, with the deadline).
        """
        import ray
        from ray._private import client_mode_hook
        from ray._private.worker import global_worker
        from ray._raylet import NodeID

        hooks: Any = client_mode_hook  # Ray's helpers are untyped
        if hooks.client_mode_should_convert():
            from ray.util import client

            remote = client.ray.get_context().client_worker  # type: ignore[no-untyped-call]
            return bool(
                remote is not None and remote.is_connected() and remote.ping_server(timeout)
            )
        node = NodeID.from_hex(ray.get_runtime_context().get_node_id())
        worker: Any = global_worker  # its gcs_client is set by ray.init, not declared on Worker
        return bool(worker.gcs_client.check_alive([node], timeout=timeout)[0])


@dataclass
class _Live:
    job: RayJob
    job_id: str
    users: int = 0
    dead: str | None = None  # why the liveness check failed (then never reused)


class RayConnections:
    """The process's Ray connection: opened per job, shared by concurrent batches of that
    job, replaced only when no batch uses it."""

    def __init__(
        self, backend: RayBackend | None = None, liveness_timeout: float = LIVENESS_TIMEOUT_S
    ) -> None:
        self._backend: RayBackend = backend or _Ray()
        self.liveness_timeout = liveness_timeout
        self._cond = threading.Condition()
        self._live: _Live | None = None
        self.connects = 0  # ray.init calls made (what a warm batch does not add to)

    @property
    def live(self) -> RayJob | None:
        with self._cond:
            return self._live.job if self._live else None

    @property
    def job_id(self) -> str | None:
        """The live connection's Ray job id (hex), or None."""
        with self._cond:
            return self._live.job_id if self._live else None

    @contextlib.contextmanager
    def use(self, job: RayJob) -> Iterator[str]:
        """Hold a connection of ``job`` for one batch; yields its Ray job id."""
        live = self._acquire(job)
        try:
            yield live.job_id
        finally:
            self._release(live)

    def _acquire(self, job: RayJob) -> _Live:
        with self._cond:
            waited = False
            while True:
                if self._live is not None and not self._backend.is_initialized():
                    self._live = None  # ray.shutdown() was called outside WTB: reconnect
                if self._live is None:
                    break
                if self._live.job.key == job.key:
                    if self._live.dead is None:
                        self._live.dead = self._probe()
                        if self._live.dead is None:
                            break  # alive: reuse it
                        logger.warning(
                            "Ray: the kept connection to %s (job %s) is dead (%s); shutting "
                            "it down and connecting again",
                            self._live.job.address or "a local Ray",
                            self._live.job_id,
                            self._live.dead,
                        )
                    why = "it is dead"
                else:
                    why = "the next batch needs another job"
                if self._live.users == 0:
                    logger.info(
                        "Ray: closing job %s (%s); %s (%s)",
                        self._live.job_id,
                        self._live.job.address or "local Ray",
                        why,
                        job.address or "local Ray",
                    )
                    self._close()
                    break
                if not waited:
                    logger.info(
                        "Ray: waiting for %d batch(es) on job %s to end before opening "
                        "another connection (one Ray connection per process; %s)",
                        self._live.users,
                        self._live.job_id,
                        why,
                    )
                    waited = True
                self._cond.wait()
            if self._live is None:
                if self._backend.is_initialized():
                    raise WtbError(
                        "ray: this process is already connected to Ray outside WTB "
                        "(ray.init); call ray.shutdown() first, WTB opens its own connection"
                    )
                self._backend.init(job.address, **dict(job.init_kwargs))
                self.connects += 1
                self._live = _Live(job, self._backend.job_id())
                logger.info(
                    "Ray: job %s opened on %s", self._live.job_id, job.address or "a local Ray"
                )
            self._live.users += 1
            return self._live

    def _probe(self) -> str | None:
        """None when the live connection answers the liveness check in time, else why not.

        The backend's call gets ``liveness_timeout`` as its own deadline and runs in a daemon
        thread this waits for at most ``PROBE_GRACE_S`` longer: a probe that hangs past its
        deadline is abandoned (its thread ends whenever Ray returns) and counts as dead.
        """
        timeout = self.liveness_timeout
        answer: list[bool | BaseException] = []

        def probe() -> None:
            try:
                answer.append(self._backend.alive(timeout))
            except BaseException as exc:  # any failure of the check means "dead"
                answer.append(exc)

        thread = threading.Thread(target=probe, name="wtb-ray-liveness", daemon=True)
        thread.start()
        thread.join(timeout + PROBE_GRACE_S)
        if not answer:
            return f"no answer to the liveness check within {timeout + PROBE_GRACE_S:g} s"
        result = answer[0]
        if isinstance(result, BaseException):
            return f"liveness check failed: {type(result).__name__}: {result}"
        return None if result else "the cluster does not know the driver's node as alive"

    def _release(self, live: _Live) -> None:
        with self._cond:
            live.users -= 1
            if live is self._live and live.users == 0 and not live.job.keep:
                self._close()
            self._cond.notify_all()

    def _close(self) -> None:
        self._live = None
        if self._backend.is_initialized():
            self._backend.shutdown()

    def disconnect(self, timeout: float | None = None) -> bool:
        """Close the kept connection once no batch uses it (its worker processes end).

        Returns False when batches still used it after ``timeout`` seconds (nothing closed).
        """
        with self._cond:
            ok = self._cond.wait_for(lambda: self._live is None or self._live.users == 0, timeout)
            if not ok:
                return False
            if self._live is not None:
                logger.info("Ray: job %s closed (disconnect)", self._live.job_id)
                self._close()
            self._cond.notify_all()
            return True


CONNECTIONS = RayConnections()
_on_disconnect: list[Callable[[], None]] = []


def on_disconnect(hook: Callable[[], None]) -> None:
    """Run ``hook`` at :func:`disconnect` (the kept Prefect server stops with the job)."""
    _on_disconnect.append(hook)


def disconnect(timeout: float | None = None) -> bool:
    """End this process's kept Ray job (and the Prefect server WTB kept for it).

    Waits until no batch uses the connection; returns False if one still did after
    ``timeout`` seconds.
    """
    if not CONNECTIONS.disconnect(timeout):
        return False
    while _on_disconnect:
        _on_disconnect.pop()()
    return True
