"""The matrix aggregated in SQL equals ``comparison.build_matrix`` over the rows (SQLite and PG)."""

from __future__ import annotations

import dataclasses
import math
import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.postgres.conftest import forget_database
from wtb_domain import App, SpecError, sql_app
from wtb_domain.adapters.sql import aggregates
from wtb_domain.adapters.sql.aggregates import (
    build_matrix_from_inputs,
    inputs_from_rows,
    matrix_for_batch,
    matrix_inputs,
)
from wtb_domain.comparison import ComparisonMatrix, ResultRow, build_matrix, result_rows
from wtb_domain.model import BatchResult, BatchTest

pytestmark = pytest.mark.postgres

REL = 1e-9


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wtb.db'}"
        yield sql_app(url, audit=False)
        forget_database(url)
    else:
        yield sql_app(request.getfixturevalue("pg_url"), audit=False)


def synthetic(batch_id: str, seed: int, dyadic: bool = False) -> list[BatchResult]:
    """A few hundred results: failures (some with garbage scores), repeats, missing leaves,
    metrics that some runs lack, a boolean metric (not numeric), awkward names."""
    rng = random.Random(seed)
    combos = ["retrieve=bm25,answer=llm", "retrieve=keyword", "it's | odd", "c-3", "c-4", "c-5"]

    def value(scale: float = 1.0) -> float:
        if dyadic:
            return rng.randint(0, 16) / 16 * scale
        return rng.random() * scale

    out = []
    for c_index, combo in enumerate(combos):
        for case in range(25):
            repeats = 3 if (case + c_index) % 7 else 2  # some leaves missing: unequal repeats
            for repeat in range(repeats):
                success = rng.random() > 0.12
                score = value() + c_index * 0.01
                if not success:
                    score = rng.choice([0.9, math.inf, -math.inf, 0.0])
                metrics: dict[str, Any] = {"tokens": rng.randint(10, 500), "latency_ms": value(900)}
                if rng.random() < 0.8:
                    metrics["cost_usd"] = value(0.01)
                if rng.random() < 0.3:
                    metrics["only_some"] = value(5)
                if rng.random() < 0.2:
                    metrics["flag"] = True
                if rng.random() < 0.2:
                    metrics["model"] = "gpt-x"  # not a number: ignored
                metrics["mixed"] = value(3) if rng.random() < 0.5 else "n/a"
                out.append(
                    BatchResult(
                        batch_test_id=batch_id,
                        execution_id=f"{batch_id}-{c_index}-{case}-{repeat}",
                        combination_name=combo,
                        variant_config={"combo": combo},
                        case_id=f"case-{case:03d}",
                        repeat=repeat,
                        success=success,
                        passed=success and rng.random() > 0.35,
                        overall_score=score,
                        duration_ms=value(1000) + 1,
                        metrics=metrics,
                    )
                )
    return out


def store_batch(app: App, results: list[BatchResult]) -> str:
    batch_id = results[0].batch_test_id if results else f"agg-empty-{secrets.token_hex(4)}"
    with app.uow() as uow:
        uow.batches.add(BatchTest(batch_id, "tests:wf", {}, len(results)))
        uow.results.add_many(results)
        uow.commit()
    return batch_id


def rows_of(app: App, batch_id: str) -> list[ResultRow]:
    """Every row of the batch, read back from the store."""
    with app.uow() as uow:
        return result_rows(uow.results.for_batch(batch_id))


