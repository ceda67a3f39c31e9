"""A runner that renews its claim keeps it, and one that lost it stops: on every store.

* Late replies: every claim write of the runner is applied at once but its reply comes
  :data:`REPLY_DELAY_S` later (a loaded machine, a slow round trip, a lock wait before the
  write). The runner must time its lease from when it *sent* the write (the store's lease
  starts no earlier), not from when the reply came: counted from the reply, its next renewal
  would come after the stored lease had lapsed, and a second runner probing all the while
  would take the execution over. The probe must never succeed.
* Taken over mid-node: when another runner holds the execution by the time the node ends,
  the node's write is refused (its result is not kept, not counted) and the next node does
  not start; the run raises :class:`ClaimLost` or the refusal, naming the execution.
* Before each node the runner makes sure its lease is fresh: a claim whose last renewal is
  older than a third of its lease is renewed first (no node starts on a lapsing lease).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

from tests.contract import runners
from wtb_domain import App, Status
from wtb_domain.claims import (
    Claim,
    ClaimLost,
    ExecutionClaimed,
    ExecutionConflict,
    forget,
    new_claim,
)
from wtb_domain.controller import ExecutionController
from wtb_domain.heartbeat import Heartbeat
from wtb_domain.ports import UnitOfWork

LEASE_S = 1.5
REPLY_DELAY_S = 1.2
"""More than two thirds of the lease (a reply-timed renewal comes after the lease lapsed),
less than the lease (a send-timed one comes in time, however long each reply takes)."""
PROBE_EVERY_S = 0.02


class LateReplies:
    """A unit of work whose claim writes return ``delay`` seconds after they were applied."""

    def __init__(self, inner: UnitOfWork, delay: float) -> None:
        self._inner, self._delay = inner, delay

    def __enter__(self) -> Self:
        self._inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._inner.__exit__(exc_type, exc, tb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _late(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self._inner, name)(*args, **kwargs)
        time.sleep(self._delay)
        return result

    def renew_claim(self, *args: Any, **kwargs: Any) -> Any:
        return self._late("renew_claim", *args, **kwargs)

    def claim_execution(self, *args: Any, **kwargs: Any) -> Any:
        return self._late("claim_execution", *args, **kwargs)

    def save_node(self, *args: Any, **kwargs: Any) -> Any:
        return self._late("save_node", *args, **kwargs)


def late_controller(app: App, delay: float) -> ExecutionController:
    def uow(read_only: bool = False) -> UnitOfWork:
        return LateReplies(app.uow(read_only=read_only), delay)  # type: ignore[return-value]

    return ExecutionController(uow, app.bus, lease_s=LEASE_S)


def paused_five(app: App, log: Path, **state: object) -> str:
    paused = app.controller.run(runners.FIVE, {"log": str(log), **state}, break_before=["n2"])
    assert paused.paused_at == "before:n2"
    return paused.id


def test_a_runner_whose_store_replies_late_keeps_its_claim(
    make_app: Callable[[], App], tmp_path: Path
) -> None:
    app = make_app()
    log = tmp_path / "calls.log"
    eid = paused_five(app, log, slow_node="n3", slow_s=3 * LEASE_S)
    runner = late_controller(make_app(), REPLY_DELAY_S)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["done"] = runner.resume(eid)
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    prober, taken = make_app(), []
    try:
        while thread.is_alive():  # another runner tries to claim it all along
            claim = new_claim(LEASE_S)
            try:
                with prober.uow() as uow:
                    execution = uow.executions.get(eid)
                if execution.status is Status.RUNNING:
                    with prober.uow() as uow:
                        uow.claim_execution(execution, claim)
                    taken.append(execution.head_checkpoint_id)
                    with prober.uow() as uow:
                        uow.drop_claim(eid, claim)
            except (ExecutionClaimed, ExecutionConflict):
                pass
            finally:
                forget(claim)
            time.sleep(PROBE_EVERY_S)
    finally:
        thread.join(60)
    assert not taken, f"a live, renewing runner's claim was taken over {len(taken)} times"
    done = outcome.get("done")
    assert getattr(done, "status", None) is Status.COMPLETED, outcome
    assert set(runners.call_counts(log).values()) == {1}


def test_a_run_whose_claim_is_taken_over_mid_node_keeps_nothing_and_stops(
    make_app: Callable[[], App], tmp_path: Path
) -> None:
    app = make_app()
    log = tmp_path / "calls.log"
    eid = paused_five(app, log, slow_node="n3", slow_s=1.0)
    other, claim = make_app(), new_claim(60.0)
    taken = threading.Event()

    def take_over() -> None:  # while n3 runs, another runner takes the execution over
        while not any(n == "n3" for e, n, _ in runners.calls(log) if e == eid):
            time.sleep(0.01)
        owner = _owner_of(other, eid)
        with other.uow() as uow:
            execution = uow.executions.get(eid)
        with other.uow() as uow:  # as after a lapse of the running runner's lease
            uow.claim_execution(execution, claim, takeover_from=owner)
        taken.set()

    thread = threading.Thread(target=take_over)
    thread.start()
    try:
        with pytest.raises((ClaimLost, ExecutionClaimed, ExecutionConflict)) as err:
            app.controller.resume(eid)
    finally:
        thread.join(30)
        forget(claim)
    assert taken.is_set()
    assert eid in str(err.value)
    assert err.value.nodes_run == 1  # n2 was written; n3's write was refused
    calls = [n for e, n, _ in runners.calls(log) if e == eid]
    assert calls == ["n1", "n2", "n3"]  # n4 never started
    with app.uow() as uow:
        history = uow.checkpoints.history(eid)
        execution = uow.executions.get(eid)
    assert [c.node for c in history] == [None, "n1", "n2"]  # n3's result was not kept
    assert execution.head_checkpoint_id == history[-1].id


def _owner_of(app: App, execution_id: str) -> str:
    """The owner id of the claim on the execution (read the way a second runner meets it)."""
    with app.uow() as uow:
        execution = uow.executions.get(execution_id)
        try:
            uow.claim_execution(execution, Claim("probe:0:000000000000", 60.0))
        except ExecutionClaimed as exc:
            return exc.owner
    raise AssertionError("the execution was not claimed")


class CountingRenewals:
    """A store stand-in for the heartbeat: counts renewals, holds or has lost the claim."""

    def __init__(self, kept: bool = True) -> None:
        self.kept, self.renewals, self.here = kept, 0, 0

    def __call__(self) -> CountingRenewals:
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def renew_claim(self, execution_id: str, claim: Claim) -> bool:
        self.renewals += 1
        self.here += threading.current_thread() is threading.main_thread()  # by check()
        return self.kept


@pytest.mark.parametrize(("age", "renewed"), [(0.0, False), (25.0, True)])
def test_a_node_starts_only_on_a_fresh_lease(age: float, renewed: bool) -> None:
    store = CountingRenewals()
    heartbeat = Heartbeat(store)  # type: ignore[arg-type]
    claim = Claim("here:1:abc", 30.0, issued_at=time.monotonic() - age)
    heartbeat.add("e1", claim)  # (its thread may renew a due claim too, at the same time)
    try:
        heartbeat.check("e1", claim)  # a 25 s old lease of 30 s is renewed before it returns
        assert (store.renewals > 0) is renewed  # (by check, or by the beat just before)
        asked = store.here
        heartbeat.check("e1", claim)  # then it is fresh: nothing more to renew for 10 s
        assert store.here == asked
    finally:
        heartbeat.remove("e1", claim)


def test_a_lost_claim_stops_the_run_before_its_next_node() -> None:
    store = CountingRenewals(kept=False)
    heartbeat = Heartbeat(store)  # type: ignore[arg-type]
    claim = Claim("here:1:abc", 30.0, issued_at=time.monotonic() - 25.0)
    heartbeat.add("e1", claim)
    try:
        with pytest.raises(ClaimLost, match=r"execution e1: the claim of this run \(here:1:abc\)"):
            heartbeat.check("e1", claim)
        asked = store.here
        with pytest.raises(ClaimLost):  # and stays lost, without asking the store again
            heartbeat.check("e1", claim)
        assert store.renewals >= 1 and store.here == asked
    finally:
        heartbeat.remove("e1", claim)
