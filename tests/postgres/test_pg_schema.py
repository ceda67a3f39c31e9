"""The migrated PostgreSQL schema: JSONB, GIN/BRIN indexes, autovacuum settings, and a matrix
query plan that reads one batch through its index instead of scanning the whole table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.dialects import postgresql

from wtb_domain.adapters.sql.aggregates import (
    PG_SETTINGS,
    _case_means_stmt,
    _pg_local_settings,
    pg_stats_statement,
)
from wtb_domain.adapters.sql.database import Database
from wtb_domain.adapters.sql.tables import Base, JsonType

pytestmark = pytest.mark.postgres

BATCHES = 40
ROWS_PER_BATCH = 2_500
TARGET = "plan-batch-17"
BATCH_INDEXES = {"ix_wtb_results_batch", "ix_wtb_results_batch_score", "uq_wtb_results_leaf"}


@pytest.fixture(scope="module")
def engine(own_pg_url: str) -> Iterator[Engine]:
    db = Database(own_pg_url)  # migrates to head
    db.dispose()
    eng = create_engine(own_pg_url)
    try:
        yield eng
    finally:
        eng.dispose()


def test_json_columns_are_jsonb(engine: Engine) -> None:
    expected = sorted(
        (table.name, col.name)
        for table in Base.metadata.tables.values()
        for col in table.columns
        if col.type is JsonType or type(col.type).__name__ in ("JSON", "JSONB")
    )
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_name LIKE 'wtb_%' AND data_type IN ('json', 'jsonb')"
            )
        ).all()
    assert len(expected) >= 10
    assert sorted((t, c) for t, c, _ in found) == expected
    assert {d for *_, d in found} == {"jsonb"}


def test_gin_and_brin_indexes_exist(engine: Engine) -> None:
    with engine.connect() as conn:
        defs = dict(
            conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes "
                    "WHERE tablename = 'wtb_batch_test_results'"
                )
            ).all()
        )
    assert "USING brin (created_at)" in defs["pgx_wtb_results_created_brin"]
    assert "USING gin (variant_config)" in defs["pgx_wtb_results_variant_gin"]
    assert "USING gin (metrics)" in defs["pgx_wtb_results_metrics_gin"]
    assert "USING btree (batch_test_id)" in defs["ix_wtb_results_batch"]
    assert "USING btree (batch_test_id, overall_score DESC)" in defs["ix_wtb_results_batch_score"]
    assert "UNIQUE" in defs["uq_wtb_results_leaf"]


def test_autovacuum_reloptions_on_insert_heavy_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                text(
                    "SELECT relname, reloptions FROM pg_class WHERE relname IN "
                    "('wtb_batch_test_results', 'wtb_checkpoints', 'wtb_state_blobs')"
                )
            ).all()
        )
    assert len(rows) == 3
    for name, options in rows.items():
        assert set(options or []) >= {
            "autovacuum_vacuum_scale_factor=0.02",
            "autovacuum_analyze_scale_factor=0.01",
            "autovacuum_vacuum_insert_scale_factor=0.05",
        }, name


def _fill(conn: Connection) -> None:
    """40 batches x 2,500 results (100,000 rows) generated in SQL, then ANALYZE."""
    conn.execute(
        text(
            "INSERT INTO wtb_batch_tests (id, name, workflow_ref, spec, status, total, "
            "cancel_requested, created_at, updated_at) "
            "SELECT 'plan-batch-' || b, 'plan', 'x:y', '{}'::jsonb, 'completed', :rows, false, "
            "now(), now() FROM generate_series(0, :batches - 1) b"
        ),
        {"rows": ROWS_PER_BATCH, "batches": BATCHES},
    )
    conn.execute(
        text(
            "INSERT INTO wtb_batch_test_results (batch_test_id, execution_id, combination_name, "
            "variant_config, case_id, repeat, success, passed, metrics, overall_score, "
            "duration_ms, worker_id, error, created_at) "
            "SELECT 'plan-batch-' || (g / :rows), 'e' || g, 'combo-' || (g % 10), "
            "jsonb_build_object('n', 'v' || (g % 10)), 'case-' || ((g / 10) % 250), "
            "(g % :rows) / 2500, random() > 0.05, random() > 0.3, "
            "jsonb_build_object('cost_usd', random() / 100, 'tokens', (random() * 500)::int), "
            "random(), random() * 1000, 'w', NULL, now() "
            "FROM generate_series(0, :total - 1) g"
        ),
        {"rows": ROWS_PER_BATCH, "total": BATCHES * ROWS_PER_BATCH},
    )
    conn.commit()
    conn.execute(text("ANALYZE wtb_batch_tests, wtb_batch_test_results"))
    conn.commit()


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def _explain(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    compiled = stmt.compile(dialect=postgresql.psycopg.dialect())
    raw = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar()
    doc = raw if isinstance(raw, list) else json.loads(raw)
    return list(_plan_nodes(doc[0]["Plan"]))


def test_matrix_query_reads_the_batch_through_its_index(engine: Engine) -> None:
    """With the settings matrix_inputs uses (PG_SETTINGS: no plain index scan, so a bitmap
    scan reads the heap in physical order), one batch of 40 is found through a batch index;
    enable_seqscan stays on: the planner prefers the index on its own."""
    with engine.connect() as conn:
        _fill(conn)
        with _pg_local_settings(conn, PG_SETTINGS):
            assert conn.execute(text("SHOW enable_seqscan")).scalar() == "on"
            plans = {
                "stats": _explain(conn, pg_stats_statement(TARGET)),
                "case means": _explain(conn, _case_means_stmt(TARGET)),
            }
        conn.rollback()
    for name, nodes in plans.items():
        on_results = [n for n in nodes if n.get("Relation Name") == "wtb_batch_test_results"]
        assert on_results, (name, nodes)
        assert not any(n["Node Type"] == "Seq Scan" for n in on_results), (name, on_results)
        used = {n.get("Index Name") for n in nodes if "Index" in n["Node Type"]}
        assert used & BATCH_INDEXES, (name, [n["Node Type"] for n in nodes])