def sql_matrix(app: App, batch_id: str, **kwargs: Any) -> ComparisonMatrix:
    with app.uow() as uow:
        inputs = matrix_inputs(uow.connection, batch_id)  # type: ignore[attr-defined]
    return build_matrix_from_inputs(inputs, batch_id, **kwargs)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def assert_same(a: ComparisonMatrix, b: ComparisonMatrix) -> None:
    """Equal up to summation order: names, ranks, counts and verdicts exactly, floats 1e-9."""
    assert (a.batch_id, a.baseline, a.alpha, a.best) == (b.batch_id, b.baseline, b.alpha, b.best)
    assert [s.name for s in a.stats] == [s.name for s in b.stats]
    for x, y in zip(a.stats, b.stats, strict=True):
        for f in dataclasses.fields(x):
            vx, vy = getattr(x, f.name), getattr(y, f.name)
            if isinstance(vx, float):
                assert close(vx, vy), (x.name, f.name, vx, vy)
            elif isinstance(vx, dict):
                assert list(vx) == list(vy), (x.name, f.name, vx, vy)
                assert all(close(vx[k], vy[k]) for k in vx), (x.name, f.name, vx, vy)
            else:
                assert vx == vy, (x.name, f.name, vx, vy)
    for left, right in ((a.vs_best, b.vs_best), (a.vs_baseline, b.vs_baseline)):
        assert len(left) == len(right)
        for p, q in zip(left, right, strict=True):
            assert (p.combination, p.reference, p.n_pairs, p.significant, p.verdict) == (
                q.combination,
                q.reference,
                q.n_pairs,
                q.significant,
                q.verdict,
            )
            for name in ("mean_diff", "p_value", "p_adjusted"):
                assert close(getattr(p, name), getattr(q, name)), (p, q, name)


@pytest.mark.parametrize("seed", [1, 2])
def test_sql_matrix_equals_build_matrix(store: App, seed: int) -> None:
    results = synthetic(f"agg-{secrets.token_hex(5)}", seed)
    assert 400 <= len(results) <= 500
    batch_id = store_batch(store, results)
    # Another batch in the same table must not leak into this one.
    store_batch(store, synthetic(f"agg-other-{secrets.token_hex(5)}", seed + 100))
    rows = rows_of(store, batch_id)
    assert len(rows) == len(results)

    for kwargs in ({}, {"baseline": "retrieve=keyword", "alpha": 0.1, "seed": 7}):
        expected = build_matrix(rows, batch_id, **kwargs)
        got = sql_matrix(store, batch_id, **kwargs)
        assert_same(expected, got)
        assert {s.name: s.n for s in got.stats} == {s.name: s.n for s in expected.stats}
        assert sum(s.n for s in got.stats) == len(results)
        assert any(s.n_failed for s in got.stats)
        assert all("flag" not in s.metric_means for s in got.stats)
        assert all("model" not in s.metric_means for s in got.stats)
        assert all("mixed" in s.metric_means for s in got.stats)
        assert any("only_some" in s.metric_means for s in got.stats)
    # The pure-Python inputs give the very same matrix as build_matrix (no summation order).
    assert build_matrix_from_inputs(inputs_from_rows(batch_id, rows), batch_id) == build_matrix(
        rows, batch_id
    )


def test_sql_matrix_with_ties_ranks_like_build_matrix(store: App) -> None:
    """Dyadic values (exact sums) and two identical combinations: tie-breaks must agree."""
    batch_id = f"agg-ties-{secrets.token_hex(5)}"
    results = synthetic(batch_id, 3, dyadic=True)
    twin = [
        dataclasses.replace(r, combination_name="z-twin", execution_id=r.execution_id + "-t")
        for r in results
        if r.combination_name == "c-4"
    ]
    store_batch(store, results + twin)
    rows = rows_of(store, batch_id)
    expected = build_matrix(rows, batch_id, baseline="c-4")
    got = sql_matrix(store, batch_id, baseline="c-4")
    assert_same(expected, got)
    ranks = {s.name: s.rank for s in got.stats}
    assert ranks["z-twin"] == ranks["c-4"] + 1  # same stats, name breaks the tie


def test_empty_batch_and_unknown_baseline(store: App) -> None:
    batch_id = store_batch(store, [])
    got = sql_matrix(store, batch_id)
    assert got == build_matrix([], batch_id)
    assert got.stats == [] and got.best is None
    with pytest.raises(SpecError) as sql_err:
        sql_matrix(store, batch_id, baseline="nope")
    with pytest.raises(SpecError) as py_err:
        build_matrix([], batch_id, baseline="nope")
    assert str(sql_err.value) == str(py_err.value)
    with pytest.raises(SpecError):
        sql_matrix(store, batch_id, alpha=1.5)


