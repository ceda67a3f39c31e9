"""Execution claims: one runner advances an execution at a time.

A run, resume or step first *claims* the execution in the store (an owner id and a lease
expiry on the execution's row), renews the lease with every node it writes (and with a
heartbeat while a long node runs) and releases the claim when it pauses, finishes or fails.
Another runner that meets a live claim is refused before it runs any node
(:class:`ExecutionClaimed`); a claim whose lease has expired -- its runner died -- is taken
over. Every move of the execution's head is also a compare-and-set on the checkpoint the
writer expects to be the head, so a runner that lost its claim cannot write after the new
owner (:class:`ExecutionConflict`).

Lease expiry is judged by the database's clock on PostgreSQL (runners may be on machines
whose clocks differ) and by the local clock for SQLite (a file on this machine) and memory.

A runner counts its lease from the moment it *sent* the write that started or renewed it
(:attr:`Claim.issued_at`, then each renewal's send time): the stored lease starts no earlier,
so the runner never believes it holds a lease longer than the store grants. Before each node
it makes sure the lease is fresh (renewing it there and then if its heartbeat is late), and a
renewal that finds the claim gone stops the run before its next node (:class:`ClaimLost`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from wtb_domain.errors import ExecutionError, SpecError

LEASE_ENV = "WTB_EXECUTION_LEASE_S"
DEFAULT_LEASE_S = 30.0
MIN_LEASE_S = 0.2


@dataclass(frozen=True)
class Claim:
    """Who advances an execution (``owner``) and how long a claim lasts without renewal."""

    owner: str
    lease_s: float
    issued_at: float = field(default_factory=time.monotonic, compare=False)
    """When the claim was made (monotonic clock), before any write that stores it: the
    stored lease starts no earlier than this."""

    @property
    def renew_every_s(self) -> float:
        """How often a runner renews its lease while a node runs (a third of it)."""
        return self.lease_s / 3


def lease_seconds(value: str | None = None) -> float:
    """The lease length: ``value``, else ``WTB_EXECUTION_LEASE_S``, else 30 s."""
    text = os.environ.get(LEASE_ENV) if value is None else value
    if text is None or not text.strip():
        return DEFAULT_LEASE_S
    try:
        lease = float(text)
    except ValueError:
        lease = float("nan")
    if not lease >= MIN_LEASE_S or lease == float("inf"):
        raise SpecError(
            f"{LEASE_ENV}: {text!r} is not a number of seconds >= {MIN_LEASE_S}; "
            f"set it to e.g. {DEFAULT_LEASE_S:g} or unset it"
        )
    return lease


_active: set[str] = set()
_active_lock = threading.Lock()


def _process_prefix() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:"


def new_claim(lease_s: float | None = None) -> Claim:
    """A claim with a fresh owner id: host, process id and a random part (one per run).

    The claim counts as active in this process until :func:`forget` is called.
    """
    owner = f"{_process_prefix()}{uuid.uuid4().hex[:12]}"[-128:]
    claim = Claim(owner, lease_seconds() if lease_s is None else lease_s)
    with _active_lock:
        _active.add(claim.owner)
    return claim


def forget(claim: Claim) -> None:
    """The run holding ``claim`` in this process is over (released or given up)."""
    with _active_lock:
        _active.discard(claim.owner)


def abandoned_here(owner: str) -> bool:
    """True if ``owner``'s run is known to be over without waiting for its lease.

    That is a claim of this very process whose run is over (it gave up: the store failed, so
    its claim could not be released), or a claim of a process of this host that no longer
    exists (killed: ``wtb batch run --batch-id X`` after a crash resumes at once). Claims of
    other hosts are only taken over when their lease expires.
    """
    with _active_lock:
        if owner.startswith(_process_prefix()):
            return owner not in _active
    return _dead_on_this_host(owner)


def _dead_on_this_host(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class ExecutionClaimed(ExecutionError):
    """Another runner holds a live claim on the execution; nothing was run or written."""

    nodes_run = 0
    """Nodes the refused run had written before it was refused (set by the engine)."""
    cache_hits = 0

    def __init__(self, execution_id: str, owner: str, expires_in_s: float | None) -> None:
        left = f"{expires_in_s:.1f} s" if expires_in_s is not None else "an unknown time"
        super().__init__(
            f"execution {execution_id} is being run by {owner} (its claim expires in {left} "
            "unless renewed); wait for that run to pause or finish, or resume it after the "
            "claim has expired if that process died"
        )
        self.execution_id = execution_id
        self.owner = owner
        self.expires_in_s = expires_in_s


class ExecutionConflict(ExecutionError):
    """The execution's head is not where the writer expected: someone else moved it."""

    nodes_run = 0
    """Nodes the refused run had written before it was refused (set by the engine)."""
    cache_hits = 0

    def __init__(self, execution_id: str, message: str | None = None) -> None:
        super().__init__(message or f"execution {execution_id} is being advanced elsewhere")
        self.execution_id = execution_id


class ClaimLost(ExecutionConflict):
    """This run's claim is gone (its lease lapsed and another runner claimed the execution):
    the run stopped before its next node and wrote nothing more."""

    def __init__(self, execution_id: str, claim: Claim) -> None:
        super().__init__(
            execution_id,
            f"execution {execution_id}: the claim of this run ({claim.owner}) lapsed unrenewed "
            f"for longer than its {claim.lease_s:g} s lease and another runner took the "
            f"execution over; this run stopped before its next node (raise {LEASE_ENV} on a "
            "machine this loaded)",
        )
        self.owner = claim.owner
