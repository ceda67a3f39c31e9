"""WTB on PostgreSQL: checkpoint overhead vs LangGraph's PostgresSaver, result insert throughput,
and the SQL-aggregated comparison matrix over 1,000,000 result rows.

Run from the repository root (PostgreSQL at ``WTB_BENCH_PG_ADMIN_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``)::

    python bench/postgres.py            # full run (~5-10 min), writes bench/results.md
    python bench/postgres.py --quick    # smaller (200,000-row matrix, fewer executions)

A throwaway database ``wtb_bench_<hex>`` is created for the run and dropped at the end.

Measures:

1. per-node overhead of checkpointing the 10-node linear graph of
   ``bench/checkpoint_overhead.py`` (1 KB and 100 KB states), WTB ``sql_app`` on PostgreSQL vs
   LangGraph with ``PostgresSaver`` (target: WTB <= 0.5x LangGraph);
2. batch-result insert throughput: 500 rows per statement and transaction, and one row per
   transaction;
3. the comparison matrix of one batch of 20 combinations x 50,000 results (1,000,000 rows,
   generated with ``INSERT ... SELECT generate_series``, rollups rebuilt from them), target
   < 300 ms for the query, with the ``EXPLAIN (ANALYZE)`` plans summarised and the load
   average around the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `wtb_domain` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from bench.checkpoint_overhead import (
    NODES,
    SIZES,
    lg_graph,
    linear_workflow,
    make_input,
    run_plain,
)
from bench.common import (
    fmt_ms,
    interleaved_rounds,
    machine_info,
    machine_line,
    markdown_table,
    print_table,
    spread,
    update_results_section,
    verdict,
)
from wtb_domain import sql_app
from wtb_domain.adapters.sql import rollups
from wtb_domain.adapters.sql.aggregates import (
    PERCENTILES,
    PercentileLookup,
    build_matrix_from_inputs,
    matrix_inputs,
    metric_sums_statement,
    percentile_statements,
    rollups_statement,
)
from wtb_domain.adapters.sql.database import PREPARED_ENV, database_for
from wtb_domain.comparison import build_matrix, result_rows
from wtb_domain.model import BatchResult, BatchTest

SECTION = "postgres"
TITLE = "PostgreSQL backend"
ADMIN_URL = os.environ.get(
    "WTB_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RATIO_TARGET = 0.5
WTB_CONTENDERS = {
    "WTB": "WTB sql_app(audit=False)",
    "WTB prepared": f"WTB sql_app(audit=False), {PREPARED_ENV}=on",
}
MATRIX_TARGET_S = 0.300
BATCH_ROWS = 500
COMBINATIONS = 20
CASES = 500
BIG_BATCH = "bench-matrix-big"
SMALL_BATCH = "bench-matrix-small"
SMALL_ROWS = 50_000


@dataclass
class Params:
    executions: int
    warmup: int
    rounds: int
    batched_rows: int
    single_rows: int
    matrix_rows: int
    repeats: int


FULL = Params(150, 15, 10, 50_000, 3_000, 1_000_000, 5)
QUICK = Params(30, 5, 5, 10_000, 1_000, 200_000, 3)


@dataclass
class Results:
    info: dict[str, str]
    params: Params
    quick: bool
    pg: dict[str, str] = field(default_factory=dict)
    overhead: list[list[str]] = field(default_factory=list)
    ratios: list[list[str]] = field(default_factory=list)
    inserts: list[list[str]] = field(default_factory=list)
    matrix: list[list[str]] = field(default_factory=list)
    plans: dict[str, list[list[str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def cells(*values: str) -> list[str]:
    return list(values)


# --------------------------------------------------------------------------- database


@contextmanager
def throwaway_database() -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = f"wtb_bench_{secrets.token_hex(5)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        forget_engines()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def forget_engines() -> None:
    """Close every pooled connection of the apps made so far (new settings need new ones)."""
    from wtb_domain.adapters.sql import database as registry

    for db in list(registry._databases.values()):
        db.dispose()
    registry._databases.clear()


def set_synchronous_commit(url: str, value: str) -> None:
    """``ALTER DATABASE ... SET synchronous_commit``: the server-side durability knob, for
    every new connection of every client (WTB and LangGraph alike)."""
    import psycopg
    from psycopg import sql

    name = make_url(url).database
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET synchronous_commit = {}").format(
                sql.Identifier(name), sql.Literal(value)
            )
        )
    forget_engines()


def server_facts(url: str) -> dict[str, str]:
    engine = create_engine(url)
    names = (
        "server_version",
        "shared_buffers",
        "work_mem",
        "max_connections",
        "max_parallel_workers_per_gather",
        "jit",
        "synchronous_commit",
        "random_page_cost",
    )
    try:
        with engine.connect() as conn:
            return {n: str(conn.execute(text(f"SHOW {n}")).scalar()) for n in names}
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- 1. overhead


class WtbPg:
    def __init__(self, url: str, *, prepared: bool = False) -> None:
        if prepared:  # WTB_PG_PREPARED_STATEMENTS=on, on an engine of its own
            url = f"{url}?application_name=wtb-prepared"
            os.environ[PREPARED_ENV] = "on"
        try:
            self.app = sql_app(url, audit=False)
        finally:
            os.environ.pop(PREPARED_ENV, None)
        self.workflow = linear_workflow(NODES)
        self.last: Any = None

    def __call__(self, item: tuple[int, dict[str, Any]]) -> None:
        self.last = (self.app.controller.run(self.workflow, item[1]), item[1])

    def check(self) -> None:
        execution, inp = self.last
        assert execution.status.value == "completed", execution
        state = self.app.controller.state(execution.id)
        assert state["counter"] == inp["counter"] + NODES
        assert len(self.app.controller.history(execution.id)) == NODES + 1


class LangGraphPg:
    def __init__(self, saver: Any, tag: str) -> None:
        self.graph = lg_graph(NODES, saver)
        self.saver = saver
        self.tag = tag
        self.last: Any = None

    def __call__(self, item: tuple[int, dict[str, Any]]) -> None:
        if self.saver is None:
            self.last = (self.graph.invoke(item[1]), item[1])
            return
        cfg = {"configurable": {"thread_id": f"{self.tag}-{item[0]}"}}
        self.last = (self.graph.invoke(item[1], cfg), item[1])

    def check(self) -> None:
        result, inp = self.last
        assert result["counter"] == inp["counter"] + NODES


def overhead(url: str, p: Params, res: Results) -> None:
    """Both systems with the server's durable default, then both with
    ``synchronous_commit = off`` (commits return before the WAL reaches disk)."""
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
    except ImportError:
        PostgresSaver = None
        res.notes.append("langgraph-checkpoint-postgres is not installed: no comparison.")
    lg_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    for sync in ("on", "off"):
        set_synchronous_commit(url, sync)
        for size_label, size in SIZES.items():
            items = [(k, make_input(size, k)) for k in range(p.warmup + p.executions)]
            with ExitStack() as stack:
                contenders: dict[str, Any] = {"plain": lambda item: run_plain(item[1])}
                contenders["WTB"] = WtbPg(url)
                contenders["WTB prepared"] = WtbPg(url, prepared=True)
                if PostgresSaver is not None:
                    saver = stack.enter_context(PostgresSaver.from_conn_string(lg_url))
                    saver.setup()
                    contenders["lg-plain"] = LangGraphPg(None, "plain")
                    tag = f"{sync}-{size_label}-{secrets.token_hex(3)}"
                    contenders["LangGraph"] = LangGraphPg(saver, tag)
                samples = interleaved_rounds(contenders, items, p.rounds, p.warmup)
                for c in contenders.values():
                    if hasattr(c, "check"):
                        c.check()
            base = statistics.median(samples["plain"])
            wtb_nodes = {}
            for name, label in WTB_CONTENDERS.items():
                wtb = statistics.median(samples[name])
                wtb_nodes[label] = (wtb - base) / NODES
                res.overhead.append(
                    cells(sync, size_label, label, fmt_ms(wtb))
                    + cells(spread(samples[name]), fmt_ms(base), fmt_ms(wtb_nodes[label]))
                )
            if "LangGraph" in samples:
                lg_base = statistics.median(samples["lg-plain"])
                lg = statistics.median(samples["LangGraph"])
                lg_node = (lg - lg_base) / NODES
                res.overhead.append(
                    cells(sync, size_label, "LangGraph PostgresSaver (defaults)", fmt_ms(lg))
                    + cells(spread(samples["LangGraph"]), fmt_ms(lg_base), fmt_ms(lg_node))
                )
                for label, wtb_node in wtb_nodes.items():
                    ratio = wtb_node / lg_node
                    res.ratios.append(
                        cells(sync, size_label, label, fmt_ms(wtb_node), fmt_ms(lg_node))
                        + cells(f"{ratio:.2f}", verdict(ratio <= RATIO_TARGET))
                    )
            print(f"  overhead synchronous_commit={sync} {size_label}: done")
    set_synchronous_commit(url, "on")


# --------------------------------------------------------------------------- 2. inserts


def results_for(batch_id: str, start: int, count: int) -> list[BatchResult]:
    return [
        BatchResult(
            batch_test_id=batch_id,
            execution_id=f"exec-{i}",
            combination_name=f"combo-{i % COMBINATIONS}",
            variant_config={"retrieve": f"r{i % COMBINATIONS}", "answer": "extractive"},
            case_id=f"case-{(i // COMBINATIONS) % CASES}",
            repeat=i // (COMBINATIONS * CASES),
            success=i % 50 != 0,
            passed=i % 3 != 0,
            overall_score=(i % 97) / 97,
            duration_ms=float(i % 1000),
            metrics={"cost_usd": 0.0001 * (i % 13), "tokens": i % 700, "token_f1": 0.5},
            worker_id="bench",
        )
        for i in range(start, start + count)
    ]


def inserts(url: str, p: Params, res: Results) -> None:
    app = sql_app(url, audit=False)
    for label, total, per_tx in (
        (f"batched: {BATCH_ROWS} rows per statement and transaction", p.batched_rows, BATCH_ROWS),
        ("one row per transaction", p.single_rows, 1),
    ):
        batch_id = f"bench-insert-{per_tx}"
        with app.uow() as uow:
            uow.batches.add(BatchTest(batch_id, "bench:wf", {}, total))
            uow.commit()
        chunks = [results_for(batch_id, i, per_tx) for i in range(0, total, per_tx)]
        started = time.perf_counter()
        for chunk in chunks:
            with app.uow() as uow:
                uow.results.add_many(chunk)
                uow.commit()
        elapsed = time.perf_counter() - started
        with app.uow() as uow:
            stored = uow.results.progress(batch_id, total).done
        assert stored == total, (stored, total)
        res.inserts.append(
            cells(label, f"{total:,}", f"{elapsed:.2f}", f"{total / elapsed:,.0f}")
            + cells(fmt_ms(elapsed / len(chunks), 3))
        )
        print(f"  inserts ({per_tx}/tx): {total / elapsed:,.0f} rows/s")


# --------------------------------------------------------------------------- 3. matrix

GENERATE = """
INSERT INTO wtb_batch_test_results (batch_test_id, execution_id, combination_name,
    variant_config, case_id, repeat, success, passed, metrics, overall_score, duration_ms,
    worker_id, error, created_at)
