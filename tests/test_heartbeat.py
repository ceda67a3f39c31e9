"""The claim heartbeat wakes for a claim due before its planned wake-up, and only then."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from wtb_domain.claims import Claim
from wtb_domain.heartbeat import Heartbeat


class FakeUow:
    def __init__(self, renewed: list[str], done: threading.Event) -> None:
        self.renewed, self.done = renewed, done

    def renew_claim(self, execution_id: str, claim: Claim) -> bool:
        self.renewed.append(execution_id)
        if execution_id == "short":
            self.done.set()
        return True


def test_a_claim_due_sooner_wakes_the_waiting_thread() -> None:
    renewed: list[str] = []
    done = threading.Event()

    @contextmanager
    def uow() -> Iterator[Any]:
        yield FakeUow(renewed, done)

    beat = Heartbeat(uow)
    notified: list[bool] = []
    beat.add("long", Claim("me", lease_s=3600))  # the thread starts, waits ~10 s (idle cap)
    cond_notify = beat._cond.notify

    def spy(n: int = 1) -> None:
        notified.append(True)
        cond_notify(n)

    beat._cond.notify = spy  # type: ignore[method-assign]
    while not beat._wakes_at:  # the thread is waiting
        threading.Event().wait(0.01)
    beat.add("long-2", Claim("me", lease_s=3600))  # due after the wake-up: no notify
    assert notified == []
    beat.add("short", Claim("me", lease_s=0.3))  # due in 0.1 s: the thread must wake now
    assert notified == [True]
    assert done.wait(5)  # renewed long before the thread's own wake-up (~10 s)
    assert "long" not in renewed and "long-2" not in renewed
    for name in ("long", "long-2", "short"):
        beat.remove(name, Claim("me", 1))
