"""A process of the outbox crash test: runs a workflow and is killed mid-publish, or relays.

``python -m tests.outbox.child URL MODE CONSUMER``; MODE is ``die-before-apply`` (killed
between the commit of the last write and the consumer seeing its event), ``die-after-apply``
(killed after the consumer applied it, before the event was marked published) or ``relay``
(a new process: publishes what the outbox still holds).
"""

from __future__ import annotations

import sys
import time

from sqlalchemy import text

from wtb_domain import sql_app
from wtb_domain.events import Event, ExecutionCompleted
from wtb_domain.outbox import IdempotentConsumer
from wtb_domain.ports import UnitOfWork

APPLIED = "outbox_test_applied"


def main(url: str, mode: str, consumer_name: str) -> None:
    app = sql_app(url)

    def apply(event: Event, uow: UnitOfWork) -> None:
        # The consumer's effect, in the transaction that records the event as processed.
        uow.connection.execute(  # type: ignore[attr-defined]
            text(f"INSERT INTO {APPLIED} (consumer, event_id) VALUES (:c, :e)"),
            {"c": consumer_name, "e": event.event_id},
        )

    consumer = IdempotentConsumer(consumer_name, app.uow, apply)

    def die(event: Event) -> None:
        if isinstance(event, ExecutionCompleted):
            print(f"COMMITTED {event.execution_id}", flush=True)
            time.sleep(600)  # the parent SIGKILLs this process now

    if mode == "relay":
        app.bus.subscribe(Event, consumer)
        print(f"RELAYED {app.relay.run_once()}", flush=True)
        return
    if mode == "die-before-apply":
        app.bus.subscribe(Event, die)
        app.bus.subscribe(Event, consumer)
    else:
        app.bus.subscribe(Event, consumer)
        app.bus.subscribe(Event, die)
    app.controller.run("tests.contract.workflows:linear", {"x": 1})
    print("NOT KILLED", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