SELECT CAST(:batch AS varchar), 'exec-' || CAST(:batch AS varchar) || '-' || g,
    'retrieve=r' || (g % :combos) || ',answer=a' || (g % :combos % 3),
    jsonb_build_object('retrieve', 'r' || (g % :combos), 'answer', 'a' || (g % :combos % 3)),
    'case-' || ((g / :combos) % :cases), g / (:combos * :cases),
    random() > 0.02, random() > 0.3,
    jsonb_build_object('cost_usd', round((random() * 0.01)::numeric, 6),
        'tokens', (random() * 1000)::int, 'latency_ms', round((random() * 500)::numeric, 3),
        'exact_match', (random() > 0.5)::int, 'token_f1', random()),
    least(1.0, random() * 0.6 + (g % :combos) * 0.02), random() * 1000 + (g % :combos) * 5,
    'bench-worker', NULL, now() - make_interval(secs => :rows - g)
FROM generate_series(0, :rows - 1) g
"""


def generate(conn: Connection, batch: str, rows: int) -> tuple[float, float]:
    """Insert a batch in SQL, then its rollups; returns both times."""
    started = time.perf_counter()
    conn.execute(
        text(
            "INSERT INTO wtb_batch_tests (id, name, workflow_ref, spec, status, total, "
            "cancel_requested, created_at, updated_at) VALUES (:batch, 'bench', 'bench:wf', "
            "'{}'::jsonb, 'completed', :rows, false, now(), now())"
        ),
        {"batch": batch, "rows": rows},
    )
    conn.execute(
        text(GENERATE), {"batch": batch, "rows": rows, "combos": COMBINATIONS, "cases": CASES}
    )
    conn.commit()
    generated = time.perf_counter() - started
    started = time.perf_counter()
    rollups.rebuild(conn, batch)  # what the inserts would have kept, from the rows
    conn.commit()
    return generated, time.perf_counter() - started


def _nodes(plan: dict[str, Any], depth: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    yield depth, plan
    for child in plan.get("Plans", []):
        yield from _nodes(child, depth + 1)


def explain(conn: Connection, stmt: Any) -> tuple[list[list[str]], float]:
    compiled = stmt.compile(dialect=postgresql.psycopg.dialect())
    raw = conn.exec_driver_sql(
        f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {compiled}", compiled.params
    ).scalar()
    doc = raw if isinstance(raw, list) else json.loads(raw)
    rows = []
    for depth, node in _nodes(doc[0]["Plan"]):
        kind = node["Node Type"]
        if kind in ("Hash", "Materialize"):
            continue
        if node.get("Parallel Aware"):
            kind = f"Parallel {kind}"
        if node.get("Partial Mode", "Simple") != "Simple":
            kind = f"{node['Partial Mode']} {kind}"
        if kind.endswith("Aggregate") and node.get("Strategy"):
            kind = f"{kind} ({node['Strategy'].lower()})"
        if "Workers Launched" in node:
            kind = f"{kind} ({node['Workers Launched']} workers)"
        target = node.get("Index Name") or node.get("Relation Name") or node.get("CTE Name") or ""
        if node.get("Function Name"):
            target = f"{node['Function Name']}()"
        if "Heap Fetches" in node:
            target = (
                f"{target} (heap fetches: {node['Heap Fetches'] * node.get('Actual Loops', 1):,})"
            )
        hit = node.get("Shared Hit Blocks", 0)
        read = node.get("Shared Read Blocks", 0)
        rows.append(
            [
                "&nbsp;" * 2 * depth + kind,
                target,
                f"{node.get('Actual Rows', 0) * node.get('Actual Loops', 1):,.0f}",
                f"{node.get('Actual Total Time', 0):,.1f}",
                f"{hit:,} / {read:,}",
            ]
        )
    return rows, float(doc[0]["Execution Time"]) / 1000


def timed(fn: Any, repeats: int) -> tuple[float, list[float]]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), samples


def matrix(url: str, p: Params, res: Results) -> None:
    app = sql_app(url, audit=False)
    db = database_for(url)
    big_rows = p.matrix_rows
    with db.engine.connect() as conn:
        t_big, r_big = generate(conn, BIG_BATCH, big_rows)
        t_small, r_small = generate(conn, SMALL_BATCH, SMALL_ROWS)
    started = time.perf_counter()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("wtb_batch_test_results", "wtb_result_rollups", "wtb_metric_rollups"):
            conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
        pages, visible = conn.exec_driver_sql(
            "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'wtb_batch_test_results'"
        ).one()
    print(f"  generated {big_rows:,} + {SMALL_ROWS:,} rows in {t_big + t_small:.1f} s")
    res.notes.append(
        f"Matrix data: batch `{BIG_BATCH}` = {COMBINATIONS} combinations x "
        f"{big_rows // COMBINATIONS:,} results ({CASES} cases x "
        f"{big_rows // COMBINATIONS // CASES} repeats), plus batch `{SMALL_BATCH}` with "
        f"{SMALL_ROWS:,} rows in the same table; generated in SQL in "
        f"{t_big:.1f} s + {t_small:.1f} s (GIN/BRIN indexes maintained); their rollups "
        f"(which `add_many` keeps as it inserts) computed from the rows by `rollups.rebuild` "
        f"(the migration's backfill) in {r_big:.1f} s + {r_small:.1f} s; then "
        f"`VACUUM (ANALYZE)` of the three tables ({time.perf_counter() - started:.1f} s), "
        "what autovacuum does after inserts at the tables' insert scale factor of 5%; "
        f"afterwards {visible:,} of the results table's {pages:,} pages are all-visible "
        "(the share index-only scans answer without visiting the heap; the shared hits of an "
        "Index Only Scan below count its visibility-map checks, its heap fetches are shown "
        "beside the index). "
        "Metrics per row: 5 numeric JSONB keys."
    )

    def statement_only(stmt: Any) -> Any:
        with app.uow() as uow:
            return uow.connection.execute(stmt).all()  # type: ignore[attr-defined]

    def inputs(batch: str) -> Any:
        with app.uow() as uow:
            return matrix_inputs(uow.connection, batch)  # type: ignore[attr-defined]

    def scan_floor(batch: str, expression: str) -> Any:
        with app.uow() as uow:
            conn = uow.connection  # type: ignore[attr-defined]
            return conn.execute(
                text(f"SELECT {expression} FROM wtb_batch_test_results WHERE batch_test_id = :b"),
                {"b": batch},
            ).scalar()

    def lookups_of(batch: str) -> list[PercentileLookup]:
        got = inputs(batch)
        return [
            PercentileLookup.of(name, q, c.n)
            for name, c in got.combinations.items()
            for q in PERCENTILES
        ]

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for batch, rows in ((BIG_BATCH, big_rows), (SMALL_BATCH, SMALL_ROWS)):
        for expression, label in (
            ("count(*)", "count(*) of the batch (index-only scan floor, default plan)"),
            ("sum(duration_ms)", "sum(duration_ms) of the batch (heap scan floor, default plan)"),
        ):
            floor_t, _ = timed(lambda b=batch, e=expression: scan_floor(b, e), p.repeats)
            res.matrix.append(
                cells(f"{rows:,}", f"[reference] {label}") + cells(fmt_ms(floor_t, 1), "", "")
            )
        lookups = lookups_of(batch)
        steps: list[tuple[str, Any]] = [
            ("case rollups: one row per (combination, case)", rollups_statement(batch)),
            (
                "metric sums: GROUP BY (combination, key) over the metric rollups",
                metric_sums_statement(batch),
            ),
            (
                f"{len(lookups)} percentile lookups (UNION ALL of index-only scans)",
                percentile_statements(batch, lookups)[0],
            ),
        ]
        for label, stmt in steps:
            step_t, _ = timed(lambda st=stmt: statement_only(st), p.repeats)
            res.matrix.append(cells(f"{rows:,}", label, fmt_ms(step_t, 1), "", ""))
        inputs_t, inputs_s = timed(lambda b=batch: inputs(b), p.repeats)
        got = inputs(batch)
        assert sum(c.n for c in got.combinations.values()) == rows
        started = time.perf_counter()
        build_matrix_from_inputs(got, batch)
        build_t = time.perf_counter() - started
        is_big = batch == BIG_BATCH
        res.matrix += [
            [
                f"{rows:,}",
                "**matrix_inputs() total** (the three statements + merging in Python)",
                fmt_ms(inputs_t, 1),
                spread(inputs_s),
                f"{verdict(inputs_t < MATRIX_TARGET_S)}" if is_big else "",
            ],
            [
                f"{rows:,}",
                "build_matrix_from_inputs() in Python (bootstrap CIs, paired tests) [info]",
                fmt_ms(build_t, 1),
                "",
                "",
            ],
        ]
        print(f"  matrix {rows:,}: inputs {inputs_t * 1e3:.0f} ms")
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    res.notes.append(
        f"Load average (1/5/15 min) around the matrix timings: {load_before} before, "
        f"{load_after} after, on {os.cpu_count()} CPUs."
    )

    # The row-by-row path (what the memory store does), on the smaller batch, for context.
    started = time.perf_counter()
    with app.uow() as uow:
        stored = uow.results.for_batch(SMALL_BATCH)
    build_matrix(result_rows(stored), SMALL_BATCH)
    old_t = time.perf_counter() - started
    res.matrix.append(
        cells(f"{SMALL_ROWS:,}", "row path: for_batch() + build_matrix() in Python [info]")
        + cells(fmt_ms(old_t, 1), "", "")
    )

    with db.engine.connect() as conn:
        lookups = lookups_of(BIG_BATCH)
        for label, stmt in (
            ("case rollups", rollups_statement(BIG_BATCH)),
            ("metric sums", metric_sums_statement(BIG_BATCH)),
            ("percentile lookups", percentile_statements(BIG_BATCH, lookups)[0]),
        ):
            plan, took = explain(conn, stmt)
            if label == "percentile lookups" and len(plan) > 12:
                plan = [*plan[:9], ["... (the same for every lookup)", "", "", "", ""]]
            res.plans[f"{label}, batch of {big_rows:,} rows ({took * 1e3:,.1f} ms)"] = plan
            conn.rollback()


# --------------------------------------------------------------------------- report


def markdown(res: Results) -> str:
    p = res.params
    mode = "`--quick`" if res.quick else "full run"
    parts = [
        f"Generated by `python bench/postgres.py{' --quick' if res.quick else ''}` ({mode}).",
        "",
        f"Machine: {machine_line(res.info)}.",
        "",
        "Server: " + "; ".join(f"{k}: {v}" for k, v in res.pg.items()) + ".",
        "",
        "### Per-node checkpoint overhead (PostgreSQL)",
        "",
        f"The {NODES}-node linear graph of `bench/checkpoint_overhead.py` (each node changes a "
        "counter; the state also holds ~1 KB or ~100 KB of documents), on a throwaway database "
        "on the local server. WTB: `sql_app(url, audit=False).controller.run(...)` (psycopg 3; "
        "each node's checkpoint, new values and head move are one autocommit statement, one "
        "round trip and one commit per node). LangGraph: the same node functions in a "
        "`StateGraph` with `PostgresSaver.from_conn_string(url)` (defaults: "
        "`durability='async'`), a fresh `thread_id` per execution; baselines are the plain loop "
        "and the graph without a checkpointer. Both systems run twice: with the server's "
        "default `synchronous_commit = on` (a commit returns once its WAL is on disk), then "
        "with `ALTER DATABASE ... SET synchronous_commit = off` for both (a commit returns "
        "before the WAL flush: a crash of the *server* can lose the last ~0.6 s of commits, "
        "never consistency; a crash of the client loses nothing it was told is committed). "
        f"WTB runs in two configurations: the default (no server-side prepared statements, "
        f"so it works behind PgBouncer in transaction pooling) and `{PREPARED_ENV}=on` "
        "(psycopg prepares the repeated node write on the server; direct connections only). "
        f"{p.warmup} warm-up executions, then {p.executions} in {p.rounds} interleaved rounds; "
        f"overhead per node = (median - baseline) / {NODES}.",
        "",
        markdown_table(
            [
                "synchronous_commit",
                "state",
                "system",
                "ms / execution",
                "round spread (ms)",
                "baseline ms",
                "ms / node",
            ],
            res.overhead,
        ),
        "",
        markdown_table(
            [
                "synchronous_commit",
                "state",
                "WTB configuration",
                "WTB ms/node",
                "LangGraph ms/node",
                f"ratio (target <= {RATIO_TARGET})",
                "verdict",
            ],
            res.ratios,
        ),
        "",
        "### Batch-result insert throughput",
        "",
        "`uow.results.add_many(rows)` + `commit()` per transaction (executemany of "
        "`INSERT ... ON CONFLICT DO NOTHING RETURNING`, then the upserts of the rollups of the "
        "rows inserted); rows carry JSONB `variant_config` and `metrics`, so the GIN indexes "
        "and the BRIN index are maintained on every insert. The rows of a 500-row transaction "
        f"span 25 cases x {COMBINATIONS} combinations, so each one also upserts 500 case rollups "
        "and 1,500 metric rollups (a worst case: a batch task writes one case's results).",
        "",
        markdown_table(
            ["mode", "rows", "seconds", "rows / s", "ms / transaction"],
            res.inserts,
        ),
        "",
        "### Comparison matrix in SQL",
        "",
        "`wtb_domain.adapters.sql.aggregates.matrix_inputs` on a warm cache; medians of "
        f"{p.repeats} runs (spread = min-max). Target: < {MATRIX_TARGET_S * 1e3:.0f} ms for the "
        "query over the big batch. It runs three statements: the batch's case rollups and "
        "metric sums (kept by every result insert, see `wtb_domain/adapters/sql/rollups.py`) "
        "and one `UNION ALL` of exact percentile lookups on the "
        "`(batch_test_id, combination_name, duration_ms)` index; no statement reads the "
        "result rows' scores or metrics.",
        "",
        markdown_table(
            ["rows in batch", "step", "ms (median)", "spread (ms)", "verdict"], res.matrix
        ),
    ]
    for title, plan in res.plans.items():
        parts += [
            "",
            f"**EXPLAIN (ANALYZE, BUFFERS)**: {title}",
            "",
            markdown_table(["node", "index / relation", "rows", "ms", "shared hit / read"], plan),
        ]
    if res.notes:
        parts += ["", "### Notes", "", *[f"- {n}" for n in res.notes]]
    return "\n".join(parts)


def run(args: argparse.Namespace) -> Results:
    p = QUICK if args.quick else FULL
    res = Results(
        machine_info(["sqlalchemy", "psycopg", "langgraph", "langgraph-checkpoint-postgres"]),
        p,
        args.quick,
    )
    started = time.perf_counter()
    with throwaway_database() as url:
        res.pg = server_facts(url)
        sql_app(url, audit=False)  # migrate
        overhead(url, p, res)
        print(f"  [{time.perf_counter() - started:5.1f}s] overhead done")
        inserts(url, p, res)
        print(f"  [{time.perf_counter() - started:5.1f}s] inserts done")
        matrix(url, p, res)
        print(f"  [{time.perf_counter() - started:5.1f}s] matrix done")
    if hasattr(os, "getloadavg"):
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        res.notes.append(
            f"Load average (1/5/15 min) at the end: {load} on {os.cpu_count()} CPUs; the "
            "machine is shared, so absolute times are noisy."
        )
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="smaller run")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/results.md")
    args = ap.parse_args(argv)
    res = run(args)
    print(f"\nMachine: {machine_line(res.info)}")
    print_table(
        "Per-node overhead",
        ["sync", "state", "system", "ms/exec", "spread", "base", "ms/node"],
        res.overhead,
    )
    print_table(
        "WTB / LangGraph",
        ["sync", "state", "WTB config", "WTB", "LG", "ratio", "verdict"],
        res.ratios,
    )
    print_table("Inserts", ["mode", "rows", "s", "rows/s", "ms/tx"], res.inserts)
    print_table("Matrix", ["rows", "step", "ms", "spread", "verdict"], res.matrix)
    for title, plan in res.plans.items():
        print_table(title, ["node", "index/relation", "rows", "ms", "hit/read"], plan)
    if not args.no_write:
        path = update_results_section(SECTION, TITLE, markdown(res))
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
