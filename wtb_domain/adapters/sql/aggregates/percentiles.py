"""Exact p50/p95 of ``duration_ms``: where each percentile sits in a combination's sorted
durations, read from the index in ``UNION ALL`` statements of bound lookups."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from wtb_domain.adapters.sql.tables import RESULTS

PERCENTILES = (50, 95)
# Percentile lookups per statement (each is a subquery of the UNION ALL).
LOOKUPS_PER_STATEMENT = 200


@dataclass(frozen=True)
class PercentileLookup:
    """Where a percentile of one combination's ``duration_ms`` sits in its sorted values.

    Attributes:
        name: The combination.
        q: The percentile (0-100).
        n: The combination's number of results.
        low: 0-based rank of the value at or below the percentile's position.
        high: The rank above it (``low`` again at the end).
        fraction: Position minus ``low``: the interpolation weight of the ``high`` value.
    """

    name: str
    q: int
    n: int
    low: int
    high: int
    fraction: float

    @classmethod
    def of(cls, name: str, q: int, n: int) -> PercentileLookup:
        """The same position as :func:`wtb_domain.comparison.percentile`."""
        position = (n - 1) * q / 100
        low = math.floor(position)
        return cls(name, q, n, low, min(low + 1, n - 1), position - low)

    def sql(self, tag: int) -> tuple[str, dict[str, Any]]:
        """``(tag, value at low, value at high)``: the two ranks from the nearer end; the SQL
        (with ``:batch_id`` and this lookup's bound name, limit and offset) and its values."""
        table, duration = RESULTS.name, f"{RESULTS.name}.{RESULTS.c.duration_ms.name}"
        descending = self.low > self.n - 1 - self.high
        offset = self.n - 1 - self.high if descending else self.low
        # Only our table/column names and int tags are formatted in; every value is bound.
        sql = (
            f"SELECT {int(tag)} AS tag, min(p{tag}.d) AS low, max(p{tag}.d) AS high FROM "  # noqa: S608
            f"(SELECT {duration} AS d FROM {table} WHERE {table}.batch_test_id = :batch_id "
            f"AND {table}.combination_name = :n{tag} "
            f"ORDER BY {duration}{' DESC' if descending else ''} "
            f"LIMIT :l{tag} OFFSET :o{tag}) AS p{tag}"
        )
        return sql, {f"n{tag}": self.name, f"l{tag}": self.high - self.low + 1, f"o{tag}": offset}

    def interpolate(self, low: float, high: float) -> float:
        return low + (high - low) * self.fraction


def percentile_statements(batch_id: str, lookups: Sequence[PercentileLookup]) -> list[Any]:
    """``UNION ALL`` statements for the lookups, tagged by their index in ``lookups``.

    Plain SQL text with bound parameters: built as SQLAlchemy constructs, 200 subqueries
    cost more CPU to build, key and compile (every time: the names differ) than to run.
    """
    out: list[Any] = []
    for start in range(0, len(lookups), LOOKUPS_PER_STATEMENT):
        parts: list[str] = []
        params: dict[str, Any] = {"batch_id": batch_id}
        for tag, lookup in enumerate(lookups[start : start + LOOKUPS_PER_STATEMENT], start):
            sql, values = lookup.sql(tag)
            parts.append(sql)
            params.update(values)
        out.append(text(" UNION ALL ".join(parts)).bindparams(**params))
    return out
