"""The message bus (thread-safe, reentrant, bounded history), event JSON and audit mapping."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wtb_domain import events as ev
from wtb_domain.audit import describe, entry_type, headline, severity_of
from wtb_domain.events import EVENT_TYPES, Event, MessageBus, from_payload, to_payload
from wtb_domain.model import Severity

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

SAMPLES: list[Event] = [
    ev.ExecutionStarted("e1", "wf", {"a": "x"}),
    ev.ExecutionPaused("e1", "before:b", "cp1"),
    ev.ExecutionResumed("e1", "cp1"),
    ev.ExecutionCompleted("e1", "cp2", {"latency_ms": 3.0}),
    ev.ExecutionFailed("e1", "b", "ValueError", "boom"),
    ev.ExecutionForked("e2", "e1", "cp1", ["x"], {"a": "y"}),
    ev.ExecutionRolledBack("e1", "cp1"),
    ev.StateUpdated("e1", "cp3", ["x"]),
    ev.NodeReplayed("e3", "e1", "cp1", "a", "y"),
    ev.NodeCompleted("e1", "a", "x", "cp1", 1.5, batch_id="b1"),
    ev.NodeFailed("e1", "b", "x", "ValueError", "boom", 2.0),
    ev.NodeTimedOut("e1", "b", "x", 0.5),
    ev.BatchStarted("b1", "nightly", 12),
    ev.BatchProgressed("b1", "case-1", 3, 1),
    ev.BatchCompleted("b1", "completed", 12, 12, 0),
    ev.BatchCancelled("b1", 12, 5),
    ev.CombinationCompleted("b1", "a=x", 4, 0, 0.75),
    ev.RegressionVerdict("b2", "b1", "regressed", ["a=x:score"], "1 regression"),
]


def test_samples_cover_every_event_type() -> None:
    assert {type(e).__name__ for e in SAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_json(event: Event) -> None:
    payload = json.loads(json.dumps(to_payload(event)))
    back = from_payload(type(event).__name__, payload, event.event_id, event.occurred_at)
    assert back == event


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_maps_to_an_audit_entry_with_its_subject(event: Event) -> None:
    entry = describe(event)
    assert entry.event_type == entry_type(event) != ""
    assert entry.event_id == event.event_id
    assert entry.created_at == event.occurred_at
    assert entry.execution_id == getattr(event, "execution_id", None)
    assert entry.batch_id == getattr(event, "batch_id", None)
    assert entry.node == getattr(event, "node", None)
    assert entry.message
    json.dumps(entry.details)


def test_severities_follow_what_happened() -> None:
    levels = {type(e).__name__: describe(e).severity for e in SAMPLES}
    assert levels["NodeCompleted"] is Severity.DEBUG
    assert levels["ExecutionStarted"] is Severity.INFO
    assert levels["ExecutionCompleted"] is Severity.SUCCESS
    assert levels["ExecutionRolledBack"] is Severity.WARNING
    assert levels["NodeTimedOut"] is Severity.ERROR
    assert levels["RegressionVerdict"] is Severity.ERROR
    assert describe(ev.RegressionVerdict("b2", "b1", "not_worse")).severity is Severity.SUCCESS
    assert Severity.WARNING.and_above() == [Severity.WARNING, Severity.ERROR]


def test_audit_details_redact_secret_looking_values() -> None:
    event = ev.ExecutionStarted("e1", "wf", {"retrieve": "keyword"})
    forked = ev.ExecutionForked("e2", "e1", "cp", [], {"api_key": "sk-123"})
    assert describe(event).details == {"workflow_name": "wf", "variants": {"retrieve": "keyword"}}
    assert describe(forked).details["variant_overrides"] == {"api_key": "***"}
    assert "sk-123" not in json.dumps(describe(forked).details)


# --- the bus ------------------------------------------------------------------------------------


def test_handlers_get_their_type_and_subclasses_and_a_broken_one_hides_nothing() -> None:
    bus = MessageBus()
    got: dict[str, list[str]] = {"all": [], "exec": [], "node": []}
    bus.subscribe(Event, lambda e: got["all"].append(type(e).__name__))
    bus.subscribe(ev.ExecutionEvent, lambda e: got["exec"].append(type(e).__name__))
    bus.subscribe(ev.NodeCompleted, lambda e: 1 / 0)
    bus.subscribe(ev.NodeCompleted, lambda e: got["node"].append(e.node))
    bus.publish([SAMPLES[0], SAMPLES[9], SAMPLES[12]])
    assert got == {
        "all": ["ExecutionStarted", "NodeCompleted", "BatchStarted"],
        "exec": ["ExecutionStarted", "NodeCompleted"],
        "node": ["a"],
    }


def test_a_handler_may_publish_and_its_events_follow_the_current_one_in_order() -> None:
    bus = MessageBus()
    seen: list[str] = []

    def cascade(e: Any) -> None:
        seen.append(f"first:{type(e).__name__}")
        if isinstance(e, ev.BatchCompleted):
            bus.publish([ev.RegressionVerdict(e.batch_id, None, "incomparable")])

    bus.subscribe(Event, cascade)
    bus.subscribe(Event, lambda e: seen.append(f"second:{type(e).__name__}"))
    bus.publish([ev.BatchCompleted("b", "completed", 1, 1, 0), ev.BatchCancelled("b", 1, 0)])
    assert seen == [
        "first:BatchCompleted",
        "second:BatchCompleted",
        "first:BatchCancelled",
        "second:BatchCancelled",
        "first:RegressionVerdict",
        "second:RegressionVerdict",
    ]
    assert [type(e).__name__ for e in bus.history()] == [
        "BatchCompleted",
        "BatchCancelled",
        "RegressionVerdict",
    ]


def test_history_is_bounded_and_filters_by_type_time_and_limit() -> None:
    bus = MessageBus(history_size=5)
    events = [
        ev.NodeCompleted("e", f"n{i}", "x", f"cp{i}", 1.0, occurred_at=T0 + timedelta(seconds=i))
        for i in range(6)
    ]
    events.insert(3, ev.ExecutionPaused("e", "step:n2", "cp2", occurred_at=T0))
    bus.publish(events)
    kept = bus.history()
    assert len(kept) == 5 and kept[-1] is events[-1]
    nodes = bus.history(ev.NodeCompleted)
    assert [e.node for e in nodes] == ["n2", "n3", "n4", "n5"]  # type: ignore[attr-defined]
    assert bus.history(ev.ExecutionPaused) == [events[3]]
    since = bus.history(ev.NodeCompleted, since=T0 + timedelta(seconds=4))
    assert [e.node for e in since] == ["n4", "n5"]  # type: ignore[attr-defined]
    until = bus.history(since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=5))
    assert [e.node for e in until] == ["n3", "n4"]  # type: ignore[attr-defined]
    assert bus.history(limit=2) == events[-2:]
    assert bus.history(limit=0) == []
    assert bus.history((ev.ExecutionPaused, ev.BatchEvent)) == [events[3]]


def test_many_threads_publish_and_subscribe_at_once_and_nothing_is_lost() -> None:
    bus = MessageBus(history_size=100_000)
    counted: list[str] = []
    lock = threading.Lock()

    def count(e: Event) -> None:
        with lock:
            counted.append(e.event_id)

    bus.subscribe(Event, count)
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        for j in range(500):
            bus.publish([ev.NodeCompleted(f"e{i}", "n", "x", f"cp{j}", 0.1)])
            if j == 250:
                bus.subscribe(ev.BatchEvent, count)  # subscribing while others publish

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(counted) == len(set(counted)) == 4000
    assert len(bus.history(ev.NodeCompleted)) == 4000


def test_events_are_frozen_and_carry_unique_ids() -> None:
    a, b = ev.ExecutionResumed("e", None), ev.ExecutionResumed("e", None)
    assert a.event_id != b.event_id and a.occurred_at.tzinfo is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.execution_id = "x"  # type: ignore[misc]


@settings(max_examples=25, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("cls", sorted(EVENT_TYPES.values(), key=lambda c: c.__name__))
def test_the_stored_severity_is_the_entry_s_severity(cls: type[Event], data: st.DataObject) -> None:
    # The write keeps only the severity (severity_of, a table for most types); the message
    # is formatted when read (headline). Both must agree, whatever the event's fields hold.
    fields = {
        f.name: data.draw(st.from_type(f.type if not isinstance(f.type, str) else _hint(cls, f)))
        for f in dataclasses.fields(cls)
        if f.name not in ("event_id", "occurred_at")
    }
    if "status" in fields:  # the statuses that change a severity
        fields["status"] = data.draw(
            st.sampled_from(["completed", "failed", "cancelled", "not_worse", "regressed", "x"])
        )
    event = cls(**fields)
    assert severity_of(event) is headline(event)[0] is describe(event).severity


def _hint(cls: type[Event], f: dataclasses.Field[Any]) -> Any:
    import typing

    return typing.get_type_hints(cls)[f.name]
