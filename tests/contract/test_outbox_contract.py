"""The audit trail and the outbox over memory, SQLite and PostgreSQL: events are written with
the change they describe (and not when it is refused), the relay publishes what is left, and
idempotent consumers apply each event once."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.contract.test_controller_contract import LINEAR
from tests.contract.workflows import FLAKY
from wtb_domain import App, ExecutionError, Severity, model
from wtb_domain import events as ev
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.claims import new_claim
from wtb_domain.events import Event, MessageBus
from wtb_domain.outbox import IdempotentConsumer, OutboxRelay
from wtb_domain.ports import UnitOfWork


def outbox_types(app: App) -> list[str]:
    with app.uow() as uow:
        return [type(r.event).__name__ for r in uow.outbox.pending(10_000)]


def test_every_change_writes_its_events_to_the_outbox_and_the_trail(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1}, break_before=["b"])
    first = c.history(ex.id)[1]
    c.update_state(ex.id, {"x": 5})
    c.rollback(first.id)
    c.replay(first.id, "a", "plus10")
    app.flush()
    mine = {e.event_id for e in app.bus.history()}
    with app.uow() as uow:
        pending = {r.event.event_id for r in uow.outbox.pending(100_000)}
        assert len(mine) == 11 and not mine & pending  # published by this process, and marked
        types = [e.event_type for e in uow.audit.entries(ex.id)]
    assert types == [
        "execution_started",
        "node_completed",
        "execution_paused",
        "state_updated",
        "execution_rolled_back",
    ]
    history = [type(e).__name__ for e in app.bus.history()]
    assert history[-6:] == [
        "ExecutionForked",
        "NodeReplayed",
        "NodeCompleted",
        "NodeCompleted",
        "NodeCompleted",
        "ExecutionCompleted",
    ]


def test_a_refused_write_writes_no_event(make_app: Any, app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1}, break_before=["b"])
    other = make_app()
    claim = new_claim(60.0)
    with other.uow() as uow:
        held = uow.executions.get(ex.id)
        uow.claim_execution(held, claim)
    before = audit_count(app)
    with pytest.raises(ExecutionError):
        c.resume(ex.id)  # claimed by another runner: no resumed entry, no outbox row
    assert audit_count(app) == before
    assert "ExecutionResumed" not in [type(e).__name__ for e in app.bus.history()]


def audit_count(app: App) -> int:
    with app.uow() as uow:
        return len(uow.audit.entries(limit=100_000))


def test_the_relay_publishes_what_no_process_published_once(app: App, make_app: Any) -> None:
    OutboxRelay(app.uow, MessageBus()).run_once()  # PostgreSQL's database is shared: drain it
    ghost = _ghost(make_app, [])  # a process that dies before its events reach a subscriber
    ex = ghost.controller.run(LINEAR, {"x": 1})
    assert outbox_types(app) == [
        "ExecutionStarted",
        "NodeCompleted",
        "NodeCompleted",
        "NodeCompleted",
        "ExecutionCompleted",
    ]
    bus = MessageBus()
    got: list[Event] = []
    bus.subscribe(Event, got.append)
    relay = OutboxRelay(app.uow, bus, batch=2)
    assert relay.run_once(min_age_s=3600) == 0  # too young: its own process may mark it
    assert relay.run_once() == 5
    assert relay.run_once() == 0
    assert [type(e).__name__ for e in got] == [
        "ExecutionStarted",
        "NodeCompleted",
        "NodeCompleted",
        "NodeCompleted",
        "ExecutionCompleted",
    ]
    assert all(getattr(e, "execution_id", None) == ex.id for e in got)
    assert outbox_types(app) == []


def test_an_idempotent_consumer_applies_each_event_once(app: App) -> None:
    applied: Counter[str] = Counter()

    def apply(event: Event, uow: UnitOfWork) -> None:
        applied[event.event_id] += 1

    consumer = IdempotentConsumer("counter", app.uow, apply)
    event = ev.BatchStarted("b", None, 1)
    for _ in range(3):
        consumer(event)
    IdempotentConsumer("other", app.uow, apply)(event)
    assert applied == Counter({event.event_id: 2})  # once per consumer


def test_the_same_event_written_twice_is_stored_once(app: App) -> None:
    event = ev.BatchStarted("b-dup", None, 1)
    for _ in range(2):
        with app.uow() as uow:
            uow.record([event])
            uow.commit()
    with app.uow() as uow:
        assert [r.event.event_id for r in uow.outbox.pending()].count(event.event_id) == 1
        assert len(uow.audit.entries(batch_id="b-dup")) == 1


def test_a_batch_leaves_a_trail_with_its_results(app: App) -> None:
    service = BatchService(app)
    spec = BatchSpec.parse(
        {
            "workflow": "tests.batch.workflows:linear3",
            "batch_id": "audited",
            "variants": {"a": ["x", "y"]},
            "cases": [{"id": "c1", "input": {"q": "one"}}, {"id": "c2", "input": {"q": "two"}}],
            "evaluators": [{"type": "exact_match"}],
        }
    )
    prepared = service.prepare(spec)
    for g in prepared.groups:
        service.run_group(prepared.payload, g.case_id, list(g.leaf_keys))
    service.finish("audited")
    with app.uow() as uow:
        entries = uow.audit.entries(batch_id="audited", limit=10_000)
        info = uow.audit.entries(batch_id="audited", min_severity=Severity.INFO)
    types = Counter(e.event_type for e in entries)
    assert types["batch_started"] == 1
    assert types["batch_progressed"] == 4  # one per transaction of results (per leaf here)
    assert types["combination_completed"] == 2
    assert types["batch_completed"] == 1
    assert types["node_completed"] > 0  # the batch's executions carry its id
    assert "node_completed" not in {e.event_type for e in info}
    assert info[-1].event_type == "batch_completed"


def test_failures_are_error_entries(app: App) -> None:
    failed = app.controller.run(FLAKY, {"explode": True})
    with app.uow() as uow:
        errors = uow.audit.entries(failed.id, min_severity=Severity.ERROR)
    assert [(e.event_type, e.node) for e in errors] == [
        ("node_failed", errors[0].node),
        ("execution_failed", errors[0].node),
    ]
    assert errors[0].node is not None and "boom" in errors[0].message


def _ghost(make_app: Any, published: list[Event]) -> App:
    """A process that publishes its events to ``published`` and dies before marking them."""
    ghost = make_app()
    ghost.publisher = None
    ghost.controller._publish = published.extend
    return ghost


def test_an_event_relayed_from_the_store_is_the_event_its_process_published(
    app: App, make_app: Any
) -> None:
    OutboxRelay(app.uow, MessageBus()).run_once()  # PostgreSQL's database is shared: drain it
    published: list[Event] = []
    ex = _ghost(make_app, published).controller.run(
        LINEAR, {"x": 1}, labels={"batch_test_id": "relayed"}
    )
    got: list[Event] = []
    bus = MessageBus()
    bus.subscribe(Event, got.append)
    assert OutboxRelay(app.uow, bus).run_once(min_age_s=0) == 5
    # Same ids, times, durations and batch: idempotent consumers see each event once.
    assert got == published
    nodes = [e for e in got if isinstance(e, ev.NodeCompleted)]
    assert [e.node for e in nodes] == ["a", "b", "c"]
    assert {e.batch_id for e in got} == {"relayed"}
    with app.uow() as uow:
        heads = [cp.id for cp in uow.checkpoints.history(ex.id) if cp.node]
    assert sorted(e.checkpoint_id for e in nodes) == sorted(heads)


def test_a_process_taking_over_cannot_mark_what_a_dead_one_left_unpublished(
    app: App, make_app: Any
) -> None:
    OutboxRelay(app.uow, MessageBus()).run_once()
    dead: list[Event] = []
    ex = _ghost(make_app, dead).controller.run(LINEAR, {"x": 1}, break_before=["c"])
    left = {e.event_id for e in dead if isinstance(e, ev.NodeCompleted)}
    assert len(left) == 2  # a and b, never marked
    taker = make_app()
    taker.controller.resume(ex.id)  # runs c, publishes and marks its own events
    taker.flush()
    with app.uow() as uow:
        pending = {r.event.event_id for r in uow.outbox.pending(100_000)}
    assert left <= pending  # still there for the relay
    got: list[Event] = []
    bus = MessageBus()
    bus.subscribe(Event, got.append)
    OutboxRelay(app.uow, bus).run_once(min_age_s=0)
    assert left <= {e.event_id for e in got}
    assert outbox_types(app) == []


def test_a_taker_over_whose_clock_is_behind_leaves_its_node_events_relayable(
    app: App, make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    OutboxRelay(app.uow, MessageBus()).run_once()
    ex = app.controller.run(LINEAR, {"x": 1}, break_before=["c"])
    app.flush()  # a and b published and marked
    now = model.utcnow

    def an_hour_behind() -> datetime:
        return now() - timedelta(hours=1)

    for module in list(sys.modules.values()):  # this host's clock is an hour behind
        if (
            module
            and module.__name__.startswith("wtb_domain")
            and (getattr(module, "utcnow", None) is now)
        ):
            monkeypatch.setattr(module, "utcnow", an_hour_behind)
    dead: list[Event] = []
    _ghost(make_app, dead).controller.resume(ex.id)  # runs c and dies before marking it
    monkeypatch.undo()
    (c,) = [e for e in dead if isinstance(e, ev.NodeCompleted)]
    with app.uow() as uow:
        pending = {r.event.event_id for r in uow.outbox.pending(100_000)}
        history = uow.checkpoints.history(ex.id)
    assert c.event_id in pending  # not hidden behind the first runner's mark
    times = [cp.created_at for cp in history]
    assert times == sorted(times) and len(set(times)) == len(times)
