"""The audit trail: execution-level events persisted as readable entries.

Node completions are not audited one by one: the checkpoint chain already records them.
"""

from __future__ import annotations

from wtb_domain import events as ev
from wtb_domain.model import AuditEntry
from wtb_domain.ports import UnitOfWorkFactory


def describe(event: ev.Event) -> AuditEntry | None:
    """Map a domain event to an audit entry (None for events the trail skips)."""
    eid = event.execution_id
    match event:
        case ev.ExecutionStarted(workflow_name=name, variants=variants):
            return AuditEntry(
                "execution_started", f"started {name}", eid, data={"variants": variants}
            )
        case ev.ExecutionPaused(paused_at=where, checkpoint_id=cp):
            return AuditEntry(
                "execution_paused", f"paused at {where}", eid, data={"checkpoint": cp}
            )
        case ev.ExecutionResumed(checkpoint_id=cp):
            return AuditEntry("execution_resumed", "resumed", eid, data={"checkpoint": cp})
        case ev.ExecutionCompleted(checkpoint_id=cp, metrics=metrics):
            return AuditEntry(
                "execution_completed",
                "completed",
                eid,
                "success",
                {"checkpoint": cp, "metrics": metrics},
            )
        case ev.ExecutionFailed(node=node, error_type=etype, message=msg):
            return AuditEntry(
                "execution_failed",
                f"node {node} failed: {etype}: {msg}",
                eid,
                "error",
                {"node": node, "error_type": etype},
            )
        case ev.ExecutionForked(parent_execution_id=parent, from_checkpoint_id=cp):
            return AuditEntry(
                "execution_forked",
                f"forked from {parent} at {cp}",
                eid,
                data={
                    "parent": parent,
                    "checkpoint": cp,
                    "patched": event.state_patch_keys,
                    "variants": event.variant_overrides,
                },
            )
        case ev.ExecutionRolledBack(to_checkpoint_id=cp):
            return AuditEntry(
                "execution_rolled_back", f"rolled back to {cp}", eid, "warning", {"checkpoint": cp}
            )
    return None


class AuditTrail:
    """Bus subscriber that writes audit entries in their own unit of work."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow = uow_factory

    def __call__(self, event: ev.Event) -> None:
        entry = describe(event)
        if entry is None:
            return
        with self._uow() as uow:
            uow.audit.add(entry)
            uow.commit()
