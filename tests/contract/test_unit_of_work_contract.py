"""The UnitOfWork checkpoint writes: the same behaviour on every store (memory, SQLite, Postgres).

``start_execution`` stores a new execution with its first checkpoint; ``save_node`` is the
engine's per-node write: a checkpoint, the state values it introduces and the execution's new
head, committed together.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pytest

from wtb_domain import App, ExecutionError, NotFoundError, Source, Status
from wtb_domain.ids import new_id
from wtb_domain.model import Checkpoint, Execution, utcnow
from wtb_domain.state import encode_update


@dataclass
class Node:
    checkpoint: Checkpoint
    new_blobs: dict[str, str]
    execution: Execution


def started(app: App, execution_id: str | None = None) -> tuple[Execution, Checkpoint]:
    """A stored execution whose head is its input checkpoint."""
    execution, cp, new_blobs = unstarted(execution_id)
    with app.uow() as uow:
        uow.start_execution(execution, cp, new_blobs)
    return execution, cp


def unstarted(execution_id: str | None = None) -> tuple[Execution, Checkpoint, dict[str, str]]:
    """A new execution, its input checkpoint and the values it introduces (one no test shares)."""
    execution = Execution(
        id=execution_id or new_id(), workflow_name="contract", workflow_hash="h" * 16
    )
    encoded = encode_update({}, {"x": 1, "tag": uuid.uuid4().hex}, node=None)
    cp = Checkpoint(
        id=new_id(),
        execution_id=execution.id,
        parent_id=None,
        step=0,
        node=None,
        variant=None,
        source=Source.INPUT,
        manifest=encoded.manifest,
        metadata={},
        created_at=execution.created_at,
    )
    execution.head_checkpoint_id = cp.id
    return execution, cp, encoded.new_blobs


def next_node(
    execution: Execution,
    parent: Checkpoint,
    name: str = "a",
    update: Mapping[str, Any] | None = None,
) -> Node:
    """Node ``name`` ran after ``parent``: its checkpoint and the execution moved onto it. The
    node writes ``update``, by default one value no test shares."""
    if update is None:
        update = {"tag": uuid.uuid4().hex}
    encoded = encode_update(parent.manifest, update, node=name)
    cp = Checkpoint(
        id=new_id(),
        execution_id=execution.id,
        parent_id=parent.id,
        step=parent.step + 1,
        node=name,
        variant="default",
        source=Source.NODE,
        manifest=encoded.manifest,
        metadata={"writes": encoded.changed_keys, "totals": {"latency_ms": 1.5}},
        created_at=utcnow(),
    )
    moved = replace(
        execution,
        status=Status.RUNNING,
        head_checkpoint_id=cp.id,
        metrics={"latency_ms": 1.5},
        updated_at=cp.created_at,
    )
    return Node(cp, encoded.new_blobs, moved)


def save(app: App, node: Node) -> None:
    with app.uow() as uow:
        uow.save_node(node.checkpoint, node.new_blobs, node.execution)


def test_start_execution_commits_the_execution_and_its_first_checkpoint(
    app: App, make_app: Callable[[], App]
) -> None:
    execution, cp = started(app)

    with make_app().uow() as uow:
        stored = uow.executions.get(execution.id)
        first = uow.checkpoints.get(cp.id)
    assert stored.head_checkpoint_id == cp.id
    assert stored.workflow_hash == execution.workflow_hash
    assert stored.created_at == execution.created_at
    assert replace(first, state=None) == cp
    assert first.state is not None and first.state["x"] == 1


def test_start_execution_with_many_values(app: App) -> None:
    tag = uuid.uuid4().hex
    execution, cp, new_blobs = unstarted()
    inputs = {f"k{i}": f"{tag}-{i}" for i in range(150)}
    encoded = encode_update(cp.manifest, inputs, node=None)
    cp = replace(cp, manifest=encoded.manifest)
    new_blobs = {**new_blobs, **encoded.new_blobs}

    with app.uow() as uow:
        uow.start_execution(execution, cp, new_blobs)

    with app.uow() as uow:
        state = uow.checkpoints.get(cp.id).state
    assert state is not None and {k: state[k] for k in inputs} == inputs


def test_start_execution_with_an_id_in_use_is_refused_and_writes_nothing(app: App) -> None:
    execution, first = started(app)
    again, other_cp, other_blobs = unstarted(execution.id)

    with app.uow() as uow, pytest.raises(ExecutionError, match="already exists"):
        uow.start_execution(again, other_cp, other_blobs)

    with app.uow() as uow:
        assert uow.executions.get(execution.id).head_checkpoint_id == first.id
        assert [c.id for c in uow.checkpoints.history(execution.id)] == [first.id]
        with pytest.raises(NotFoundError):
            uow.checkpoints.load_values(list(other_blobs))


def test_save_node_commits_checkpoint_values_and_head_together(
    app: App, make_app: Callable[[], App]
) -> None:
    execution, input_cp = started(app)
    node = next_node(execution, input_cp)

    save(app, node)

    other = make_app()
    with other.uow() as uow:
        stored = uow.executions.get(execution.id)
        cp = uow.checkpoints.get(node.checkpoint.id)
        history = uow.checkpoints.history(execution.id)
    assert stored.head_checkpoint_id == node.checkpoint.id
    assert stored.status is Status.RUNNING
    assert stored.metrics == {"latency_ms": 1.5}
    assert stored.updated_at == node.execution.updated_at
    assert replace(cp, state=None) == node.checkpoint
    assert cp.state is not None and cp.state["x"] == 1
    assert [c.id for c in history] == [input_cp.id, node.checkpoint.id]


@pytest.mark.parametrize("values", [0, 3, 150], ids=lambda n: f"{n}-new-values")
def test_save_node_stores_every_new_value(app: App, values: int) -> None:
    execution, input_cp = started(app)
    tag = uuid.uuid4().hex
    update = {f"k{i}": f"{tag}-{i}" for i in range(values)} if values else {"x": 1}
    node = next_node(execution, input_cp, update=update)
    assert len(node.new_blobs) == values

    save(app, node)

    with app.uow() as uow:
        cp = uow.checkpoints.get(node.checkpoint.id)
        assert uow.executions.get(execution.id).head_checkpoint_id == node.checkpoint.id
    assert cp.state is not None
    assert {k: cp.state[k] for k in update} == update


def test_save_node_of_an_unknown_execution_is_not_found_and_writes_nothing(app: App) -> None:
    execution, input_cp = started(app)
    stray = next_node(replace(execution, id=new_id()), input_cp)

    with app.uow() as uow, pytest.raises(NotFoundError, match=stray.execution.id):
        uow.save_node(stray.checkpoint, stray.new_blobs, stray.execution)

    with app.uow() as uow:
        with pytest.raises(NotFoundError):
            uow.checkpoints.get(stray.checkpoint.id)
        with pytest.raises(NotFoundError):
            uow.checkpoints.load_values(list(stray.new_blobs))
        assert uow.checkpoints.history(stray.execution.id) == []


def test_save_node_twice_is_idempotent(app: App) -> None:
    """A retry after an ambiguous commit writes the same node again: a no-op."""
    execution, input_cp = started(app)
    node = next_node(execution, input_cp)

    save(app, node)
    save(app, node)

    with app.uow() as uow:
        history = uow.checkpoints.history(execution.id)
        stored = uow.executions.get(execution.id)
    assert [c.id for c in history] == [input_cp.id, node.checkpoint.id]
    assert stored.head_checkpoint_id == node.checkpoint.id


def test_save_node_in_a_long_unit_of_work_leaves_later_writes_transactional(app: App) -> None:
    """The engine saves node after node on one unit of work; what follows a save is again
    rolled back unless committed."""
    execution, input_cp = started(app)
    first = next_node(execution, input_cp, "a")
    second = next_node(first.execution, first.checkpoint, "b")

    with app.uow() as uow:
        uow.save_node(first.checkpoint, first.new_blobs, first.execution)
        uow.save_node(second.checkpoint, second.new_blobs, second.execution)
        uow.executions.update(replace(second.execution, status=Status.FAILED))

    with app.uow() as uow:
        stored = uow.executions.get(execution.id)
        history = uow.checkpoints.history(execution.id)
    assert stored.status is Status.RUNNING
    assert stored.head_checkpoint_id == second.checkpoint.id
    assert [c.node for c in history] == [None, "a", "b"]


def test_save_node_commits_what_the_unit_of_work_has_pending(app: App) -> None:
    execution, input_cp = started(app)
    node = next_node(execution, input_cp)
    pending = Execution(id=new_id(), workflow_name="contract", workflow_hash="p" * 16)

    with app.uow() as uow:
        uow.executions.add(pending)
        uow.save_node(node.checkpoint, node.new_blobs, node.execution)

    with app.uow() as uow:
        assert uow.executions.get(pending.id).workflow_hash == "p" * 16
        assert uow.executions.get(execution.id).head_checkpoint_id == node.checkpoint.id
