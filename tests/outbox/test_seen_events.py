"""``SeenEvents``: an in-process handler sees each event id once, also when the publisher and
the relay hand it the same events from two threads at once."""

from __future__ import annotations

import threading
from collections import Counter

from wtb_domain import events as ev
from wtb_domain.outbox import SeenEvents


def test_an_event_handled_once_is_skipped_until_it_is_forgotten() -> None:
    got: Counter[str] = Counter()
    seen = SeenEvents(lambda e: got.update([e.event_id]), size=3)
    first, *rest = [ev.BatchStarted(f"b{i}", None, 1) for i in range(4)]
    seen(first)
    seen(first)
    assert got[first.event_id] == 1
    for e in rest:  # three newer ids push the first one out
        seen(e)
    seen(first)
    assert got[first.event_id] == 2 and set(got.values()) == {1, 2}


def test_two_threads_handing_the_same_events_handle_each_once() -> None:
    events = [ev.BatchStarted(f"b{i}", None, 1) for i in range(20_000)]
    got: Counter[str] = Counter()
    lock = threading.Lock()

    def count(e: ev.Event) -> None:
        with lock:
            got[e.event_id] += 1

    seen = SeenEvents(count)
    start = threading.Barrier(4)

    def hand() -> None:
        start.wait()
        for e in events:
            seen(e)

    threads = [threading.Thread(target=hand) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == len(events) and set(got.values()) == {1}
