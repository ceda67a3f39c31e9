"""One execution, one runner: compare-and-set head moves and claims, on every store.

A runner claims an execution before it runs a node; a second runner meeting a live claim is
refused before running anything, and every head move checks the head it expects, so the
losing write leaves nothing behind (no orphan checkpoint, no values).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from tests.contract import runners
from tests.contract.test_unit_of_work_contract import next_node, save, started
from wtb_domain import App, ExecutionError, NotFoundError, Status
from wtb_domain.claims import (
    LEASE_ENV,
    Claim,
    ExecutionClaimed,
    ExecutionConflict,
    forget,
    lease_seconds,
    new_claim,
)
from wtb_domain.controller import ExecutionController
from wtb_domain.errors import SpecError

SHORT_S = 0.6


def foreign(lease_s: float = 60.0) -> Claim:
    return Claim("elsewhere:4242:feedc0ffee00", lease_s)


def history_ids(app: App, execution_id: str) -> list[str]:
    with app.uow() as uow:
        return [c.id for c in uow.checkpoints.history(execution_id)]


def test_a_second_write_from_the_same_parent_is_refused_and_leaves_the_chain_intact(
    app: App, make_app: Callable[[], App]
) -> None:
    execution, input_cp = started(app)
    winner = next_node(execution, input_cp, "a")
    loser = next_node(execution, input_cp, "a")  # computed from the same head, elsewhere

    save(app, winner)
    with make_app().uow() as uow, pytest.raises(ExecutionConflict) as err:
        uow.save_node(loser.checkpoint, loser.new_blobs, loser.execution)

    assert str(err.value) == f"execution {execution.id} is being advanced elsewhere"
    assert isinstance(err.value, ExecutionError)
    with app.uow() as uow:
        assert uow.executions.get(execution.id).head_checkpoint_id == winner.checkpoint.id
        assert [c.id for c in uow.checkpoints.history(execution.id)] == [
            input_cp.id,
            winner.checkpoint.id,
        ]
        with pytest.raises(NotFoundError):
            uow.checkpoints.get(loser.checkpoint.id)
        with pytest.raises(NotFoundError):  # the loser's values were not stored either
            uow.checkpoints.load_values(list(loser.new_blobs))


def test_a_refused_write_rolls_back_what_the_unit_of_work_had_pending(app: App) -> None:
    execution, input_cp = started(app)
    winner = next_node(execution, input_cp, "a")
    loser = next_node(execution, input_cp, "a")
    save(app, winner)
    other, _ = started(app)
    patched = replace(other, paused_at="pending-write")

    with app.uow() as uow, pytest.raises(ExecutionConflict):
        uow.executions.update(patched)
        uow.save_node(loser.checkpoint, loser.new_blobs, loser.execution)

    with app.uow() as uow:
        assert uow.executions.get(other.id).paused_at is None


def test_a_live_claim_refuses_other_runners_and_names_the_owner(app: App) -> None:
    execution, input_cp = started(app)
    holder = foreign()
    with app.uow() as uow:
        uow.claim_execution(replace(execution, status=Status.RUNNING), holder)
    mine = new_claim(30.0)
    node = next_node(execution, input_cp)

    with app.uow() as uow, pytest.raises(ExecutionClaimed) as err:
        uow.claim_execution(execution, mine)
    assert execution.id in str(err.value) and holder.owner in str(err.value)
    assert err.value.owner == holder.owner
    assert err.value.expires_in_s is not None and 0 < err.value.expires_in_s <= 60
    with app.uow() as uow, pytest.raises(ExecutionClaimed):
        uow.save_node(node.checkpoint, node.new_blobs, node.execution, mine)
    with app.uow() as uow, pytest.raises(ExecutionClaimed):  # no claim at all: refused too
        uow.save_node(node.checkpoint, node.new_blobs, node.execution)

    assert history_ids(app, execution.id) == [input_cp.id]
    with app.uow() as uow:  # the holder itself writes on
        uow.save_node(node.checkpoint, node.new_blobs, node.execution, holder)
        assert uow.executions.get(execution.id).head_checkpoint_id == node.checkpoint.id


def test_an_expired_claim_is_taken_over(app: App) -> None:
    execution, input_cp = started(app)
    with app.uow() as uow:
        uow.claim_execution(execution, foreign(lease_s=0.3))
    time.sleep(0.5)  # the holder died: no renewal
    mine = new_claim(30.0)
    node = next_node(execution, input_cp)

    with app.uow() as uow:
        uow.claim_execution(execution, mine)
        uow.save_node(node.checkpoint, node.new_blobs, node.execution, mine)
    with app.uow() as uow:
        assert uow.executions.get(execution.id).head_checkpoint_id == node.checkpoint.id
        assert uow.renew_claim(execution.id, foreign()) is False  # the old holder lost it
        assert uow.renew_claim(execution.id, mine) is True


def test_release_frees_the_claim_and_a_retried_node_write_is_accepted(app: App) -> None:
    execution, input_cp = started(app)
    mine = new_claim(30.0)
    node = next_node(execution, input_cp)
    with app.uow() as uow:
        uow.claim_execution(execution, mine)
        uow.save_node(node.checkpoint, node.new_blobs, node.execution, mine)
        uow.save_node(node.checkpoint, node.new_blobs, node.execution, mine)  # a retry
        uow.release_execution(replace(node.execution, status=Status.PAUSED), mine)

    with app.uow() as uow:  # free: anyone may claim it now
        uow.claim_execution(node.execution, foreign())
    assert history_ids(app, execution.id) == [input_cp.id, node.checkpoint.id]


def test_claims_of_unknown_executions_are_not_found(app: App) -> None:
    execution, _ = started(app)
    with app.uow() as uow, pytest.raises(NotFoundError):
        uow.claim_execution(replace(execution, id="no-such-execution"), new_claim(30.0))


# --- through the controller -------------------------------------------------------------------


def paused_five(app: App, log: Path, **state: object) -> str:
    """A ``five`` execution paused before n2 (input + n1 stored)."""
    execution = app.controller.run(runners.FIVE, {"log": str(log), **state}, break_before=["n2"])
    assert execution.paused_at == "before:n2"
    return execution.id


def test_resume_while_another_runner_holds_the_claim_runs_no_node(
    app: App, make_app: Callable[[], App], tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    eid = paused_five(app, log)
    with app.uow() as uow:
        execution = uow.executions.get(eid)
        uow.claim_execution(replace(execution, status=Status.RUNNING), foreign())
    before = len(runners.calls(log))

    other = make_app().controller
    for attempt in (other.resume, other.step):
        with pytest.raises(ExecutionClaimed, match=f"execution {eid} is being run by elsewhere"):
            attempt(eid)
    with pytest.raises(ExecutionError, match=eid):
        other.rollback(history_ids(app, eid)[0])
    with pytest.raises(ExecutionError, match=eid):
        other.update_state(eid, {"x": 1})

    assert len(runners.calls(log)) == before
    assert len(history_ids(app, eid)) == 2
    with app.uow() as uow:
        uow.drop_claim(eid, foreign())
    done = other.resume(eid)
    assert done.status is Status.COMPLETED
    assert len(history_ids(app, eid)) == 6


def test_a_claim_expires_unless_renewed_and_a_dead_runner_can_be_replaced(
    app: App, make_app: Callable[[], App], tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    eid = paused_five(app, log)
    with app.uow() as uow:
        execution = uow.executions.get(eid)
        uow.claim_execution(replace(execution, status=Status.RUNNING), foreign(SHORT_S))
    other = make_app().controller
    with pytest.raises(ExecutionClaimed):
        other.resume(eid)
    time.sleep(SHORT_S + 0.2)
    assert other.resume(eid).status is Status.COMPLETED


def test_the_lease_is_renewed_while_a_long_node_runs(
    backend: object, make_app: Callable[[], App], tmp_path: Path
) -> None:
    """A node running for several leases keeps its claim (the heartbeat renews it)."""
    import threading

    runner_app = make_app()
    runner = ExecutionController(runner_app.uow, runner_app.bus, lease_s=SHORT_S)
    log = tmp_path / "calls.log"
    eid = paused_five(runner_app, log, slow_node="n3", slow_s=4 * SHORT_S)
    outcome: dict[str, object] = {}
    thread = threading.Thread(target=lambda: outcome.update(done=runner.resume(eid)))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while ("n3" not in {n for _, n, _ in runners.calls(log)}) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(2 * SHORT_S)  # well past one lease: only renewals keep the claim alive
        with pytest.raises(ExecutionClaimed):
            make_app().controller.resume(eid)
    finally:
        thread.join(60)
    done = outcome["done"]
    assert getattr(done, "status", None) is Status.COMPLETED
    assert runners.call_counts(log)[(eid, "n3")] == 1
    assert len(history_ids(runner_app, eid)) == 6


def test_a_finished_run_leaves_the_execution_unclaimed(
    app: App, make_app: Callable[[], App], tmp_path: Path
) -> None:
    """Pause, step and failure release the claim: another process continues at once."""
    log = tmp_path / "calls.log"
    eid = paused_five(app, log)
    other = make_app().controller
    assert other.step(eid).paused_at == "step:n2"
    assert app.controller.step(eid).paused_at == "step:n3"
    assert other.resume(eid).status is Status.COMPLETED
    assert len(history_ids(app, eid)) == 6


def test_lease_setting() -> None:
    assert lease_seconds("") == 30.0
    assert lease_seconds("2.5") == 2.5
    for bad in ("abc", "0", "-1", "nan", "inf"):
        with pytest.raises(SpecError, match=LEASE_ENV):
            lease_seconds(bad)


def test_a_claim_this_process_gave_up_is_taken_over_at_once(
    app: App, make_app: Callable[[], App], tmp_path: Path
) -> None:
    """A run that failed with the store (its claim could not be released) does not block a
    resume in the same process for a lease; a live claim of this process still does."""
    eid = paused_five(app, tmp_path / "calls.log")
    live = new_claim(60.0)
    with app.uow() as uow:
        uow.claim_execution(app.controller.get(eid), live)
    with pytest.raises(ExecutionClaimed):
        make_app().controller.resume(eid)
    forget(live)  # its run is over
    assert make_app().controller.resume(eid).status is Status.COMPLETED


def _dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_claim_of_a_dead_process_of_this_host_is_taken_over_at_once(
    app: App, make_app: Callable[[], App], tmp_path: Path
) -> None:
    """A runner killed on this host (SIGKILL, OOM) blocks nobody for its lease; a live
    process of this host, or any process of another host, still does until it expires."""
    import os
    import socket

    eid = paused_five(app, tmp_path / "calls.log")
    host = socket.gethostname()
    with app.uow() as uow:
        uow.claim_execution(
            app.controller.get(eid), Claim(f"{host}:{os.getppid()}:aliveparent0", 60.0)
        )
    with pytest.raises(ExecutionClaimed):
        make_app().controller.resume(eid)
    with app.uow() as uow:
        uow.drop_claim(eid, Claim(f"{host}:{os.getppid()}:aliveparent0", 60.0))
        uow.claim_execution(app.controller.get(eid), Claim(f"{host}:{_dead_pid()}:dead0", 60.0))
    assert make_app().controller.resume(eid).status is Status.COMPLETED
