"""ORM models. The schema itself is created only by the Alembic migrations in ``migrations/``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JsonType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class ExecutionRow(Base):
    __tablename__ = "wtb_executions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow_name: Mapped[str] = mapped_column(String(255))
    workflow_hash: Mapped[str] = mapped_column(String(64))
    workflow_ref: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), index=True)
    variants: Mapped[dict[str, Any]] = mapped_column(JsonType)
    breakpoints: Mapped[dict[str, Any]] = mapped_column(JsonType)
    head_checkpoint_id: Mapped[str | None] = mapped_column(String(64))
    paused_at: Mapped[str | None] = mapped_column(String(300))
    parent_execution_id: Mapped[str | None] = mapped_column(String(64), index=True)
    forked_from_checkpoint_id: Mapped[str | None] = mapped_column(String(64))
    error_type: Mapped[str | None] = mapped_column(String(255))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_traceback: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonType)
    labels: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The runner advancing the execution and when its lease ends (migration 0005).
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claim_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CheckpointRow(Base):
    __tablename__ = "wtb_checkpoints"
    __table_args__ = (Index("ix_wtb_checkpoints_execution_id_id", "execution_id", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("wtb_executions.id", ondelete="CASCADE")
    )
    parent_id: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    node: Mapped[str | None] = mapped_column(String(255))
    variant: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16))
    manifest: Mapped[dict[str, Any]] = mapped_column(JsonType)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BlobRow(Base):
    """A state value, stored once per distinct content (content-addressed by its hash)."""

    __tablename__ = "wtb_state_blobs"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)


class OutboxRow(Base):
    """One row per domain event, written in the transaction of its change: the outbox entry
    the relay publishes (``payload``, ``published_at``) and the audit trail's entry (subject,
    ``severity``, ``message``; the entry's details are derived from ``payload`` when read, see
    :func:`wtb_domain.audit.details_of`). Migration 0010 merged ``wtb_audit_log`` into it."""

    __tablename__ = "wtb_outbox"
    __table_args__ = (
        # Partial: only the few unpublished rows, not the whole (ever-growing) event log.
        Index(
            "ix_wtb_outbox_unpublished",
            "id",
            sqlite_where=text("published_at IS NULL"),
            postgresql_where=text("published_at IS NULL"),
        ),
        # Partial too: an event without an execution (a batch's) or without a batch (a run
        # outside batches) adds no entry -- one index page less to write at its commit.
        Index(
            "ix_wtb_outbox_execution_id",
            "execution_id",
            sqlite_where=text("execution_id IS NOT NULL"),
            postgresql_where=text("execution_id IS NOT NULL"),
        ),
        Index(
            "ix_wtb_outbox_batch_id",
            "batch_id",
            sqlite_where=text("batch_id IS NOT NULL"),
            postgresql_where=text("batch_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    execution_id: Mapped[str | None] = mapped_column(String(64))
    batch_id: Mapped[str | None] = mapped_column(String(64))
    node: Mapped[str | None] = mapped_column(String(255))
    severity: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)


class ProcessedEventRow(Base):
    """Events a consumer has applied (idempotent at-least-once consumers)."""

    __tablename__ = "wtb_processed_events"

    consumer: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BatchTestRow(Base):
    __tablename__ = "wtb_batch_tests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    workflow_ref: Mapped[str] = mapped_column(String(512))
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(32))
    total: Mapped[int] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BaselineRow(Base):
    """A blessing: the history of pinned baselines; a name's newest row is its baseline."""

    __tablename__ = "wtb_baselines"
    __table_args__ = (Index("ix_wtb_baselines_name_blessed", "name", "blessed_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    batch_test_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("wtb_batch_tests.id", ondelete="CASCADE")
    )
    note: Mapped[str | None] = mapped_column(Text)
    blessed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    blessed_by: Mapped[str | None] = mapped_column(String(255))


def pg_only(index: Index) -> Index:
    """An index created on PostgreSQL only (named ``pgx_*`` so comparisons can skip it)."""
    name = str(index.name or "")
    if not name.startswith("pgx_"):
        raise ValueError(
            f"PostgreSQL-only index {name!r} must be named pgx_* (schema checks skip those)"
        )
    return index.ddl_if(dialect="postgresql")


class BatchResultRow(Base):
    __tablename__ = "wtb_batch_test_results"
    __table_args__ = (
        UniqueConstraint(
            "batch_test_id", "combination_name", "case_id", "repeat", name="uq_wtb_results_leaf"
        ),
        Index("ix_wtb_results_batch", "batch_test_id"),
        pg_only(Index("pgx_wtb_results_created_brin", "created_at", postgresql_using="brin")),
        pg_only(Index("pgx_wtb_results_variant_gin", "variant_config", postgresql_using="gin")),
        pg_only(Index("pgx_wtb_results_metrics_gin", "metrics", postgresql_using="gin")),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    batch_test_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("wtb_batch_tests.id", ondelete="CASCADE")
    )
    execution_id: Mapped[str] = mapped_column(String(64))
    combination_name: Mapped[str] = mapped_column(String(512))
    variant_config: Mapped[dict[str, Any]] = mapped_column(JsonType)
    case_id: Mapped[str] = mapped_column(String(255))
    repeat: Mapped[int] = mapped_column(Integer)
    success: Mapped[bool] = mapped_column(Boolean)
    passed: Mapped[bool] = mapped_column(Boolean)
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonType)
    overall_score: Mapped[float] = mapped_column(Float)
    duration_ms: Mapped[float] = mapped_column(Float)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


