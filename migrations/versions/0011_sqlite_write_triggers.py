"""SQLite: node, execution and result writes as one statement (a view and its triggers).

PostgreSQL writes a node's checkpoint, values, head move and events as one statement of
data-modifying CTEs, sent in autocommit mode. SQLite has no writable CTEs; its stored
procedure is an ``INSTEAD OF INSERT`` trigger on a view. ``wtb_sqlite_writes`` is a view of
no rows whose columns are ``kind`` and ``c0`` .. ``c19``; inserting rows into it runs, for
each row in order, the trigger of its ``kind``:

* ``guard``: the compare-and-set of ``claims.guarded_update`` -- aborts the whole statement
  (``RAISE(ABORT, 'wtb:refused')``) unless the execution's head and claim are as the writer
  expects, then writes the execution's fields and its claim;
* ``execution``: inserts a new execution (aborts with ``wtb:execution exists`` on an id in
  use);
* ``blob``, ``checkpoint``, ``event``: insert a state value, a checkpoint, an event row,
  skipping ones already stored (a retried write);
* ``result``: inserts a batch result (aborts with ``wtb:result stored`` when its leaf is
  stored already, so a partly stored set leaves nothing and takes the general path);
* ``rollup``, ``metric``: add to the result rollups and metric rollups (the same merge as
  ``adapters.sql.rollups``).

A statement and everything its triggers do is atomic: an abort leaves nothing behind. The
column layout of each kind is in ``wtb_domain/adapters/sql/sqlite_writes.py``. PostgreSQL:
nothing to do (this revision is a no-op there).

Revision ID: 0011_sqlite_write_triggers
Revises: 0010_events_one_row
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0011_sqlite_write_triggers"
down_revision = "0010_events_one_row"
branch_labels = None
depends_on = None

VIEW = "wtb_sqlite_writes"
WIDTH = 20
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
EXECUTION = (
    "id",
    "workflow_name",
    "workflow_hash",
    "workflow_ref",
    "status",
    "variants",
    "breakpoints",
    "head_checkpoint_id",
    "paused_at",
    "parent_execution_id",
    "forked_from_checkpoint_id",
    "error_type",
    "error_message",
    "error_traceback",
    "metrics",
    "labels",
    "created_at",
    "updated_at",
    "claimed_by",
    "claim_expires_at",
)
CHECKPOINT = (
    "id",
    "execution_id",
    "parent_id",
    "step",
    "node",
    "variant",
    "source",
    "manifest",
    "metadata",
    "created_at",
)
BLOB = ("hash", "data", "size")
EVENT = (
    "event_id",
    "event_type",
    "payload",
    "created_at",
    "execution_id",
    "batch_id",
    "node",
    "severity",
    "message",
)
RESULT = (
    "batch_test_id",
    "execution_id",
    "combination_name",
    "variant_config",
    "case_id",
    "repeat",
    "success",
    "passed",
    "metrics",
    "overall_score",
    "duration_ms",
    "worker_id",
    "error",
    "created_at",
)
ROLLUP = (
    "batch_test_id",
    "combination_name",
    "case_id",
    "n",
    "n_failed",
    "n_passed",
    "score_mean",
    "score_m2",
)
METRIC = ("batch_test_id", "combination_name", "case_id", '"key"', "total", "count")


def _new(count: int, start: int = 0) -> str:
    return ", ".join(f"NEW.c{i}" for i in range(start, start + count))


def _insert(table: str, columns: tuple[str, ...], verb: str = "INSERT") -> str:
    # ``WHERE true``: a SELECT followed by ON CONFLICT needs a WHERE clause in SQLite.
    return f"{verb} INTO {table} ({', '.join(columns)}) SELECT {_new(len(columns))} WHERE true"


_GUARD_CHECK = (
    "SELECT RAISE(ABORT, 'wtb:refused') WHERE NOT EXISTS (SELECT 1 FROM wtb_executions "
    "WHERE id = NEW.c0 AND head_checkpoint_id IN (NEW.c1, NEW.c2) "
    "AND (claimed_by IS NULL OR claimed_by = NEW.c3 OR claim_expires_at < NEW.c5))"
)
_GUARD_SET = ", ".join(f"{name} = NEW.c{7 + i}" for i, name in enumerate(MUTABLE))
_GUARD_UPDATE = (
    f"UPDATE wtb_executions SET {_GUARD_SET}, claimed_by = NEW.c4, claim_expires_at = NEW.c6 "  # noqa: S608
    "WHERE id = NEW.c0"
)
_LEAF = "batch_test_id = NEW.c0 AND combination_name = NEW.c2 AND case_id = NEW.c4"
_RESULT_CHECK = (
    "SELECT RAISE(ABORT, 'wtb:result stored') WHERE EXISTS (SELECT 1 FROM "  # noqa: S608
    f"wtb_batch_test_results WHERE {_LEAF} AND repeat = NEW.c5)"
)
_R, _X = "wtb_result_rollups", "excluded"
_N = f"(CAST({_R}.n + {_X}.n AS FLOAT) + 0.0)"
_DELTA = f"({_X}.score_mean - {_R}.score_mean)"
_ROLLUP_MERGE = (
    "ON CONFLICT (batch_test_id, combination_name, case_id) DO UPDATE SET "
    f"n = ({_R}.n + {_X}.n), n_failed = ({_R}.n_failed + {_X}.n_failed), "
    f"n_passed = ({_R}.n_passed + {_X}.n_passed), "
    f"score_mean = ({_R}.score_mean + ({_DELTA} * {_X}.n) / {_N}), "
    f"score_m2 = ({_R}.score_m2 + {_X}.score_m2 + "
    f"({_DELTA} * {_DELTA} * {_R}.n * {_X}.n) / {_N})"
)
_METRIC_MERGE = (
    'ON CONFLICT (batch_test_id, combination_name, case_id, "key") DO UPDATE SET '
    "total = (wtb_metric_rollups.total + excluded.total), "
    "count = (wtb_metric_rollups.count + excluded.count)"
)

TRIGGERS: dict[str, list[str]] = {
    "guard": [_GUARD_CHECK, _GUARD_UPDATE],
    "execution": [
        "SELECT RAISE(ABORT, 'wtb:execution exists') "
        "WHERE EXISTS (SELECT 1 FROM wtb_executions WHERE id = NEW.c0)",
        _insert("wtb_executions", EXECUTION),
    ],
    "blob": [_insert("wtb_state_blobs", BLOB, "INSERT OR IGNORE")],
    "checkpoint": [_insert("wtb_checkpoints", CHECKPOINT, "INSERT OR IGNORE")],
    "event": [_insert("wtb_outbox", EVENT, "INSERT OR IGNORE")],
    "result": [
        _RESULT_CHECK,
        _insert("wtb_batch_test_results", RESULT),
    ],
    "rollup": [f"{_insert(_R, ROLLUP)} {_ROLLUP_MERGE}"],
    "metric": [f"{_insert('wtb_metric_rollups', METRIC)} {_METRIC_MERGE}"],
}


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if not _sqlite():
        return
    columns = ", ".join(["NULL AS kind", *(f"NULL AS c{i}" for i in range(WIDTH))])
    op.execute(f"CREATE VIEW {VIEW} AS SELECT {columns} WHERE 0")
    for kind, body in TRIGGERS.items():
        statements = "".join(f"  {s};\n" for s in body)
        op.execute(
            f"CREATE TRIGGER {VIEW}_{kind} INSTEAD OF INSERT ON {VIEW} "
            f"WHEN NEW.kind = '{kind}'\nBEGIN\n{statements}END"
        )


def downgrade() -> None:
    if not _sqlite():
        return
    for kind in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {VIEW}_{kind}")
    op.execute(f"DROP VIEW IF EXISTS {VIEW}")
