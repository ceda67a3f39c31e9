"""Guarded execution writes: compare-and-set of the head and the claim, in SQL.

:func:`guarded_update` is the one statement that moves an execution's head or changes its
status while a runner works on it. It changes the row only when

* the stored head is the one the writer expects (or already the one it writes: a retry of a
  write whose commit reached the server), and
* the stored claim is the writer's own, free, or expired,

and it sets the claim to the writer's (renewing its lease) or frees it. No row changed means
the write was refused; :func:`refusal` reads the row to say why.

Lease times come from the database's clock on PostgreSQL (``statement_timestamp()``), so
runners on machines with different clocks agree; on SQLite (a local file) the process passes
its UTC time as a parameter.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Float,
    Update,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
    update,
)

from wtb_domain.adapters.sql.repositories import MUTABLE, aware, execution_update_params
from wtb_domain.adapters.sql.tables import EXECUTIONS
from wtb_domain.claims import Claim, ExecutionClaimed, ExecutionConflict
from wtb_domain.errors import NotFoundError
from wtb_domain.model import Execution, utcnow

Stamp = DateTime(timezone=True)


def db_now(dialect: str) -> ColumnElement[Any]:
    """The time leases are judged by: the server's on PostgreSQL, the caller's on SQLite."""
    if dialect == "postgresql":
        return func.statement_timestamp(type_=Stamp)
    return bindparam("now", type_=Stamp)


def lease_end(dialect: str) -> ColumnElement[Any]:
    """``now + lease_s`` (NULL when ``lease_s`` is NULL: no claim)."""
    if dialect == "postgresql":
        zero: ColumnElement[Any] = literal_column("0")
        interval = func.make_interval(
            zero, zero, zero, zero, zero, zero, bindparam("lease_s", type_=Float)
        )
        return type_coerce(func.statement_timestamp() + interval, Stamp)
    return bindparam("lease_end", type_=Stamp)


def claim_is_free(dialect: str) -> ColumnElement[bool]:
    """The stored claim is the writer's (``owner``), free, or expired."""
    c = EXECUTIONS.c
    return or_(
        c.claimed_by.is_(None),
        c.claimed_by == bindparam("owner"),
        c.claim_expires_at < db_now(dialect),
    )


@functools.cache
def guarded_update(dialect: str) -> Update:
    """Writes the MUTABLE fields and the claim if head and claim are as the writer expects.

    Parameters: :func:`guard_params`. Its row count is 1 if written, 0 if refused.
    """
    c = EXECUTIONS.c
    return (
        update(EXECUTIONS)
        .where(
            c.id == bindparam("execution_id"),
            c.head_checkpoint_id.in_([bindparam("expected_head"), bindparam("new_head")]),
            claim_is_free(dialect),
        )
        .values(
            {
                **{name: bindparam(name) for name in MUTABLE},
                "claimed_by": bindparam("new_owner"),
                "claim_expires_at": lease_end(dialect),
            }
        )
    )


def lease_params(lease_s: float | None) -> dict[str, Any]:
    """The time parameters of both dialects (each statement uses those it names)."""
    now = utcnow()
    return {
        "now": now,
        "lease_s": lease_s,
        "lease_end": None if lease_s is None else now + timedelta(seconds=lease_s),
    }


def guard_params(
    execution: Execution, expected_head: str | None, claim: Claim | None, *, hold: bool
) -> dict[str, Any]:
    """Parameters of :func:`guarded_update`: write ``execution``'s fields if its head is
    ``expected_head``; ``hold`` keeps (or takes) the claim for ``claim``, else it is freed."""
    params = execution_update_params(execution)
    params["expected_head"] = expected_head
    params["new_head"] = execution.head_checkpoint_id
    params["owner"] = claim.owner if claim is not None else None
    held = claim if hold else None
    params["new_owner"] = held.owner if held is not None else None
    params.update(lease_params(held.lease_s if held is not None else None))
    return params


@functools.cache
def renew_statement(dialect: str) -> Update:
    """Extends (``lease_s``) or drops (``lease_s`` NULL) the claim of ``owner``."""
    c = EXECUTIONS.c
    return (
        update(EXECUTIONS)
        .where(c.id == bindparam("execution_id"), c.claimed_by == bindparam("owner"))
        .values(
            claimed_by=bindparam("new_owner"),
            claim_expires_at=lease_end(dialect),
        )
    )


def renew_params(execution_id: str, claim: Claim, *, keep: bool) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "owner": claim.owner,
        "new_owner": claim.owner if keep else None,
        **lease_params(claim.lease_s if keep else None),
    }


def refusal(connection: Connection, execution_id: str, claim: Claim | None) -> Exception:
    """Why a guarded write changed no row: unknown execution, a live claim of another
    runner, or a head that moved."""
    c = EXECUTIONS.c
    dialect = connection.dialect.name
    now = db_now(dialect).label("now")
    row = connection.execute(
        select(c.claimed_by, c.claim_expires_at, now).where(c.id == execution_id),
        lease_params(None),
    ).first()
    if row is None:
        return NotFoundError(f"no execution {execution_id!r}")
    owner, expires, db_time = row
    mine = claim is not None and owner == claim.owner
    if owner is not None and expires is not None and not mine:
        left = (aware(expires) - aware(db_time)).total_seconds()
        if left > 0:
            return ExecutionClaimed(execution_id, owner, left)
    return ExecutionConflict(execution_id)
