"""The integrity checks' questions in SQL (SQLite and PostgreSQL): anti-joins, no row loops.

Reads run in short read transactions; repairs in one transaction each. The outbox table is
looked up (reflected) when the check runs, so the check lights up once its migration ran.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    Table,
    and_,
    bindparam,
    case,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy import text as sql_text

from wtb_domain.adapters.sql import node_events, rollups
from wtb_domain.adapters.sql.claims import db_now, lease_params
from wtb_domain.adapters.sql.tables import (
    CHECKPOINTS,
    EXECUTIONS,
    METRIC_ROLLUPS,
    NODE_EVENT_MARKS,
    RESULTS,
    ROLLUPS,
)
from wtb_domain.integrity.checks import INTERRUPTED, INTERRUPTED_MESSAGE
from wtb_domain.integrity.model import Problem
from wtb_domain.model import Status, utcnow

OUTBOX_TABLE = "wtb_outbox"
REL_TOL = 1e-9
ABS_TOL = 1e-9

# Each manifest entry (checkpoint id, state key, value hash): JSON functions per dialect.
_MANIFEST_ENTRIES = {
    "postgresql": "SELECT c.id AS checkpoint_id, m.key AS key, m.value AS hash "
    "FROM wtb_checkpoints c CROSS JOIN LATERAL jsonb_each_text(c.manifest) m",
    "sqlite": "SELECT c.id AS checkpoint_id, m.key AS key, m.value AS hash "
    "FROM wtb_checkpoints c, json_each(c.manifest) m",
}


_DELTA_BASES = "SELECT substr(d.data, 2, 32) AS hash FROM wtb_state_blobs d WHERE d.data LIKE '~%'"
"""The base hashes of delta blobs (see wtb_domain.deltas: ``~`` + base hash + tail)."""
_MISSING_BASES = (
    "SELECT d.hash, substr(d.data, 2, 32) FROM wtb_state_blobs d "
    "LEFT JOIN wtb_state_blobs b ON b.hash = substr(d.data, 2, 32) "
    "WHERE d.data LIKE '~%' AND b.hash IS NULL ORDER BY d.hash"
)


def _stuck(dialect: str) -> Any:
    c = EXECUTIONS.c
    return and_(
        c.status == Status.RUNNING.value,
        or_(
            c.claimed_by.is_(None),
            c.claim_expires_at.is_(None),
            c.claim_expires_at < db_now(dialect),
        ),
    )


class SqlIntegrityView:
    """:class:`~wtb_domain.integrity.IntegrityView` over a migrated WTB database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            try:
                yield conn
            finally:
                conn.rollback()

    def missing_parents(self) -> list[Problem]:
        c, p = CHECKPOINTS.alias("c"), CHECKPOINTS.alias("p")
        stmt = (
            select(c.c.id, c.c.parent_id, c.c.execution_id)
            .select_from(c.outerjoin(p, p.c.id == c.c.parent_id))
            .where(c.c.parent_id.is_not(None), p.c.id.is_(None))
            .order_by(c.c.id)
        )
        with self._read() as conn:
            return [
                Problem(cp, f"parent {parent} missing (execution {execution})")
                for cp, parent, execution in conn.execute(stmt)
            ]

    def misplaced_heads(self) -> list[Problem]:
        e, c = EXECUTIONS, CHECKPOINTS
        stmt = (
            select(e.c.id, e.c.head_checkpoint_id, c.c.execution_id)
            .select_from(e.outerjoin(c, c.c.id == e.c.head_checkpoint_id))
            .where(
                e.c.head_checkpoint_id.is_not(None),
                or_(c.c.id.is_(None), c.c.execution_id != e.c.id),
            )
            .order_by(e.c.id)
        )
        with self._read() as conn:
            return [
                Problem(
                    execution,
                    f"head {head} missing"
                    if owner is None
                    else f"head {head} belongs to execution {owner}",
                )
                for execution, head, owner in conn.execute(stmt)
            ]

    def missing_blobs(self) -> list[Problem]:
        entries = _MANIFEST_ENTRIES[self.dialect]
        stmt = sql_text(
            f"SELECT m.checkpoint_id, m.key, m.hash FROM ({entries}) m "  # noqa: S608 - constants
            "LEFT JOIN wtb_state_blobs b ON b.hash = m.hash WHERE b.hash IS NULL "
            "ORDER BY m.checkpoint_id, m.key"
        )
        with self._read() as conn:
            return [
                Problem(cp, f"value of {key!r} (blob {digest}) missing")
                for cp, key, digest in conn.execute(stmt)
            ] + [
                Problem(h, f"delta value: its base blob {base} is missing")
                for h, base in conn.execute(sql_text(_MISSING_BASES))
            ]

    def orphan_blobs(self) -> list[Problem]:
        entries = _MANIFEST_ENTRIES[self.dialect]
        stmt = sql_text(
            f"SELECT b.hash, b.size FROM wtb_state_blobs b LEFT JOIN "  # noqa: S608 - constants
            f"(SELECT m.hash FROM ({entries}) m UNION {_DELTA_BASES}) r ON r.hash = b.hash "
            "WHERE r.hash IS NULL ORDER BY b.hash"
        )
        with self._read() as conn:
            return [
                Problem(h, f"{size} bytes, no checkpoint refers to it")
                for h, size in conn.execute(stmt)
            ]

    def dangling_results(self) -> list[Problem]:
        r, e = RESULTS, EXECUTIONS
        stmt = (
            select(
                r.c.batch_test_id, r.c.combination_name, r.c.case_id, r.c.repeat, r.c.execution_id
            )
            .select_from(r.outerjoin(e, e.c.id == r.c.execution_id))
            .where(e.c.id.is_(None))
            .order_by(r.c.id)
        )
        with self._read() as conn:
            return [
                Problem(batch, f"{combo} / {case} #{rep}: execution {execution} missing")
                for batch, combo, case, rep, execution in conn.execute(stmt)
            ]

    def stale_rollups(self) -> list[Problem]:
        columns = [RESULTS.c[n] for n in (*rollups.LEAF, "success", "passed", "overall_score")]
        stmt = select(*columns, RESULTS.c.metrics).execution_options(
            yield_per=rollups.REBUILD_CHUNK
        )
        with self._read() as conn:
            expected, expected_metrics = rollups.summarise(conn.execute(stmt))
            stored = [dict(row._mapping) for row in conn.execute(select(ROLLUPS))]
            stored_metrics = [dict(row._mapping) for row in conn.execute(select(METRIC_ROLLUPS))]
        leaf = rollups.LEAF
        problems = _compare(
            expected, stored, leaf, ("n", "n_failed", "n_passed"), ("score_mean", "score_m2")
        )
        problems += _compare(
            expected_metrics, stored_metrics, (*leaf, "key"), ("count",), ("total",)
        )
        return sorted(problems, key=lambda p: (p.key, p.detail))

    def rebuild_rollups(self, batch_ids: Sequence[str]) -> int:
        with self.engine.begin() as conn:
            for batch_id in batch_ids:
                rollups.rebuild(conn, batch_id)
        return len(batch_ids)

    def _outbox(self, conn: Connection) -> Table | None:
        if not inspect(conn).has_table(OUTBOX_TABLE):
            return None
        return Table(OUTBOX_TABLE, MetaData(), autoload_with=conn)

    def undrained_outbox(self, older_than_s: float) -> list[Problem] | None:
        with self._read() as conn:
            outbox = self._outbox(conn)
            if outbox is None:
                return None
            cutoff = utcnow() - timedelta(seconds=older_than_s)
            if self.dialect == "sqlite":
                cutoff = cutoff.replace(tzinfo=None)
            o = outbox.c
            stmt = (
                select(o.id, o.event_type, o.created_at)
                .where(o.published_at.is_(None), o.created_at < cutoff)
                .order_by(o.id)
            )
            found = [
                Problem(str(row_id), f"{event_type} written {created} not published")
                for row_id, event_type, created in conn.execute(stmt)
            ]
            if inspect(conn).has_table(NODE_EVENT_MARKS.name):  # node events (0012)
                nodes = node_events.unpublished_statement(cutoff)
                found.extend(
                    Problem(cp_id, f"NodeCompleted of checkpoint {cp_id} ({created}) not published")
                    for cp_id, created in conn.execute(nodes)
                )
            return found

    def stuck_running(self) -> list[Problem]:
        c = EXECUTIONS.c
        stmt = (
            select(c.id, c.claimed_by, c.claim_expires_at)
            .where(_stuck(self.dialect))
            .order_by(c.id)
        )
        with self._read() as conn:
            rows = conn.execute(stmt, lease_params(None)).all()
        return [
            Problem(
                execution,
                "running without a claim"
                if owner is None
                else f"running, claim of {owner} expired at {expires}",
            )
            for execution, owner, expires in rows
        ]

    def interrupt(self, execution_ids: Sequence[str]) -> int:
        if not execution_ids:
            return 0
        c = EXECUTIONS.c
        now = bindparam("now", utcnow(), type_=c.updated_at.type)
        stmt = (
            update(EXECUTIONS)
            .where(c.id.in_(list(execution_ids)), _stuck(self.dialect))
            .values(
                status=Status.FAILED.value,
                error_type=INTERRUPTED,
                error_message=INTERRUPTED_MESSAGE,
                claimed_by=None,
                claim_expires_at=None,
                # Never backwards (this host's clock may be behind the dead runner's): the
                # execution's write times order its node events (``node_events``).
                updated_at=case((c.updated_at > now, c.updated_at), else_=now),
            )
        )
        with self.engine.begin() as conn:
            return int(conn.execute(stmt, lease_params(None)).rowcount)


