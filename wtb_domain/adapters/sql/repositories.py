"""SQLAlchemy repositories: Core statements on the ORM tables, on the unit of work's connection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from wtb_domain.adapters.sql import rollups
from wtb_domain.adapters.sql.tables import BATCHES, BLOBS, CHECKPOINTS, EXECUTIONS, RESULTS, ROLLUPS
from wtb_domain.claims import Claim
from wtb_domain.comparison import CombinationTotals, ComparisonMatrix
from wtb_domain.deltas import load_values
from wtb_domain.errors import ExecutionExists, NotFoundError
from wtb_domain.model import (
    BatchProgress,
    BatchResult,
    BatchStatus,
    BatchTest,
    Checkpoint,
    Execution,
    Source,
    Status,
    utcnow,
)

IN_CHUNK = 500


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


MUTABLE = (
    "status",
    "head_checkpoint_id",
    "paused_at",
    "error_type",
    "error_message",
    "error_traceback",
    "metrics",
    "updated_at",
)
UPDATE_EXECUTION = (
    update(EXECUTIONS)
    .where(EXECUTIONS.c.id == bindparam("execution_id"))
    .values({name: bindparam(name) for name in MUTABLE})
)


def execution_update_params(execution: Execution) -> dict[str, Any]:
    """The parameters of :data:`UPDATE_EXECUTION`: the MUTABLE values and ``execution_id``."""
    values = execution_values(execution)
    params = {name: values[name] for name in MUTABLE}
    params["execution_id"] = execution.id
    return params


INSERT_EXECUTION_SQLITE = insert(EXECUTIONS).prefix_with("OR IGNORE", dialect="sqlite")


class SqlExecutions:
    def __init__(self, connection: Connection) -> None:
        self._s = connection

    def add(self, execution: Execution, claim: Claim | None = None) -> None:
        """Insert a new execution, claimed for ``claim`` (lease from now) if given."""
        row = execution_values(execution)
        if claim is not None:
            row["claimed_by"] = claim.owner
            row["claim_expires_at"] = utcnow() + timedelta(seconds=claim.lease_s)
        if self._s.dialect.name == "sqlite":  # one statement, no savepoint around it
            if self._s.execute(INSERT_EXECUTION_SQLITE, row).rowcount == 1:
                return
            raise ExecutionExists(f"execution {execution.id!r} already exists; use another id")
        try:
            with self._s.begin_nested():
                self._s.execute(insert(EXECUTIONS), [row])
        except IntegrityError:
            raise ExecutionExists(
                f"execution {execution.id!r} already exists; use another id"
            ) from None

    def update(self, execution: Execution) -> None:
        """Write the fields that change while an execution runs (one cached statement)."""
        result = self._s.execute(UPDATE_EXECUTION, execution_update_params(execution))
        if result.rowcount == 0:
            raise NotFoundError(f"no execution {execution.id!r}")

    def get(self, execution_id: str) -> Execution:
        row = self._s.execute(select(EXECUTIONS).where(EXECUTIONS.c.id == execution_id)).first()
        if row is None:
            raise NotFoundError(f"no execution {execution_id!r}")
        return _execution_from(row)

    def recent(self, *, status: Status | None = None, limit: int = 50) -> list[Execution]:
        stmt = select(EXECUTIONS).order_by(EXECUTIONS.c.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(EXECUTIONS.c.status == status.value)
        return [_execution_from(r) for r in self._s.execute(stmt)]


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


INSERT_BLOBS = {
    "postgresql": postgresql.insert(BLOBS).on_conflict_do_nothing(index_elements=["hash"]),
    # INSERT OR IGNORE, not on_conflict_do_nothing(): SQLAlchemy 2.0 never caches a statement
    # with the latter and compiles it again on every node write (~0.5 ms of CPU per node).
    "sqlite": insert(BLOBS).prefix_with("OR IGNORE"),
}


# Checkpoint ids are fresh, so a conflict can only be this writer's own earlier attempt whose
# COMMIT reached the server though the connection died before the reply: a retried node write
# must then be a no-op, not an IntegrityError.
INSERT_CHECKPOINTS = {
    "postgresql": postgresql.insert(CHECKPOINTS).on_conflict_do_nothing(index_elements=["id"]),
    "sqlite": insert(CHECKPOINTS).prefix_with("OR IGNORE"),  # cacheable, as above
}


class SqlCheckpoints:
    def __init__(self, connection: Connection) -> None:
        self._s = connection
        self._insert_blobs = INSERT_BLOBS[connection.dialect.name]
        self._insert_checkpoints = INSERT_CHECKPOINTS[connection.dialect.name]

    def add(self, checkpoint: Checkpoint, new_blobs: Mapping[str, str]) -> None:
        self.add_many([(checkpoint, new_blobs)])

    def add_many(self, items: Sequence[tuple[Checkpoint, Mapping[str, str]]]) -> None:
        """Insert checkpoints and their new values in two executemany statements."""
        blobs: dict[str, str] = {}
        for _, b in items:
            blobs.update(b)
        if blobs:
            self._s.execute(
                self._insert_blobs,
                [{"hash": h, "data": d, "size": len(d)} for h, d in blobs.items()],
            )
        self._s.execute(self._insert_checkpoints, [checkpoint_values(cp) for cp, _ in items])

    def get(self, checkpoint_id: str) -> Checkpoint:
        row = self._s.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.id == checkpoint_id)).first()
        if row is None:
            raise NotFoundError(f"no checkpoint {checkpoint_id!r}")
        cp = _checkpoint_from(row)
        values = self.load_values(list(cp.manifest.values()))
        return replace(cp, state={k: values[h] for k, h in cp.manifest.items()})

    def history(self, execution_id: str) -> list[Checkpoint]:
        stmt = (
            select(CHECKPOINTS)
            .where(CHECKPOINTS.c.execution_id == execution_id)
            .order_by(CHECKPOINTS.c.id)
        )
        return [_checkpoint_from(r) for r in self._s.execute(stmt)]

    def load_values(self, hashes: Sequence[str]) -> dict[str, Any]:
        return load_values(hashes, self._fetch)

    def _fetch(self, wanted: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[i : i + IN_CHUNK]
            rows = self._s.execute(
                select(BLOBS.c.hash, BLOBS.c.data).where(BLOBS.c.hash.in_(chunk))
            )
            out.update({h: d for h, d in rows})
        return out


LEAF_COLUMNS = ["batch_test_id", "combination_name", "case_id", "repeat"]


def _batch_values(b: BatchTest) -> dict[str, Any]:
    return {
        "id": b.id,
        "name": b.name,
        "workflow_ref": b.workflow_ref,
        "spec": b.spec,
        "status": b.status.value,
        "total": b.total,
        "cancel_requested": b.cancel_requested,
        "created_at": b.created_at,
        "updated_at": b.updated_at,
    }


INSERT_BATCH = {
    "postgresql": postgresql.insert(BATCHES).on_conflict_do_nothing(index_elements=["id"]),
    "sqlite": insert(BATCHES).prefix_with("OR IGNORE", dialect="sqlite"),
}


class SqlBatches:
    def __init__(self, connection: Connection) -> None:
        self._s = connection

    def add(self, batch: BatchTest) -> None:
        self._s.execute(insert(BATCHES), [_batch_values(batch)])

    def add_if_absent(self, batch: BatchTest) -> bool:
        """Insert the batch; False (nothing written) if another writer holds its id."""
        stmt = INSERT_BATCH[self._s.dialect.name]
        return bool(self._s.execute(stmt, _batch_values(batch)).rowcount)

    def update(self, batch: BatchTest) -> None:
        values = _batch_values(batch)
        del values["id"], values["created_at"]
        self._s.execute(update(BATCHES).where(BATCHES.c.id == batch.id).values(**values))

    def find(self, batch_id: str) -> BatchTest | None:
        row = self._s.execute(select(BATCHES).where(BATCHES.c.id == batch_id)).first()
        return None if row is None else self._batch_from(row)

    def latest(self, name: str, *, exclude: str | None = None) -> BatchTest | None:
        stmt = (
            select(BATCHES)
            .where(BATCHES.c.name == name, BATCHES.c.status != BatchStatus.RUNNING.value)
            .order_by(BATCHES.c.created_at.desc())
            .limit(1)
        )
        if exclude is not None:
            stmt = stmt.where(BATCHES.c.id != exclude)
        row = self._s.execute(stmt).first()
        return None if row is None else self._batch_from(row)

    @staticmethod
    def _batch_from(row: Any) -> BatchTest:
        return BatchTest(
            id=row.id,
            name=row.name,
            workflow_ref=row.workflow_ref,
            spec=dict(row.spec),
            status=BatchStatus(row.status),
            total=row.total,
            cancel_requested=bool(row.cancel_requested),
            created_at=aware(row.created_at),
            updated_at=aware(row.updated_at),
        )

    def get(self, batch_id: str) -> BatchTest:
        found = self.find(batch_id)
        if found is None:
            raise NotFoundError(f"no batch test {batch_id!r}")
        return found

    def get_for_update(self, batch_id: str) -> BatchTest:
        """``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's transaction holds the write lock
        already (BEGIN IMMEDIATE)."""
        stmt = select(BATCHES).where(BATCHES.c.id == batch_id).with_for_update()
        row = self._s.execute(stmt).first()
        if row is None:
            raise NotFoundError(f"no batch test {batch_id!r}")
        return self._batch_from(row)


# RETURNING names the rows really inserted (psycopg 3 reports no rowcount for executemany):
# only those go into the rollups.
INSERT_RESULTS = {
    "postgresql": postgresql.insert(RESULTS)
    .on_conflict_do_nothing(index_elements=LEAF_COLUMNS)
    .returning(*(RESULTS.c[name] for name in LEAF_COLUMNS)),
    # SQLite: INSERT OR IGNORE (on_conflict_do_nothing() would compile on every call).
    "sqlite": insert(RESULTS)
    .prefix_with("OR IGNORE", dialect="sqlite")
    .returning(*(RESULTS.c[name] for name in LEAF_COLUMNS)),
}


def _leaf(r: BatchResult) -> tuple[str, str, str, int]:
    return (r.batch_test_id, r.combination_name, r.case_id, r.repeat)


class SqlResults:
    def __init__(self, connection: Connection) -> None:
        self._s = connection
        self._insert = INSERT_RESULTS[connection.dialect.name]

    def add_many(self, results: Sequence[BatchResult]) -> int:
        """Insert results whose leaf is new (others are skipped) and add them to the rollups.

        Returns:
            How many were inserted.
        """
        if not results:
            return 0
        rows = [
            {
                "batch_test_id": r.batch_test_id,
                "execution_id": r.execution_id,
                "combination_name": r.combination_name,
                "variant_config": r.variant_config,
                "case_id": r.case_id,
                "repeat": r.repeat,
                "success": r.success,
                "passed": r.passed,
                "metrics": r.metrics,
                "overall_score": r.overall_score,
                "duration_ms": r.duration_ms,
                "worker_id": r.worker_id,
                "error": r.error,
                "created_at": r.created_at,
            }
            for r in results
        ]
        inserted = {tuple(row) for row in self._s.execute(self._insert, rows)}
        if inserted:
            first = {_leaf(r): r for r in reversed(results)}  # a leaf twice: the first one
            rollups.add(self._s, [r for leaf, r in first.items() if leaf in inserted])
        return len(inserted)

    def done_keys(self, batch_id: str, case_id: str) -> set[str]:
        stmt = select(RESULTS.c.combination_name, RESULTS.c.repeat).where(
            RESULTS.c.batch_test_id == batch_id, RESULTS.c.case_id == case_id
        )
        return {f"{name}#{repeat}" for name, repeat in self._s.execute(stmt)}

    def progress(self, batch_id: str, total: int) -> BatchProgress:
        stmt = select(
            func.coalesce(func.sum(ROLLUPS.c.n), 0), func.coalesce(func.sum(ROLLUPS.c.n_failed), 0)
        ).where(ROLLUPS.c.batch_test_id == batch_id)
        done, failed = self._s.execute(stmt).one()
        return BatchProgress(total, int(done), int(failed))

    def for_batch(self, batch_id: str) -> list[BatchResult]:
        stmt = select(RESULTS).where(RESULTS.c.batch_test_id == batch_id).order_by(RESULTS.c.id)
        return [
            BatchResult(
                batch_test_id=r.batch_test_id,
                execution_id=r.execution_id,
                combination_name=r.combination_name,
                variant_config=dict(r.variant_config),
                case_id=r.case_id,
                repeat=r.repeat,
                success=bool(r.success),
                passed=bool(r.passed),
                overall_score=float(r.overall_score),
                duration_ms=float(r.duration_ms),
                metrics=dict(r.metrics or {}),
                worker_id=r.worker_id,
                error=r.error,
                created_at=aware(r.created_at),
            )
            for r in self._s.execute(stmt)
        ]

    def comparison(self, batch_id: str, baseline: str | None) -> ComparisonMatrix:
        """Per-combination statistics in SQL; bootstrap and paired tests over case means."""
        from wtb_domain.adapters.sql.aggregates import matrix_for_batch

        return matrix_for_batch(self._s, batch_id, baseline)

    def combination_totals(self, batch_id: str) -> list[CombinationTotals]:
        from wtb_domain.adapters.sql.aggregates import combination_totals

        return combination_totals(self._s, batch_id)
