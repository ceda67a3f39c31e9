"""Row <-> model converters shared by the repositories and the batched writers: an
execution's and a checkpoint's row values, and the models read back from their rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from wtb_domain.model import Checkpoint, Execution, Source, Status


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything WTB stores is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def execution_values(e: Execution) -> dict[str, Any]:
    """An execution's row, keyed by column name."""
    return {
        "id": e.id,
        "workflow_name": e.workflow_name,
        "workflow_hash": e.workflow_hash,
        "workflow_ref": e.workflow_ref,
        "status": e.status.value,
        "variants": e.variants,
        "breakpoints": {"before": e.break_before, "after": e.break_after},
        "head_checkpoint_id": e.head_checkpoint_id,
        "paused_at": e.paused_at,
        "parent_execution_id": e.parent_execution_id,
        "forked_from_checkpoint_id": e.forked_from_checkpoint_id,
        "error_type": e.error_type,
        "error_message": e.error_message,
        "error_traceback": e.error_traceback,
        "metrics": e.metrics,
        "labels": e.labels,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
    }


def _execution_from(row: Any) -> Execution:
    bp = row.breakpoints or {}
    return Execution(
        id=row.id,
        workflow_name=row.workflow_name,
        workflow_hash=row.workflow_hash,
        workflow_ref=row.workflow_ref,
        status=Status(row.status),
        variants=dict(row.variants or {}),
        break_before=list(bp.get("before", [])),
        break_after=list(bp.get("after", [])),
        head_checkpoint_id=row.head_checkpoint_id,
        paused_at=row.paused_at,
        parent_execution_id=row.parent_execution_id,
        forked_from_checkpoint_id=row.forked_from_checkpoint_id,
        error_type=row.error_type,
        error_message=row.error_message,
        error_traceback=row.error_traceback,
        metrics=dict(row.metrics or {}),
        labels=dict(row.labels or {}),
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )


def checkpoint_values(cp: Checkpoint) -> dict[str, Any]:
    """A checkpoint's row (without its state), keyed by column name."""
    return {
        "id": cp.id,
        "execution_id": cp.execution_id,
        "parent_id": cp.parent_id,
        "step": cp.step,
        "node": cp.node,
        "variant": cp.variant,
        "source": cp.source.value,
        "manifest": cp.manifest,
        "metadata": cp.metadata,
        "created_at": cp.created_at,
    }


def _checkpoint_from(row: Any) -> Checkpoint:
    return Checkpoint(
        id=row.id,
        execution_id=row.execution_id,
        parent_id=row.parent_id,
        step=row.step,
        node=row.node,
        variant=row.variant,
        source=Source(row.source),
        manifest=dict(row.manifest),
        metadata=dict(row._mapping["metadata"]),
        created_at=aware(row.created_at),
    )
