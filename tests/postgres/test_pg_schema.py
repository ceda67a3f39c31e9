"""The migrated PostgreSQL schema: JSONB, GIN/BRIN indexes, autovacuum settings, and a matrix
query plan that reads one batch through its index instead of scanning the whole table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.dialects import postgresql

from wtb_domain.adapters.sql import rollups
from wtb_domain.adapters.sql.aggregates import (
    PERCENTILES,
    PercentileLookup,
    metric_sums_statement,
    percentile_statements,
    rollups_statement,
)
from wtb_domain.adapters.sql.database import Database
from wtb_domain.adapters.sql.tables import METADATA, JsonType

pytestmark = pytest.mark.postgres

BATCHES = 40
ROWS_PER_BATCH = 2_500
TARGET = "plan-batch-17"
ROLLUP_TABLES = ("wtb_result_rollups", "wtb_metric_rollups")


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
        for table in METADATA.tables.values()
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
    assert "(batch_test_id, combination_name, duration_ms)" in defs["ix_wtb_results_batch_duration"]


def test_autovacuum_reloptions_on_insert_heavy_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                text(
                    "SELECT relname, reloptions FROM pg_class WHERE relname IN "
                    "('wtb_batch_test_results', 'wtb_checkpoints', 'wtb_state_blobs', "
                    "'wtb_result_rollups', 'wtb_metric_rollups')"
                )
            ).all()
        )
    assert len(rows) == 5
    for name, options in rows.items():
        assert set(options or []) >= {
            "autovacuum_vacuum_scale_factor=0.02",
            "autovacuum_analyze_scale_factor=0.01",
            "autovacuum_vacuum_insert_scale_factor=0.05",
        }, name


def _fill(conn: Connection) -> None:
    """40 batches x 2,500 results (100,000 rows) generated in SQL, their rollups rebuilt,
    then VACUUM ANALYZE (what autovacuum does to an insert-mostly table)."""
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
    rollups.rebuild(conn)
    conn.commit()
    with conn.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as vacuum:
        for table in ("wtb_batch_tests", "wtb_batch_test_results", *ROLLUP_TABLES):
            vacuum.execute(text(f"VACUUM ANALYZE {table}"))


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def _explain(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    compiled = stmt.compile(dialect=postgresql.psycopg.dialect())
    raw = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar()
    doc = raw if isinstance(raw, list) else json.loads(raw)
    return list(_plan_nodes(doc[0]["Plan"]))


def test_matrix_statements_use_the_indexes(engine: Engine) -> None:
    """One batch of 40: the rollups are read through their primary keys and each duration
    percentile is an index-only scan of (batch, combination, duration_ms) that stops after
    OFFSET + 2 entries; no statement scans the results table."""
    with engine.connect() as conn:
        _fill(conn)
        counts = dict(
            conn.execute(
                text(
                    "SELECT combination_name, sum(n) FROM wtb_result_rollups "
                    "WHERE batch_test_id = :b GROUP BY combination_name"
                ),
                {"b": TARGET},
            ).all()
        )
        lookups = [
            PercentileLookup.of(name, q, int(n)) for name, n in counts.items() for q in PERCENTILES
        ]
        plans = {
            "case rollups": _explain(conn, rollups_statement(TARGET)),
            "metric rollups": _explain(conn, metric_sums_statement(TARGET)),
            "percentiles": _explain(conn, percentile_statements(TARGET, lookups)[0]),
        }
    assert len(lookups) == 20
    for name, nodes in plans.items():
        assert not any(n["Node Type"] == "Seq Scan" for n in nodes), (name, nodes)
    for name, table in (
        ("case rollups", "wtb_result_rollups"),
        ("metric rollups", "wtb_metric_rollups"),
    ):
        used = {n.get("Index Name") for n in plans[name] if "Index" in n["Node Type"]}
        assert used == {f"{table}_pkey"}, (name, plans[name])
    scans = [n for n in plans["percentiles"] if n.get("Relation Name") == "wtb_batch_test_results"]
    assert len(scans) == len(lookups)
    assert {n["Node Type"] for n in scans} == {"Index Only Scan"}
    assert {n["Index Name"] for n in scans} == {"ix_wtb_results_batch_duration"}
    assert {n.get("Scan Direction") for n in scans} == {"Forward", "Backward"}
