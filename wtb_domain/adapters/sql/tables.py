"""The tables, as SQLAlchemy Core ``Table`` objects (no ORM: the stores run Core statements on
a Connection, and a command that only reads the store need not import ``sqlalchemy.orm``).

The schema itself is created only by the Alembic migrations in ``migrations/``;
``tests/test_migrations.py`` checks that these definitions match what they create.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

JsonType = JSON().with_variant(JSONB(), "postgresql")
METADATA = MetaData()


EXECUTIONS = Table(
    "wtb_executions",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("workflow_name", String(255), nullable=False),
    Column("workflow_hash", String(64), nullable=False),
    Column("workflow_ref", String(512)),
    Column("status", String(16), index=True, nullable=False),
    Column("variants", JsonType, nullable=False),
    Column("breakpoints", JsonType, nullable=False),
    Column("head_checkpoint_id", String(64)),
    Column("paused_at", String(300)),
    Column("parent_execution_id", String(64), index=True),
    Column("forked_from_checkpoint_id", String(64)),
    Column("error_type", String(255)),
    Column("error_message", Text),
    Column("error_traceback", Text),
    Column("metrics", JsonType, nullable=False),
    Column("labels", JsonType, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The runner advancing the execution and when its lease ends (migration 0005).
    Column("claimed_by", String(128)),
    Column("claim_expires_at", DateTime(timezone=True)),
)

CHECKPOINTS = Table(
    "wtb_checkpoints",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column(
        "execution_id",
        String(64),
        ForeignKey("wtb_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("parent_id", String(64)),
    Column("step", Integer, nullable=False),
    Column("node", String(255)),
    Column("variant", String(255)),
    Column("source", String(16), nullable=False),
    Column("manifest", JsonType, nullable=False),
    Column("metadata", JsonType, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_wtb_checkpoints_execution_id_id", "execution_id", "id"),
)

# A state value, stored once per distinct content (content-addressed by its hash).
BLOBS = Table(
    "wtb_state_blobs",
    METADATA,
    Column("hash", String(64), primary_key=True),
    Column("data", Text, nullable=False),
    Column("size", Integer, nullable=False),
)

# One row per domain event, written in the transaction of its change: the outbox entry
# the relay publishes (``payload``, ``published_at``) and the audit trail's entry (subject,
# ``severity``; an event's message and details are derived from ``payload`` when read, see
# :func:`wtb_domain.audit.headline` and ``details_of``; ``message`` holds the text of entries
# without an event, and of event rows written before it was derived). Migration 0010 merged
# ``wtb_audit_log`` into it.
OUTBOX = Table(
    "wtb_outbox",
    METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("event_id", String(64), unique=True, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", JsonType, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True)),
    Column("execution_id", String(64)),
    Column("batch_id", String(64)),
    Column("node", String(255)),
    Column("severity", String(16)),
    Column("message", Text),
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

# How far each execution's node events are published: every node checkpoint created at or
# before ``published_through`` has had its ``NodeCompleted`` published (node events are
# stored as their checkpoints, see ``adapters.sql.node_events``; migration 0012).
NODE_EVENT_MARKS = Table(
    "wtb_node_event_marks",
    METADATA,
    Column(
        "execution_id",
        String(64),
        ForeignKey("wtb_executions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("published_through", DateTime(timezone=True), nullable=False),
)

# Events a consumer has applied (idempotent at-least-once consumers).
PROCESSED = Table(
    "wtb_processed_events",
    METADATA,
    Column("consumer", String(128), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)

BATCHES = Table(
    "wtb_batch_tests",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("name", String(255)),
    Column("workflow_ref", String(512), nullable=False),
    Column("spec", JsonType, nullable=False),
    Column("status", String(32), nullable=False),
    Column("total", Integer, nullable=False),
    Column("cancel_requested", Boolean, default=False, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# A blessing: the history of pinned baselines; a name's newest row is its baseline.
BASELINES = Table(
    "wtb_baselines",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column(
        "batch_test_id",
        String(64),
        ForeignKey("wtb_batch_tests.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("note", Text),
    Column("blessed_at", DateTime(timezone=True), nullable=False),
    Column("blessed_by", String(255)),
    Index("ix_wtb_baselines_name_blessed", "name", "blessed_at"),
)


def pg_only(index: Index) -> Index:
    """An index created on PostgreSQL only (named ``pgx_*`` so comparisons can skip it)."""
    name = str(index.name or "")
    if not name.startswith("pgx_"):
        raise ValueError(
            f"PostgreSQL-only index {name!r} must be named pgx_* (schema checks skip those)"
        )
    return index.ddl_if(dialect="postgresql")


RESULTS = Table(
    "wtb_batch_test_results",
    METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column(
        "batch_test_id",
        String(64),
        ForeignKey("wtb_batch_tests.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("execution_id", String(64), nullable=False),
    Column("combination_name", String(512), nullable=False),
    Column("variant_config", JsonType, nullable=False),
    Column("case_id", String(255), nullable=False),
    Column("repeat", Integer, nullable=False),
    Column("success", Boolean, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("metrics", JsonType, nullable=False),
    Column("overall_score", Float, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("worker_id", String(255)),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint(
        "batch_test_id", "combination_name", "case_id", "repeat", name="uq_wtb_results_leaf"
    ),
    Index("ix_wtb_results_batch", "batch_test_id"),
    pg_only(Index("pgx_wtb_results_created_brin", "created_at", postgresql_using="brin")),
    pg_only(Index("pgx_wtb_results_variant_gin", "variant_config", postgresql_using="gin")),
    pg_only(Index("pgx_wtb_results_metrics_gin", "metrics", postgresql_using="gin")),
)

Index(
    "ix_wtb_results_batch_score",
    RESULTS.c.batch_test_id,
    RESULTS.c.overall_score.desc(),
)
# The matrix's duration percentiles: one index-only scan per (combination, percentile).
Index(
    "ix_wtb_results_batch_duration",
    RESULTS.c.batch_test_id,
    RESULTS.c.combination_name,
    RESULTS.c.duration_ms,
)


# Running totals of one (batch, combination, case)'s results, kept by the result inserts.
#
# The score (0 for a failed run or a non-finite score) is kept as count, mean and sum of
# squared deviations (Welford), which merge exactly enough across cases and workers.
ROLLUPS = Table(
    "wtb_result_rollups",
    METADATA,
    Column(
        "batch_test_id",
        String(64),
        ForeignKey("wtb_batch_tests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("combination_name", String(512), primary_key=True),
    Column("case_id", String(255), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("n_failed", Integer, nullable=False),
    Column("n_passed", Integer, nullable=False),
    Column("score_mean", Float, nullable=False),
    Column("score_m2", Float, nullable=False),
)

# Sum and count of one numeric metric over one (batch, combination, case)'s results.
METRIC_ROLLUPS = Table(
    "wtb_metric_rollups",
    METADATA,
    Column(
        "batch_test_id",
        String(64),
        ForeignKey("wtb_batch_tests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("combination_name", String(512), primary_key=True),
    Column("case_id", String(255), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("total", Float, nullable=False),
    Column("count", Integer, nullable=False),
)

# The cases of a batch, stored once when it is registered; tasks read theirs by id.
CASES = Table(
    "wtb_batch_cases",
    METADATA,
    Column(
        "batch_test_id",
        String(64),
        ForeignKey("wtb_batch_tests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("case_id", String(255), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("input", JsonType, nullable=False),
    Column("expected", JsonType, nullable=True),
    Index("ix_wtb_batch_cases_position", "batch_test_id", "position"),
)

# A recorded LLM/tool call of a node run, keyed by the checkpoint it wrote (0008).
CALL_RECORDS = Table(
    "wtb_call_records",
    METADATA,
    Column("checkpoint_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("execution_id", String(64), nullable=False),
    Column("batch_id", String(64), nullable=True),
    Column("node", String(255), nullable=False),
    Column("variant", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("request_key", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("response_hash", String(64), nullable=False),
    Column("repeat", Integer, nullable=True),
    Column("occurrence", Integer, nullable=False),
    Column("live", Boolean, nullable=False),
    Column("tokens_in", Integer, nullable=False),
    Column("tokens_out", Integer, nullable=False),
    Column("cost_usd", Float, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_wtb_call_records_request_key", "request_key", "created_at"),
    Index("ix_wtb_call_records_batch_id", "batch_id"),
)

# A request or response body of recorded calls, stored once per content (0008).
CALL_BODIES = Table(
    "wtb_call_bodies",
    METADATA,
    Column("hash", String(64), primary_key=True),
    Column("data", Text, nullable=False),
)

# A node result cache entry: the hashes of the values the node wrote (0008).
NODE_CACHE = Table(
    "wtb_node_cache",
    METADATA,
    Column("key", String(64), primary_key=True),
    Column("node", String(255), nullable=False),
    Column("variant", String(255), nullable=False),
    Column("writes", JsonType, nullable=False),
    Column("checkpoint_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A LangGraph checkpoint (thread, namespace, id) and the WTB checkpoint holding its values
# (migration 0009; see :mod:`wtb_domain.langgraph.saver`).
LG_CHECKPOINTS = Table(
    "wtb_lg_checkpoints",
    METADATA,
    Column("thread_id", String(255), primary_key=True),
    Column("checkpoint_ns", String(255), primary_key=True),
    Column("checkpoint_id", String(64), primary_key=True),
    Column(
        "execution_id",
        String(64),
        ForeignKey("wtb_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "wtb_checkpoint_id",
        String(64),
        ForeignKey("wtb_checkpoints.id", ondelete="CASCADE"),
        unique=True,
        nullable=False,
    ),
    Column("parent_checkpoint_id", String(64)),
    Column("checkpoint", JsonType, nullable=False),
    Column("metadata", JsonType, nullable=False),
)

# A pending write of a LangGraph task against a checkpoint (serde-typed bytes).
LG_WRITES = Table(
    "wtb_lg_writes",
    METADATA,
    Column("thread_id", String(255), primary_key=True),
    Column("checkpoint_ns", String(255), primary_key=True),
    Column("checkpoint_id", String(64), primary_key=True),
    Column("task_id", String(255), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("channel", String(255), nullable=False),
    Column("type", String(32), nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("task_path", String(1024), nullable=False),
)
