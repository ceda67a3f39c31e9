"""Keeps the claims of running executions alive while their nodes run.

Every node write renews its execution's lease; a node that runs longer than a third of the
lease gets its lease renewed here instead, by one daemon thread per engine that wakes when a
renewal is due (and exits when it has had nothing to do for a while).
"""

from __future__ import annotations

import logging
import threading
import time

from wtb_domain.claims import Claim
from wtb_domain.ports import UnitOfWorkFactory

log = logging.getLogger(__name__)
IDLE_EXIT_S = 10.0


class Heartbeat:
    """Renews registered claims whose last renewal is older than a third of their lease."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow = uow_factory
        self._cond = threading.Condition()
        self._claims: dict[tuple[str, str], tuple[Claim, float]] = {}
        self._thread: threading.Thread | None = None
        self._wakes_at = 0.0  # when the waiting thread wakes on its own; 0: it is not waiting

    def add(self, execution_id: str, claim: Claim) -> None:
        """Start renewing ``claim`` (just taken or renewed) on ``execution_id``."""
        now = time.monotonic()
        with self._cond:
            self._claims[(execution_id, claim.owner)] = (claim, now)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="wtb-claim-heartbeat", daemon=True
                )
                self._thread.start()
            elif now + claim.renew_every_s < self._wakes_at:
                # Wake the thread only when it would sleep past this claim's renewal (a
                # thread that is not waiting looks at every claim before it waits again).
                self._cond.notify()

    def renewed(self, execution_id: str, claim: Claim) -> None:
        """The claim's lease was just renewed by a write (no heartbeat needed for a while)."""
        key = (execution_id, claim.owner)
        with self._cond:
            if key in self._claims:
                self._claims[key] = (claim, time.monotonic())

    def remove(self, execution_id: str, claim: Claim) -> None:
        with self._cond:
            self._claims.pop((execution_id, claim.owner), None)

    def _due(self) -> tuple[list[tuple[str, Claim]], float]:
        """Claims due for renewal and the seconds until the next one is (under the lock)."""
        now = time.monotonic()
        due: list[tuple[str, Claim]] = []
        wait = IDLE_EXIT_S
        for (execution_id, _), (claim, last) in self._claims.items():
            left = last + claim.renew_every_s - now
            if left <= 0:
                due.append((execution_id, claim))
                left = claim.renew_every_s
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
            for execution_id, claim in due:
                self._renew(execution_id, claim)

    def _renew(self, execution_id: str, claim: Claim) -> None:
        try:
            with self._uow() as uow:
                kept = uow.renew_claim(execution_id, claim)
        except Exception:  # a store hiccup: the next beat (or node write) tries again
            log.warning("could not renew the claim on execution %s", execution_id, exc_info=True)
            kept = True
        if not kept:
            log.warning("execution %s: claim %s was taken over", execution_id, claim.owner)
        key = (execution_id, claim.owner)
        with self._cond:
            if key in self._claims:
                if kept:
                    self._claims[key] = (claim, time.monotonic())
                else:
                    del self._claims[key]