def test_postgres_stats_are_one_aggregate_statement(pg_url: str) -> None:
    """On PostgreSQL: a small sample for the metric keys, then one statement for all
    per-combination figures (no jsonb_each there: one aggregate column per key), one for the
    case means; bound parameters only (no batch id or metric key inlined in the SQL text)."""
    app = sql_app(pg_url, audit=False)
    batch_id = f"agg-one-{secrets.token_hex(5)}"
    store_batch(app, synthetic(batch_id, 4))
    assert app.database is not None
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(app.database.engine, "before_cursor_execute", record)
    try:
        with app.uow() as uow:
            matrix = matrix_for_batch(uow.connection, batch_id)  # type: ignore[attr-defined]
    finally:
        event.remove(app.database.engine, "before_cursor_execute", record)
    touching = [s for s in statements if "wtb_batch_test_results" in s]
    assert len(touching) == 3, touching
    keys_sql, stats_sql, case_sql = touching
    assert "jsonb_each" in keys_sql and "LIMIT" in keys_sql
    assert "percentile_cont" in stats_sql and "stddev_samp" in stats_sql
    assert "jsonb_each" not in stats_sql and "GROUP BY" in stats_sql
    assert "case_id" in case_sql
    for sql in touching:
        assert batch_id not in sql and "cost_usd" not in sql
    assert len(matrix.stats) == 6


def _recorded(app: App, batch_id: str) -> tuple[ComparisonMatrix, list[str]]:
    assert app.database is not None
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(app.database.engine, "before_cursor_execute", record)
    try:
        with app.uow() as uow:
            matrix = matrix_for_batch(uow.connection, batch_id)  # type: ignore[attr-defined]
            # The transaction is still usable after a statement that failed in a savepoint.
            assert uow.results.progress(batch_id, 1).done > 0
    finally:
        event.remove(app.database.engine, "before_cursor_execute", record)
    return matrix, statements


def test_postgres_keys_and_types_beyond_the_key_sample(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-row key sample misses keys ("only_some", "flag", ...) and may take "mixed" for a
    number: the stats statement is run again (after a failed cast, inside a savepoint) with
    type tests, then with the keys of the whole batch; the matrix is still build_matrix's."""
    monkeypatch.setattr(aggregates, "KEY_SAMPLE_ROWS", 1)
    app = sql_app(pg_url, audit=False)
    batch_id = store_batch(app, synthetic(f"agg-sample-{secrets.token_hex(5)}", 5))
    matrix, statements = _recorded(app, batch_id)
    assert_same(build_matrix(rows_of(app, batch_id), batch_id), matrix)
    keys_sql = [s for s in statements if "jsonb_each" in s]
    assert len(keys_sql) == 2 and "LIMIT" in keys_sql[0] and "LIMIT" not in keys_sql[1]


def test_postgres_non_number_after_the_key_sample(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key that holds numbers in the sampled rows and a string (or null) later: the cast
    fails, the savepoint is rolled back and the statement runs again with type tests."""
    monkeypatch.setattr(aggregates, "KEY_SAMPLE_ROWS", 5)
    app = sql_app(pg_url, audit=False)
    results = synthetic(f"agg-late-{secrets.token_hex(5)}", 6)
    for index, r in enumerate(results):
        late: Any = index * 0.5
        if index == len(results) - 1:
            late = "n/a"
        elif index == len(results) - 2:
            late = None
        results[index] = dataclasses.replace(r, metrics={**r.metrics, "late": late})
    batch_id = store_batch(app, results)
    matrix, statements = _recorded(app, batch_id)
    assert_same(build_matrix(rows_of(app, batch_id), batch_id), matrix)
    assert any(s.startswith("ROLLBACK TO SAVEPOINT") for s in statements), statements
    assert all("late" in s.metric_means for s in matrix.stats)


def test_postgres_many_metric_keys_use_jsonb_each(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More distinct keys than MAX_KEY_COLUMNS: the metric means come from jsonb_each in the
    same stats statement (no column per key), still equal to build_matrix's."""
    monkeypatch.setattr(aggregates, "MAX_KEY_COLUMNS", 3)
    app = sql_app(pg_url, audit=False)
    batch_id = store_batch(app, synthetic(f"agg-many-{secrets.token_hex(5)}", 7))
    matrix, statements = _recorded(app, batch_id)
    assert_same(build_matrix(rows_of(app, batch_id), batch_id), matrix)
    stats_sql = [s for s in statements if "percentile_cont" in s]
    assert len(stats_sql) == 1 and "jsonb_each" in stats_sql[0], stats_sql
    assert "cost_usd" not in stats_sql[0]