def _compare(
    expected: list[dict[str, Any]],
    stored: list[dict[str, Any]],
    key: Sequence[str],
    exact: Sequence[str],
    approx: Sequence[str],
) -> list[Problem]:
    """Differences between rollup rows computed from results and stored ones; key: batch."""
    want = {tuple(r[k] for k in key): r for r in expected}
    have = {tuple(r[k] for k in key): r for r in stored}
    problems: list[Problem] = []
    for k in sorted(want.keys() | have.keys()):
        where = " / ".join(str(part) for part in k[1:])
        if k not in have:
            problems.append(Problem(str(k[0]), f"{where}: rollup missing"))
        elif k not in want:
            problems.append(Problem(str(k[0]), f"{where}: rollup without results"))
        else:
            diff = _differences(want[k], have[k], exact, approx)
            if diff:
                problems.append(Problem(str(k[0]), f"{where}: {diff}"))
    return problems


def _differences(
    want: Mapping[str, Any], have: Mapping[str, Any], exact: Sequence[str], approx: Sequence[str]
) -> str:
    out = [f"{n} {have[n]} != {want[n]}" for n in exact if have[n] != want[n]]
    out += [
        f"{n} {have[n]:.6g} != {want[n]:.6g}"
        for n in approx
        if not math.isclose(float(have[n]), float(want[n]), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    ]
    return ", ".join(out)
