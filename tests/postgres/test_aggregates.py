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
from sqlalchemy import delete, event, func, select

from tests.postgres.conftest import forget_database
from wtb_domain import App, SpecError, StoreError, sql_app
from wtb_domain.adapters.sql import rollups
from wtb_domain.adapters.sql.aggregates import (
    build_matrix_from_inputs,
    inputs_from_rows,
    matrix_for_batch,
    matrix_inputs,
)
from wtb_domain.adapters.sql.repositories import BATCHES, RESULTS
from wtb_domain.adapters.sql.rollups import METRIC_ROLLUPS, ROLLUPS
from wtb_domain.comparison import (
    ComparisonMatrix,
    ResultRow,
    build_matrix,
    combination_totals,
    result_rows,
)
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


@pytest.mark.parametrize("seed", [1, 4])
def test_combination_totals_are_the_matrix_values(store: App, seed: int) -> None:
    """What a batch's end reads instead of the matrix: the same n, failed and mean score
    (exactly, from the same rollups), by name; the in-memory store's agree with build_matrix."""
    batch_id = store_batch(store, synthetic(f"agg-tot-{secrets.token_hex(5)}", seed))
    store_batch(store, synthetic(f"agg-tot-other-{secrets.token_hex(5)}", seed + 1))
    with store.uow() as uow:
        totals = uow.results.combination_totals(batch_id)
        matrix = uow.results.comparison(batch_id, None)
    assert [t.name for t in totals] == sorted(s.name for s in matrix.stats)
    by_name = {s.name: s for s in matrix.stats}
    for t in totals:
        s = by_name[t.name]
        assert (t.n, t.n_failed, t.mean_score) == (s.n, s.n_failed, s.mean_score)
    assert any(t.n_failed for t in totals) and sum(t.n for t in totals) == len(
        rows_of(store, batch_id)
    )
    expected = build_matrix(rows_of(store, batch_id), batch_id).stats
    assert [(s.name, s.n, s.n_failed, s.mean_score) for s in sorted(expected, key=name_of)] == [
        (t.name, t.n, t.n_failed, t.mean_score)
        for t in combination_totals(rows_of(store, batch_id))
    ]
    with store.uow() as uow:
        assert uow.results.combination_totals(store_batch(store, [])) == []


def name_of(stats: Any) -> str:
    return str(stats.name)


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


def _recorded(app: App, batch_id: str) -> tuple[ComparisonMatrix, list[str]]:
    """The matrix and every SQL statement sent to build it."""
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
    return matrix, [s for s in statements if "wtb_" in s]


def test_matrix_reads_rollups_and_the_duration_index_only(store: App) -> None:
    """Three statements whatever the batch size: the case rollups, the metric sums, and the
    duration percentiles read through the (batch, combination, duration) index; no statement
    reads the scores or metrics of the results; bound parameters only."""
    results = synthetic(f"agg-stmts-{secrets.token_hex(5)}", 4)
    batch_id = store_batch(store, results)
    matrix, statements = _recorded(store, batch_id)
    assert len(statements) == 3, statements
    case_sql, metric_sql, percentile_sql = statements
    assert "FROM wtb_result_rollups" in case_sql
    assert "FROM wtb_metric_rollups" in metric_sql and "GROUP BY" in metric_sql
    assert "wtb_batch_test_results.duration_ms" in percentile_sql
    assert "UNION ALL" in percentile_sql and "OFFSET" in percentile_sql
    for column in ("metrics", "overall_score", "success", "case_id"):
        assert f"wtb_batch_test_results.{column}" not in percentile_sql
    for sql in statements:
        assert batch_id not in sql and "cost_usd" not in sql and "retrieve=bm25" not in sql
    assert len(matrix.stats) == 6
    assert_same(build_matrix(rows_of(store, batch_id), batch_id), matrix)


def test_percentiles_at_every_small_size(store: App) -> None:
    """n = 1..12 runs, durations with ties: each lookup end (ascending, descending, the
    last rank) interpolates exactly like comparison.percentile."""
    batch_id = f"agg-pct-{secrets.token_hex(5)}"
    rng = random.Random(11)
    results = []
    for n in range(1, 13):
        for repeat in range(n):
            results.append(
                BatchResult(
                    batch_test_id=batch_id,
                    execution_id=f"{batch_id}-{n}-{repeat}",
                    combination_name=f"n={n:02d}",
                    variant_config={},
                    case_id="case",
                    repeat=repeat,
                    success=True,
                    passed=True,
                    overall_score=0.5,
                    duration_ms=float(rng.choice([1, 2, 2, 3, 5, 8, 13])),
                )
            )
    store_batch(store, results)
    got = {s.name: s for s in sql_matrix(store, batch_id).stats}
    for s in build_matrix(rows_of(store, batch_id), batch_id).stats:
        assert (got[s.name].p50_ms, got[s.name].p95_ms) == (s.p50_ms, s.p95_ms), s.name


