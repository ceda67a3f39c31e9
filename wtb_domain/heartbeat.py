"""Keeps the claims of running executions alive while their nodes run.

Every node write renews its execution's lease; a node that runs longer than a third of the
lease gets its lease renewed here instead, by one daemon thread per engine that wakes when a
renewal is due (and exits when it has had nothing to do for a while).

Each held claim knows until when its lease is surely valid: the send time of the write that
last started or renewed it, plus the lease (the store's lease starts no earlier than that
send; lock waits and a slow round trip only shorten what is left, never lengthen it). Renewals
are due a third of a lease after that moment. :meth:`Heartbeat.check`, called before every
node, renews on the spot when the beat is late, and raises :class:`ClaimLost` when a renewal
found the claim gone: the run stops before running another node.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from wtb_domain.claims import Claim, ClaimLost
from wtb_domain.ports import UnitOfWorkFactory

log = logging.getLogger(__name__)
IDLE_EXIT_S = 10.0
RETRY_FRACTION = 0.1
"""After a renewal that failed on a store error, the next try comes this share of a lease
later (not a whole third: the lease is running out)."""


@dataclass
class _Held:
    claim: Claim
    valid_until: float
    """Monotonic time before which the stored lease has surely not expired."""
    next_try: float = 0.0
    lost: bool = False

    @property
    def due_at(self) -> float:
        return max(self.valid_until - self.claim.lease_s + self.claim.renew_every_s, self.next_try)


class Heartbeat:
    """Renews registered claims a third of a lease after their last known renewal."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow = uow_factory
        self._cond = threading.Condition()
        self._claims: dict[tuple[str, str], _Held] = {}
        self._thread: threading.Thread | None = None
        self._wakes_at = 0.0  # when the waiting thread wakes on its own; 0: it is not waiting

    def add(self, execution_id: str, claim: Claim) -> None:
        """Start renewing ``claim``, just taken (its lease counts from ``claim.issued_at``)."""
        held = _Held(claim, claim.issued_at + claim.lease_s)
        with self._cond:
            self._claims[(execution_id, claim.owner)] = held
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="wtb-claim-heartbeat", daemon=True
                )
                self._thread.start()
            elif held.due_at < self._wakes_at:
                # Wake the thread only when it would sleep past this claim's renewal (a
                # thread that is not waiting looks at every claim before it waits again).
                self._cond.notify()

    def renewed(self, execution_id: str, claim: Claim, sent_at: float) -> None:
        """A write sent at ``sent_at`` (monotonic) renewed the claim's lease."""
        with self._cond:
            held = self._claims.get((execution_id, claim.owner))
            if held is not None and not held.lost:
                held.valid_until = max(held.valid_until, sent_at + claim.lease_s)

    def remove(self, execution_id: str, claim: Claim) -> None:
        with self._cond:
            self._claims.pop((execution_id, claim.owner), None)

    def check(self, execution_id: str, claim: Claim) -> None:
        """Before a node: raise :class:`ClaimLost` if the claim is gone; renew it now if its
        renewal is due (the beat is late), so no node starts on a lease about to lapse."""
        with self._cond:
            held = self._claims.get((execution_id, claim.owner))
        if held is None:
            return
        if not held.lost and time.monotonic() >= held.valid_until - claim.lease_s * 2 / 3:
            try:
                self._renew(execution_id, held, raise_errors=True)
            except Exception:
                if time.monotonic() >= held.valid_until:  # the lease may have lapsed: stop
                    raise
                log.warning("could not renew the claim on %s", execution_id, exc_info=True)
        if held.lost:
            raise ClaimLost(execution_id, claim)

    def _due(self) -> tuple[list[tuple[str, _Held]], float]:
        """Claims due for renewal and the seconds until the next one is (under the lock)."""
        now = time.monotonic()
        due: list[tuple[str, _Held]] = []
        wait = IDLE_EXIT_S
        for (execution_id, _), held in self._claims.items():
            if held.lost:
                continue
            left = held.due_at - now
            if left <= 0:
                due.append((execution_id, held))
                left = held.claim.renew_every_s
            wait = min(wait, left)
        return due, wait

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            with self._cond:
                due, wait = self._due()
                if not self._claims:
                    now = time.monotonic()
                    idle_since = idle_since or now
                    if now - idle_since >= IDLE_EXIT_S:
                        self._thread = None
                        return
                else:
                    idle_since = None
                if not due:
                    self._wakes_at = time.monotonic() + wait
                    self._cond.wait(timeout=wait)
                    self._wakes_at = 0.0
                    continue
            for execution_id, held in due:
                self._renew(execution_id, held)

    def _renew(self, execution_id: str, held: _Held, *, raise_errors: bool = False) -> None:
        claim = held.claim
        sent = time.monotonic()
        try:
            with self._uow() as uow:
                kept = uow.renew_claim(execution_id, claim)
        except Exception:  # a store hiccup: try again soon (the lease is not extended)
            with self._cond:
                held.next_try = time.monotonic() + claim.lease_s * RETRY_FRACTION
            if raise_errors:
                raise
            log.warning("could not renew the claim on execution %s", execution_id, exc_info=True)
            return
        with self._cond:
            if kept:
                held.valid_until = max(held.valid_until, sent + claim.lease_s)
            else:
                held.lost = True
        if not kept:
            log.warning("execution %s: claim %s was taken over", execution_id, claim.owner)
