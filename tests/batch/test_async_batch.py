"""A batch of async nodes runs its task groups in a thread pool, one event loop per thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.contract import async_workflows as aw
from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec


def test_async_nodes_in_thread_pool_task_groups(sqlite_url: str) -> None:
    aw.reset()
    cases = [{"id": f"c{i}", "input": {"x": i}, "expected": {"done": True}} for i in range(4)]
    spec = BatchSpec.parse(
        {
            "batch_id": "async-batch",
            "workflow": aw.MIXED,
            "variants": {"a": ["default", "plus10"]},
            "cases": cases,
            "evaluators": [{"type": "exact_match", "field": "done"}],
            "max_workers": 2,
        }
    )
    service = BatchService(sql_app(sqlite_url, audit=False))
    prepared = service.prepare(spec, workers=2)
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(
            pool.map(
                lambda g: service.run_group(prepared.payload, g.case_id, list(g.leaf_keys)),
                prepared.groups,
            )
        )

    assert len(outcomes) == 4
    assert service.progress("async-batch").done == 8
    app = service.app
    with app.uow() as uow:
        results = uow.results.for_batch("async-batch")
    assert len(results) == 8
    for r in results:
        state = app.controller.state(r.execution_id)
        amount = 10 if r.combination_name.endswith("plus10") else 1
        x = int(r.case_id[1:]) + amount
        assert state["log"] == ["a", "b", f"c:{2 * x}"], (r.combination_name, r.case_id)
    # Every thread that ran async nodes kept one loop for all of them.
    loops_per_thread: dict[int, set[int]] = {}
    for thread, loop in aw.LOOPS:
        loops_per_thread.setdefault(thread, set()).add(loop)
    assert loops_per_thread and all(len(ls) == 1 for ls in loops_per_thread.values())


def test_prefix_sharing_batch_over_delta_stored_messages(sqlite_url: str) -> None:
    """Children forked after the shared "user" node keep appending onto its stored list."""
    cases = [
        {"id": f"c{i}", "input": {"tag": f"t{i}", "turns": 6}, "expected": {"turns": 6}}
        for i in range(2)
    ]
    spec = BatchSpec.parse(
        {
            "batch_id": "conv-batch",
            "workflow": aw.CONVERSATION,
            "variants": {"bot": ["default", "assistant"]},
            "cases": cases,
            "evaluators": [{"type": "exact_match", "field": "turns"}],
            "max_workers": 2,
        }
    )
    service = BatchService(sql_app(sqlite_url, audit=False))
    prepared = service.prepare(spec, workers=2)
    with ThreadPoolExecutor(2) as pool:
        list(
            pool.map(
                lambda g: service.run_group(prepared.payload, g.case_id, list(g.leaf_keys)),
                prepared.groups,
            )
        )
    app = service.app
    with app.uow() as uow:
        results = uow.results.for_batch("conv-batch")
    assert len(results) == 4
    for r in results:
        role = "assistant" if "assistant" in r.combination_name else "bot"
        messages = app.controller.state(r.execution_id)["messages"]
        assert [m["role"] for m in messages] == ["user", role] * 3
        assert [m["n"] for m in messages] == list(range(6))
        history = app.controller.history(r.execution_id)
        assert history[-1].metadata.get("deltas", {}).get("messages", 0) >= 1
