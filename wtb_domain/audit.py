"""The audit trail: every domain event becomes one readable, redacted entry.

On SQL the entry is the event's outbox row (one row per event, migration 0010): written with
its severity, message and subject; its details come from the payload when read. A node's
``NodeCompleted`` has no row: its entry is read from the checkpoint it is stored as
(migration 0012, :mod:`wtb_domain.adapters.sql.node_events`).

Entries are not written by a bus subscriber: the unit of work writes them (with the outbox
rows) in the same transaction as the change the event describes -- see
:meth:`wtb_domain.ports.UnitOfWork.record` -- so the trail costs no transaction of its own and
a batch leaves one even when it crashes right after a write.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from wtb_domain import events as ev
from wtb_domain.events.codec import to_payload
from wtb_domain.model import AuditEntry, Severity
from wtb_domain.redaction import redact

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")
_SUBJECT = ("batch_id", "execution_id", "node")


@functools.cache
def snake(name: str) -> str:
    """``ExecutionRolledBack`` -> ``execution_rolled_back`` (a snake name stays as it is)."""
    return _SNAKE.sub("_", name).lower()


def entry_type(event: ev.Event) -> str:
    """``ExecutionRolledBack`` -> ``execution_rolled_back``."""
    return snake(type(event).__name__)


def _message(event: ev.Event) -> tuple[Severity, str]:
    S = Severity
    match event:
        case ev.ExecutionStarted(workflow_name=name):
            return S.INFO, f"started {name}"
        case ev.ExecutionPaused(paused_at=where):
            return S.INFO, f"paused at {where}"
        case ev.ExecutionResumed():
            return S.INFO, "resumed"
        case ev.ExecutionCompleted():
            return S.SUCCESS, "completed"
        case ev.ExecutionFailed(node=node, error_type=etype, message=msg):
            return S.ERROR, f"node {node} failed: {etype}: {msg}"
        case ev.ExecutionForked(parent_execution_id=parent, from_checkpoint_id=cp):
            return S.INFO, f"forked from {parent} at {cp}"
        case ev.ExecutionRolledBack(to_checkpoint_id=cp):
            return S.WARNING, f"rolled back to {cp}"
        case ev.StateUpdated(keys=keys):
            return S.WARNING, f"state edited: {', '.join(keys) or 'no keys'}"
        case ev.NodeReplayed(node=node, variant=variant, parent_execution_id=parent):
            return S.INFO, f"replaying {node} with {variant} (from {parent})"
        case ev.NodeCompleted(node=node, variant=variant, duration_ms=ms):
            return S.DEBUG, f"{node}[{variant}] ran in {ms:.1f} ms"
        case ev.NodeFailed(node=node, variant=variant, error_type=etype, message=msg):
            return S.ERROR, f"{node}[{variant}] failed: {etype}: {msg}"
        case ev.NodeTimedOut(node=node, variant=variant, timeout_s=t):
            return S.ERROR, f"{node}[{variant}] timed out after {t} s"
        case ev.BatchStarted(total=total, resumed=resumed):
            return S.INFO, f"{'resumed' if resumed else 'started'} batch of {total} results"
        case ev.BatchProgressed(case_id=case, recorded=n, failed=failed):
            return S.DEBUG, f"case {case}: {n} results recorded ({failed} failed)"
        case ev.BatchCompleted(status=status, done=done, total=total, failed=failed):
            level = S.SUCCESS if status == "completed" else S.WARNING
            if status == "failed":
                level = S.ERROR
            return level, f"{status}: {done} of {total} results ({failed} failed)"
        case ev.BatchCancelled(done=done, total=total):
            return S.WARNING, f"cancelled after {done} of {total} results"
        case ev.CombinationCompleted(combination=name, results=n, failed=failed):
            return (S.WARNING if failed else S.INFO), f"{name}: all {n} results ({failed} failed)"
        case ev.RegressionVerdict(status=status, baseline_id=base, regressed=worse):
            level = {"not_worse": S.SUCCESS, "regressed": S.ERROR}.get(status, S.WARNING)
            suffix = f": {', '.join(worse)}" if worse else ""
            return level, f"{status} against baseline {base}{suffix}"
    return S.INFO, entry_type(event)


def headline(event: ev.Event) -> tuple[Severity, str]:
    """The entry's severity and one-line message."""
    return _message(event)


# The event types whose severity does not depend on their fields (the rest: ``_message``).
# ``tests/test_audit_severity.py`` checks this table against ``_message`` for every type.
_FIXED_SEVERITY: dict[type[ev.Event], Severity] = {
    ev.ExecutionStarted: Severity.INFO,
    ev.ExecutionPaused: Severity.INFO,
    ev.ExecutionResumed: Severity.INFO,
    ev.ExecutionCompleted: Severity.SUCCESS,
    ev.ExecutionFailed: Severity.ERROR,
    ev.ExecutionForked: Severity.INFO,
    ev.ExecutionRolledBack: Severity.WARNING,
    ev.StateUpdated: Severity.WARNING,
    ev.NodeReplayed: Severity.INFO,
    ev.NodeCompleted: Severity.DEBUG,
    ev.NodeFailed: Severity.ERROR,
    ev.NodeTimedOut: Severity.ERROR,
    ev.BatchStarted: Severity.INFO,
    ev.BatchProgressed: Severity.DEBUG,
    ev.BatchCancelled: Severity.WARNING,
}


def severity_of(event: ev.Event) -> Severity:
    """The entry's severity (what the store keeps with the event, for ``--severity``
    filters); its message is formatted when the entry is read (:func:`headline`)."""
    fixed = _FIXED_SEVERITY.get(type(event))
    return fixed if fixed is not None else _message(event)[0]


def details_of(payload: Mapping[str, Any]) -> dict[str, Any]:
    """An entry's details from its event's payload: the fields but the subject and the empty
    ones, secret-looking values redacted. Computed when entries are read (the stored row
    keeps the payload the relay publishes), so a node's write neither walks nor encodes it
    twice."""
    details: dict[str, Any] = redact(
        {k: v for k, v in payload.items() if k not in _SUBJECT and v not in (None, [], {})}
    )
    return details


def describe(event: ev.Event) -> AuditEntry:
    """The audit entry of a domain event; secret-looking values in its details are redacted."""
    severity, message = _message(event)
    batch_id, execution_id, node = ev.subject(event)
    return AuditEntry(
        event_type=entry_type(event),
        message=message,
        execution_id=execution_id,
        severity=severity,
        details=details_of(to_payload(event)),
        created_at=event.occurred_at,
        batch_id=batch_id,
        node=node,
        event_id=event.event_id,
    )