def test_rollups_count_each_stored_result_once(store: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resumed batch re-sends results already stored, and a call may hold a leaf twice:
    only the rows really inserted reach the rollups (matrix and progress agree with the
    table), whatever the order and grouping of the inserts."""
    results = synthetic(f"agg-once-{secrets.token_hex(5)}", 8)
    batch_id = results[0].batch_test_id
    with store.uow() as uow:
        uow.batches.add(BatchTest(batch_id, "tests:wf", {}, len(results)))
        uow.commit()
    shuffled = list(results)
    random.Random(3).shuffle(shuffled)
    inserted = 0
    for start in range(0, len(shuffled), 37):
        chunk = shuffled[start : start + 37]
        again = shuffled[max(0, start - 20) : start]  # a resume re-sending the last ones
        with store.uow() as uow:
            inserted += uow.results.add_many(again + chunk + chunk[:3])
            uow.commit()
    assert inserted == len(results)
    with store.uow() as uow:
        progress = uow.results.progress(batch_id, len(results))
    assert (progress.done, progress.failed) == (len(results), sum(not r.success for r in results))
    assert_same(build_matrix(rows_of(store, batch_id), batch_id), sql_matrix(store, batch_id))


def test_rebuild_gives_the_incremental_rollups(store: App) -> None:
    """``rollups.rebuild`` (the migration's backfill) recomputes what the inserts kept."""
    batch_id = store_batch(store, synthetic(f"agg-rebuild-{secrets.token_hex(5)}", 9))
    other = store_batch(store, synthetic(f"agg-rebuild-o-{secrets.token_hex(5)}", 10))

    def snapshot() -> tuple[list[Any], list[Any]]:
        with store.uow() as uow:
            conn = uow.connection  # type: ignore[attr-defined]
            return (
                [tuple(r) for r in conn.execute(select(ROLLUPS).order_by(*ROLLUPS.primary_key))],
                [
                    tuple(r)
                    for r in conn.execute(
                        select(METRIC_ROLLUPS).order_by(*METRIC_ROLLUPS.primary_key)
                    )
                ],
            )

    def rebuild(batch: str | None) -> None:
        with store.uow() as uow:
            rollups.rebuild(uow.connection, batch)  # type: ignore[attr-defined]
            uow.commit()

    kept = snapshot()
    assert kept[0] and kept[1]
    for batch in (batch_id, None):
        rebuild(batch)
        again = snapshot()
        for old_rows, new_rows in zip(kept, again, strict=True):
            assert len(old_rows) == len(new_rows)
            for old, new in zip(old_rows, new_rows, strict=True):
                assert old[:3] == new[:3]
                assert all(
                    close(a, b) if isinstance(a, float) else a == b
                    for a, b in zip(old, new, strict=True)
                ), (old, new)
    assert {r[0] for r in kept[0]} >= {batch_id, other}


def test_deleting_a_batch_deletes_its_rollups(store: App) -> None:
    batch_id = store_batch(store, synthetic(f"agg-del-{secrets.token_hex(5)}", 12))
    with store.uow() as uow:
        conn = uow.connection  # type: ignore[attr-defined]
        conn.execute(delete(BATCHES).where(BATCHES.c.id == batch_id))
        uow.commit()
    with store.uow() as uow:
        conn = uow.connection  # type: ignore[attr-defined]
        for table in (ROLLUPS, METRIC_ROLLUPS):
            count = conn.execute(
                select(func.count()).select_from(table).where(table.c.batch_test_id == batch_id)
            ).scalar_one()
            assert count == 0, table.name


def test_results_deleted_behind_the_rollups_give_a_clear_error(store: App) -> None:
    """Rows removed without their rollups (by hand, a partial restore): the matrix says so
    and how to fix it, and a rebuild makes it right again."""
    results = synthetic(f"agg-stale-{secrets.token_hex(5)}", 13)
    batch_id = store_batch(store, results)
    with store.uow() as uow:
        conn = uow.connection  # type: ignore[attr-defined]
        conn.execute(
            delete(RESULTS).where(
                RESULTS.c.batch_test_id == batch_id, RESULTS.c.combination_name == "c-3"
            )
        )
        uow.commit()
    with pytest.raises(StoreError, match=r"rollups of batch .* do not match .*rebuild"):
        sql_matrix(store, batch_id)
    with store.uow() as uow:
        rollups.rebuild(uow.connection, batch_id)  # type: ignore[attr-defined]
        uow.commit()
    matrix = sql_matrix(store, batch_id)
    assert "c-3" not in {s.name for s in matrix.stats}
    assert_same(build_matrix(rows_of(store, batch_id), batch_id), matrix)
