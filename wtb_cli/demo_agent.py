"""``wtb demo agent``: the shipped LangGraph agent batch, in this process, on recorded replies.

It runs the batch through :class:`BatchService` directly (register, one task group per case,
finish), without a Prefect server, so it takes seconds and needs no network.
"""

from __future__ import annotations

import time

from rich.markup import escape

from wtb_cli.common import app_for, console
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import load_spec
from wtb_domain.errors import RunError
from wtb_domain.ids import new_id
from wtb_domain.langgraph.spec import require_langgraph


def run_agent_demo(fmt: str, db: str | None, prefix_sharing: bool = True) -> None:
    """Run 3 prompt variants x 20 questions and print the matrix and what ran."""
    require_langgraph()
    from wtb_cli.batch import show_matrix
    from wtb_domain.demo.agent import BATCH_PATH

    spec, base_dir = load_spec(BATCH_PATH)
    batch_id = f"demo-agent-{new_id()[:12]}"
    spec = spec.model_copy(update={"batch_id": batch_id, "prefix_sharing": prefix_sharing})
    service = BatchService(app_for(db))
    started = time.perf_counter()
    prepared = service.prepare(spec, base_dir)
    node_runs = 0
    for group in prepared.groups:
        outcome = service.run_group(prepared.payload, group.case_id, list(group.leaf_keys))
        node_runs += outcome.node_executions
    summary = service.finish(batch_id, node_executions=node_runs)
    seconds = time.perf_counter() - started
    if summary.done:
        show_matrix(service.matrix(batch_id), fmt)
    console.print(
        escape(
            f"batch {batch_id}: {summary.status.value} - {summary.done} of {summary.total} "
            f"results, {summary.failed} failed, {node_runs} node runs "
            f"(prefix sharing {'on' if prefix_sharing else 'off'}), {seconds:.1f} s; "
            "model replies are recorded (wtb_domain/demo/agent_responses.json)"
        ),
        highlight=False,
    )
    if summary.failed or summary.done != summary.total:
        raise RunError(f"batch {batch_id} did not complete: {summary.status.value}")
