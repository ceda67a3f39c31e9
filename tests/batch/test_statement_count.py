"""How many SQL statements the batch task sends per result and per node (#13 item 4).

What is counted: every statement a batch task's connections send through a DBAPI cursor while
``run_group`` runs every task group of a batch, with the audit trail and the outbox on (the
default): SQLAlchemy's ``before_cursor_execute`` on the app's engine, an ``executemany`` counted
once. That includes SQLite's ``BEGIN IMMEDIATE``, every read (the spec, the case, the leaves
already done, the cancel probe), the writes of executions, checkpoints, values, results,
rollups, audit entries and outbox rows, and the publisher's marking of published events. Not
counted: COMMIT and ROLLBACK (driver calls, counted apart as ``commits``), psycopg's implicit
``BEGIN`` of a transaction on PostgreSQL (a driver call too; the one-statement node writes run
in autocommit and have none), registering and finishing the batch.

The workload is a variant tree: ``linear3`` with two variants of each of its three nodes (8
leaves per case) over 3 cases, prefix sharing on: 24 results from 42 node runs. Every figure
is printed (``pytest -s``); the bounds are regression guards on what the task sends today, not
timings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from tests.batch import workflows as wf
from wtb_domain import App, sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec

CASES = 3
BOUNDS = {
    # per result, per node (statements)
    "sqlite": (30.0, 17.0),
    "postgresql": (13.0, 7.5),
}


@dataclass
class Counts:
    statements: Counter[str] = field(default_factory=Counter)
    commits: int = 0

    @property
    def total(self) -> int:
        return sum(self.statements.values())


def _spec(batch_id: str) -> BatchSpec:
    return BatchSpec.parse(
        {
            "workflow": wf.LINEAR3,
            "batch_id": batch_id,
            "variants": {node: ["x", "y"] for node in ("a", "b", "c")},
            "cases": [{"id": f"case-{i}", "input": {"q": f"q{i}"}} for i in range(CASES)],
            "evaluators": [{"type": "exact_match"}, {"type": "token_f1"}],
        }
    )


def _run_counted(app: App, batch_id: str) -> tuple[Counts, int, int]:
    """Run every group of a fresh batch; (counts, results stored, node checkpoints)."""
    service = BatchService(app)
    prepared = service.prepare(_spec(batch_id))
    assert app.database is not None
    engine = app.database.engine
    counts = Counts()

    def on_statement(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        counts.statements[" ".join(statement.split())[:80]] += 1

    def on_commit(_conn: Any) -> None:
        counts.commits += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    try:
        outcomes = [
            service.run_group(prepared.payload, g.case_id, list(g.leaf_keys))
            for g in prepared.groups
        ]
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)
    service.finish(batch_id)
    with engine.connect() as conn:
        results = conn.execute(
            text("SELECT count(*) FROM wtb_batch_test_results WHERE batch_test_id = :b"),
            {"b": batch_id},
        ).scalar_one()
        nodes = conn.execute(
            text(
                "SELECT count(*) FROM wtb_checkpoints c JOIN wtb_executions e "
                "ON e.id = c.execution_id WHERE c.source = 'node' "
                "AND CAST(e.labels AS TEXT) LIKE :b"
            ),
            {"b": f'%"{batch_id}"%'},
        ).scalar_one()
    assert sum(o.recorded for o in outcomes) == results == 8 * CASES
    assert sum(o.node_executions for o in outcomes) == nodes
    return counts, int(results), int(nodes)


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wtb.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    built = sql_app(url)  # audit trail and outbox on, as in batch tasks
    yield built
    assert built.database is not None
    built.database.dispose()


def test_statements_per_result_and_per_node(app: App, request: pytest.FixtureRequest) -> None:
    assert app.database is not None
    dialect = app.database.engine.dialect.name
    batch_id = f"count-{dialect}-{request.node.callspec.id}"
    counts, results, nodes = _run_counted(app, batch_id)
    per_result, per_node = counts.total / results, counts.total / nodes
    print(
        f"\n{dialect}: {counts.total} statements, {counts.commits} commits for {results} "
        f"results / {nodes} node runs: {per_result:.2f} statements per result, "
        f"{per_node:.2f} per node ({counts.commits / results:.2f} commits per result)"
    )
    for statement, n in counts.statements.most_common():
        print(f"  {n:4d}  {statement}")
    # Nothing is read back that the task wrote itself: no execution or checkpoint lookups.
    reads = [s for s in counts.statements if s.startswith("SELECT wtb_executions")]
    reads += [s for s in counts.statements if s.startswith("SELECT wtb_checkpoints")]
    reads += [s for s in counts.statements if s.startswith("SELECT wtb_state_blobs")]
    assert reads == [], reads
    # Audit entries and outbox rows: one statement per table per transaction at most.
    audit = sum(n for s, n in counts.statements.items() if "wtb_audit_log" in s)
    assert audit <= counts.commits
    bound_result, bound_node = BOUNDS[dialect]
    assert per_result <= bound_result
    assert per_node <= bound_node