Index(
    "ix_wtb_results_batch_score",
    BatchResultRow.batch_test_id,
    BatchResultRow.overall_score.desc(),
)
# The matrix's duration percentiles: one index-only scan per (combination, percentile).
Index(
    "ix_wtb_results_batch_duration",
    BatchResultRow.batch_test_id,
    BatchResultRow.combination_name,
    BatchResultRow.duration_ms,
)


class ResultRollupRow(Base):
    """Running totals of one (batch, combination, case)'s results, kept by the result inserts.

    The score (0 for a failed run or a non-finite score) is kept as count, mean and sum of
    squared deviations (Welford), which merge exactly enough across cases and workers.
    """

    __tablename__ = "wtb_result_rollups"

    batch_test_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("wtb_batch_tests.id", ondelete="CASCADE"), primary_key=True
    )
    combination_name: Mapped[str] = mapped_column(String(512), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    n_failed: Mapped[int] = mapped_column(Integer)
    n_passed: Mapped[int] = mapped_column(Integer)
    score_mean: Mapped[float] = mapped_column(Float)
    score_m2: Mapped[float] = mapped_column(Float)


class MetricRollupRow(Base):
    """Sum and count of one numeric metric over one (batch, combination, case)'s results."""

    __tablename__ = "wtb_metric_rollups"

    batch_test_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("wtb_batch_tests.id", ondelete="CASCADE"), primary_key=True
    )
    combination_name: Mapped[str] = mapped_column(String(512), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    total: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)


class BatchCaseRow(Base):
    """The cases of a batch, stored once when it is registered; tasks read theirs by id."""

    __tablename__ = "wtb_batch_cases"
    __table_args__ = (Index("ix_wtb_batch_cases_position", "batch_test_id", "position"),)

    batch_test_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("wtb_batch_tests.id", ondelete="CASCADE"), primary_key=True
    )
    case_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    input: Mapped[dict[str, Any]] = mapped_column(JsonType)
    expected: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)


class CallRecordRow(Base):
    """A recorded LLM/tool call of a node run, keyed by the checkpoint it wrote (0008)."""

    __tablename__ = "wtb_call_records"
    __table_args__ = (
        Index("ix_wtb_call_records_request_key", "request_key", "created_at"),
        Index("ix_wtb_call_records_batch_id", "batch_id"),
    )

    checkpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    execution_id: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    node: Mapped[str] = mapped_column(String(255))
    variant: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    request_key: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_hash: Mapped[str] = mapped_column(String(64))
    repeat: Mapped[int | None] = mapped_column(Integer, nullable=True)
    occurrence: Mapped[int] = mapped_column(Integer)
    live: Mapped[bool] = mapped_column(Boolean)
    tokens_in: Mapped[int] = mapped_column(Integer)
    tokens_out: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CallBodyRow(Base):
    """A request or response body of recorded calls, stored once per content (0008)."""

    __tablename__ = "wtb_call_bodies"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[str] = mapped_column(Text)


class NodeCacheRow(Base):
    """A node result cache entry: the hashes of the values the node wrote (0008)."""

    __tablename__ = "wtb_node_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    node: Mapped[str] = mapped_column(String(255))
    variant: Mapped[str] = mapped_column(String(255))
    writes: Mapped[dict[str, Any]] = mapped_column(JsonType)
    checkpoint_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LangGraphCheckpointRow(Base):
    """A LangGraph checkpoint (thread, namespace, id) and the WTB checkpoint holding its values
    (migration 0009; see :mod:`wtb_domain.langgraph.saver`)."""

    __tablename__ = "wtb_lg_checkpoints"

    thread_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    checkpoint_ns: Mapped[str] = mapped_column(String(255), primary_key=True)
    checkpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    execution_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("wtb_executions.id", ondelete="CASCADE")
    )
    wtb_checkpoint_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("wtb_checkpoints.id", ondelete="CASCADE"), unique=True
    )
    parent_checkpoint_id: Mapped[str | None] = mapped_column(String(64))
    checkpoint: Mapped[dict[str, Any]] = mapped_column(JsonType)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JsonType)


class LangGraphWriteRow(Base):
    """A pending write of a LangGraph task against a checkpoint (serde-typed bytes)."""

    __tablename__ = "wtb_lg_writes"

    thread_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    checkpoint_ns: Mapped[str] = mapped_column(String(255), primary_key=True)
    checkpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    task_path: Mapped[str] = mapped_column(String(1024))
