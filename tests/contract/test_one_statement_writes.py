"""Writes sent as one statement (PostgreSQL CTEs, SQLite view triggers) on every store: a
refused write leaves nothing behind -- no checkpoint, no value, no event row -- and a result
set of which part is stored already falls back to storing only the new ones."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.contract.test_claims_contract import foreign
from tests.contract.test_unit_of_work_contract import next_node, save, started
from wtb_domain import App, NotFoundError
from wtb_domain.claims import ExecutionClaimed, ExecutionConflict
from wtb_domain.events import BatchProgressed, Event, NodeCompleted
from wtb_domain.ids import new_id
from wtb_domain.model import BatchResult, BatchTest, Checkpoint


def _event_ids(app: App, execution_id: str) -> set[str | None]:
    with app.uow() as uow:
        return {e.event_id for e in uow.audit.entries(execution_id)}


def _completed(execution_id: str, checkpoint: Checkpoint) -> NodeCompleted:
    """As the engine builds it: the event is its checkpoint (same id and time)."""
    return NodeCompleted(
        execution_id,
        node="a",
        variant="x",
        checkpoint_id=checkpoint.id,
        duration_ms=1.0,
        event_id=checkpoint.id,
        occurred_at=checkpoint.created_at,
    )


def test_a_refused_node_write_leaves_no_checkpoint_value_or_event(
    app: App, make_app: Callable[[], App]
) -> None:
    execution, input_cp = started(app)
    winner = next_node(execution, input_cp, "a")
    loser = next_node(execution, input_cp, "a")
    save(app, winner)
    event = _completed(execution.id, loser.checkpoint)

    with make_app().uow() as uow, pytest.raises(ExecutionConflict):
        uow.record([event])
        uow.save_node(loser.checkpoint, loser.new_blobs, loser.execution)

    with app.uow() as uow:
        with pytest.raises(NotFoundError):
            uow.checkpoints.get(loser.checkpoint.id)
        with pytest.raises(NotFoundError):
            uow.checkpoints.load_values(list(loser.new_blobs))
        assert event.event_id not in {r.event.event_id for r in uow.outbox.pending()}
    assert event.event_id not in _event_ids(app, execution.id)


def test_a_node_write_refused_by_a_live_claim_names_the_owner_and_writes_nothing(
    app: App, make_app: Callable[[], App]
) -> None:
    execution, input_cp = started(app)
    with app.uow() as uow:
        uow.claim_execution(execution, foreign())
    node = next_node(execution, input_cp, "a")
    event = _completed(execution.id, node.checkpoint)

    with make_app().uow() as uow, pytest.raises(ExecutionClaimed, match="elsewhere"):
        uow.record([event])
        uow.save_node(node.checkpoint, node.new_blobs, node.execution)

    with app.uow() as uow:
        assert uow.executions.get(execution.id).head_checkpoint_id == input_cp.id
        with pytest.raises(NotFoundError):
            uow.checkpoints.get(node.checkpoint.id)
        with pytest.raises(NotFoundError):
            uow.checkpoints.load_values(list(node.new_blobs))
    assert event.event_id not in _event_ids(app, execution.id)


def test_an_accepted_node_write_stores_its_events(app: App) -> None:
    execution, input_cp = started(app)
    node = next_node(execution, input_cp, "a")
    event = _completed(execution.id, node.checkpoint)

    with app.uow() as uow:
        uow.record([event])
        uow.save_node(node.checkpoint, node.new_blobs, node.execution)

    assert event.event_id in _event_ids(app, execution.id)


def _result(batch_id: str, repeat: int, score: float) -> BatchResult:
    return BatchResult(
        batch_test_id=batch_id,
        execution_id=f"exec-{batch_id}",
        combination_name="a=x",
        variant_config={"a": "x"},
        case_id="case-0",
        repeat=repeat,
        success=True,
        passed=score > 0.5,
        overall_score=score,
        duration_ms=10.0 * (repeat + 1),
        metrics={"f1": score},
    )


def test_a_result_set_partly_stored_adds_only_the_new_ones(app: App) -> None:
    batch_id = new_id()
    with app.uow() as uow:
        uow.batches.add(BatchTest(id=batch_id, workflow_ref="w:f", spec={}, total=3))
        uow.commit()
    results = [_result(batch_id, i, s) for i, s in enumerate((0.2, 0.6, 1.0))]

    def progressed(n: int) -> list[Event]:
        return [BatchProgressed(batch_id, "case-0", n, 0)]

    with app.uow() as uow:
        assert uow.add_results(results[1:2], progressed)[0] == 1
    with app.uow() as uow:
        recorded, events = uow.add_results(results, progressed)
    assert recorded == 2
    assert [e.recorded for e in events if isinstance(e, BatchProgressed)] == [2]
    with app.uow() as uow:
        assert uow.add_results(results, progressed) == (0, [])
        stored = uow.results.for_batch(batch_id)
        progress = uow.results.progress(batch_id, 3)
        totals = uow.results.combination_totals(batch_id)
    assert sorted(r.repeat for r in stored) == [0, 1, 2]
    assert (progress.done, progress.failed) == (3, 0)
    assert [(t.n, t.n_failed) for t in totals] == [(3, 0)]
    assert totals[0].mean_score == pytest.approx(0.6)
