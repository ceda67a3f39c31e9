"""The rollup statements: a batch's ``wtb_result_rollups`` rows and its metric sums."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, String, Table, bindparam, func, select

from wtb_domain.adapters.sql.tables import METRIC_ROLLUPS, ROLLUPS

if TYPE_CHECKING:  # a Session works too; the ORM is not imported to say so
    from sqlalchemy.orm import Session

    Executor = Session | Connection


def _batch(table: Table, batch_id: str) -> Any:
    return table.c.batch_test_id == bindparam("batch_id", batch_id, type_=String())


def rollups_statement(batch_id: str) -> Any:
    r = ROLLUPS.c
    return (
        select(r.combination_name, r.case_id, r.n, r.n_failed, r.n_passed, r.score_mean, r.score_m2)
        .where(_batch(ROLLUPS, batch_id))
        .order_by(r.combination_name, r.case_id)
    )


def metric_sums_statement(batch_id: str) -> Any:
    m = METRIC_ROLLUPS.c
    return (
        select(m.combination_name, m.key, func.sum(m.total), func.sum(m.count))
        .where(_batch(METRIC_ROLLUPS, batch_id))
        .group_by(m.combination_name, m.key)
    )
