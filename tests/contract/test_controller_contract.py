"""The ExecutionController contract: the same behaviour on every store (memory, SQLite, Postgres).

Workflows come from ``tests/contract/workflows.py`` and are passed by reference, as users do, so
that a second App (or a second process) can load them again on resume.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.contract import workflows
from tests.contract.conftest import Backend
from tests.contract.workflows import (
    BAD_UPDATE,
    BIG_STATE,
    BRANCHING,
    ENDLESS,
    FLAKY,
    LINEAR,
    ROUND_TRIP,
)
from wtb_domain import (
    App,
    Checkpoint,
    ExecutionError,
    ExecutionExists,
    NotFoundError,
    Severity,
    Source,
    StateError,
    Status,
    WorkflowError,
    load_workflow,
    sql_app,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def uid(prefix: str = "ex") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def nodes(history: list[Checkpoint]) -> list[str | None]:
    return [cp.node for cp in history]


def assert_chain(history: list[Checkpoint]) -> None:
    """Each checkpoint's parent is the one before it."""
    for prev, cp in itertools.pairwise(history):
        assert cp.parent_id == prev.id, (prev, cp)


# --- running to the end -------------------------------------------------------------------------


def test_run_to_completion_records_a_checkpoint_per_node(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1})

    assert ex.status == Status.COMPLETED
    assert ex.workflow_name == "linear"
    assert ex.workflow_ref == LINEAR
    final = {"x": 2, "y": 4, "done": True, "trace": ["a", "b", "c"]}
    assert c.state(ex.id) == final

    stored = c.get(ex.id)
    assert stored.status == Status.COMPLETED
    assert stored.created_at.tzinfo is not None
    assert stored.metrics["tokens"] == 3
    assert stored.metrics["cost"] == 0.5

    history = c.history(ex.id)
    assert [cp.step for cp in history] == [0, 1, 2, 3]
    assert [cp.source for cp in history] == [Source.INPUT, Source.NODE, Source.NODE, Source.NODE]
    assert nodes(history) == [None, "a", "b", "c"]
    assert [cp.variant for cp in history] == [None, "default", "default", "default"]
    assert history[0].parent_id is None
    assert_chain(history)
    assert stored.head_checkpoint_id == history[-1].id
    assert all(cp.execution_id == ex.id for cp in history)

    assert c.checkpoint(history[0].id).state == {"x": 1}
    assert c.checkpoint(history[1].id).state == {"x": 2, "trace": ["a"]}
    assert c.checkpoint(history[-1].id).state == final

    expected_writes = {"a": {"x", "trace"}, "b": {"y", "trace"}, "c": {"done", "trace"}}
    for cp in history[1:]:
        meta = cp.metadata
        assert isinstance(meta["duration_ms"], int | float)
        assert meta["duration_ms"] >= 0
        assert meta["metrics"]["tokens"] == 1
        assert set(meta["writes"]) == expected_writes[cp.node]
    assert history[-1].metadata["metrics"]["cost"] == 0.5


@pytest.mark.parametrize(
    ("variant", "x"),
    [("default", 2), ("plus10", 11), ("times", 3)],
    ids=["default", "same-fn-other-params", "other-fn"],
)
def test_selected_variant_changes_the_result(app: App, variant: str, x: int) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1}, variants={"a": variant})

    assert ex.status == Status.COMPLETED
    assert c.get(ex.id).variants == {"a": variant}
    assert c.state(ex.id)["x"] == x
    assert c.state(ex.id)["y"] == 2 * x
    assert c.history(ex.id)[1].variant == variant


def test_unknown_variant_or_node_is_a_workflow_error_naming_it(app: App) -> None:
    c = app.controller
    with pytest.raises(WorkflowError, match="no variant 'nope'") as err:
        c.run(LINEAR, {"x": 1}, variants={"a": "nope"})
    assert "'a'" in str(err.value)
    assert "plus10" in str(err.value)  # lists what exists

    with pytest.raises(WorkflowError, match="no node 'zzz'"):
        c.run(LINEAR, {"x": 1}, variants={"zzz": "default"})
    with pytest.raises(WorkflowError, match="no node 'zzz'"):
        c.run(LINEAR, {"x": 1}, break_before=["zzz"])

    ex = c.run(LINEAR, {"x": 1})
    first = c.history(ex.id)[0]
    with pytest.raises(WorkflowError, match="nope"):
        c.fork(first.id, variant_overrides={"a": "nope"})
    with pytest.raises(WorkflowError, match="nope"):
        c.replay(first.id, "a", "nope")
    with pytest.raises(WorkflowError, match="zzz"):
        c.replay(first.id, "zzz", "default")


# --- routing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "route"), [(1, "small"), (10, "big")])
def test_conditional_edges_route_by_state(app: App, x: int, route: str) -> None:
    c = app.controller
    ex = c.run(BRANCHING, {"x": x})

    assert ex.status == Status.COMPLETED
    assert c.state(ex.id)["route"] == route
    assert nodes(c.history(ex.id)) == [None, "classify", route]


def test_router_answer_without_target_fails_the_execution(app: App) -> None:
    c = app.controller
    ex = c.run(BRANCHING, {"x": "weird"})

    assert ex.status == Status.FAILED
    assert ex.error_type == "WorkflowError"
    assert "sideways" in (ex.error_message or "")
    assert nodes(c.history(ex.id)) == [None, "classify"]


def test_cycle_is_bounded_by_max_steps(app: App) -> None:
    c = app.controller
    ex = c.run(ENDLESS, {})

    assert ex.status == Status.FAILED
    assert ex.error_type == "WorkflowError"
    assert "max_steps" in (ex.error_message or "")
    history = c.history(ex.id)
    assert len(history) == 1 + workflows.ENDLESS_MAX_STEPS
    assert c.state(ex.id) == {"n": workflows.ENDLESS_MAX_STEPS}
    assert c.get(ex.id).status == Status.FAILED


# --- breakpoints and stepping -------------------------------------------------------------------


def test_break_before_pauses_before_the_node_and_resume_finishes(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1}, break_before=["b"])

    assert ex.status == Status.PAUSED
    assert ex.paused_at == "before:b"
    assert c.get(ex.id).paused_at == "before:b"
    assert nodes(c.history(ex.id)) == [None, "a"]
    assert "y" not in c.state(ex.id)

    done = c.resume(ex.id)
    assert done.status == Status.COMPLETED
    assert nodes(c.history(ex.id)) == [None, "a", "b", "c"]
    assert_chain(c.history(ex.id))
    assert c.state(ex.id)["y"] == 4


def test_break_before_the_entry_node_runs_nothing(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1}, break_before=["a"])

    assert ex.status == Status.PAUSED
    assert ex.paused_at == "before:a"
    assert nodes(c.history(ex.id)) == [None]
    assert c.resume(ex.id).status == Status.COMPLETED


def test_break_after_pauses_after_the_node(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1}, break_after=["b"])

    assert ex.status == Status.PAUSED
    assert ex.paused_at == "after:b"
    assert nodes(c.history(ex.id)) == [None, "a", "b"]
    assert c.state(ex.id)["y"] == 4
    assert "done" not in c.state(ex.id)

    assert c.resume(ex.id).status == Status.COMPLETED
    assert nodes(c.history(ex.id)) == [None, "a", "b", "c"]


def test_step_runs_exactly_one_node_at_a_time(app: App) -> None:
    c = app.controller
    ex = c.create(LINEAR, {"x": 1})
    assert nodes(c.history(ex.id)) == [None]

    for expected in ["a", "b", "c"]:
        before = len(c.history(ex.id))
        stepped = c.step(ex.id)
        history = c.history(ex.id)
        assert len(history) == before + 1
        assert history[-1].node == expected
        if stepped.status != Status.COMPLETED:
            assert stepped.status == Status.PAUSED
    # Nothing is left to run: the next step (if any is needed) completes without a node.
    if c.get(ex.id).status != Status.COMPLETED:
        assert c.step(ex.id).status == Status.COMPLETED
    assert nodes(c.history(ex.id)) == [None, "a", "b", "c"]
    assert c.state(ex.id)["done"] is True


def test_step_from_a_breakpoint_runs_only_that_node(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1}, break_before=["b"])
    stepped = c.step(ex.id)

    assert stepped.status == Status.PAUSED
    assert nodes(c.history(ex.id)) == [None, "a", "b"]


def test_paused_execution_resumes_from_a_second_app(app: App, make_app: Callable[[], App]) -> None:
    ex = app.controller.run(LINEAR, {"x": 1}, break_before=["b"])

    other = make_app()
    assert other is not app
    assert other.controller.get(ex.id).status == Status.PAUSED
    done = other.controller.resume(ex.id)

    assert done.status == Status.COMPLETED
    assert app.controller.get(ex.id).status == Status.COMPLETED
    assert app.controller.state(ex.id) == {"x": 2, "y": 4, "done": True, "trace": ["a", "b", "c"]}
    assert_chain(app.controller.history(ex.id))


RESUME_SCRIPT = """
import json, sys
from wtb_domain import sql_app
app = sql_app(sys.argv[1])
ex = app.controller.resume(sys.argv[2])
print(json.dumps({"status": ex.status.value, "state": app.controller.state(ex.id)}))
"""


def test_paused_execution_resumes_in_a_new_process_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/wtb.db"
    app = sql_app(url)
    try:
        ex = app.controller.run(LINEAR, {"x": 1}, break_before=["b"])
        assert ex.status == Status.PAUSED

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        proc = subprocess.run(
            [sys.executable, "-c", RESUME_SCRIPT, url, ex.id],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        final = {"x": 2, "y": 4, "done": True, "trace": ["a", "b", "c"]}
        assert out == {"status": "completed", "state": final}

        # ... and this process sees what the other one wrote.
        assert app.controller.get(ex.id).status == Status.COMPLETED
        assert app.controller.state(ex.id) == final
        assert nodes(app.controller.history(ex.id)) == [None, "a", "b", "c"]
    finally:
        assert app.database is not None
        app.database.dispose()


# --- failures -----------------------------------------------------------------------------------


def test_node_error_fails_the_execution_and_keeps_the_last_good_checkpoint(app: App) -> None:
    c = app.controller
    ex = c.run(FLAKY, {"explode": True})

    assert ex.status == Status.FAILED
    stored = c.get(ex.id)
    assert stored.status == Status.FAILED
    assert stored.error_type == "RuntimeError"
    assert "boom exploded as asked" in (stored.error_message or "")
    assert "RuntimeError" in (stored.error_traceback or "")
    assert "in boom" in (stored.error_traceback or "")  # the frame of the failing node

    history = c.history(ex.id)
    assert nodes(history) == [None, "prepare"]
    assert stored.head_checkpoint_id == history[-1].id
    assert c.state(ex.id) == {"explode": True, "prepared": True}

    fixed = c.fork(stored.head_checkpoint_id, state_patch={"explode": False})
    assert fixed.status == Status.COMPLETED
    assert c.state(fixed.id) == {
        "explode": False,
        "prepared": True,
        "boomed": True,
        "after": True,
    }
    assert c.get(ex.id).status == Status.FAILED  # the original stays as it was


def test_failed_execution_resumes_after_the_node_is_fixed(app: App) -> None:
    c = app.controller
    workflows.BROKEN.add("boom")
    ex = c.run(FLAKY, {})
    assert ex.status == Status.FAILED

    workflows.BROKEN.clear()  # "deploy the fix"; the graph is unchanged
    done = c.resume(ex.id)

    assert done.status == Status.COMPLETED
    stored = c.get(ex.id)
    assert stored.error_type is None
    assert stored.error_message is None
    history = c.history(ex.id)
    assert nodes(history) == [None, "prepare", "boom", "after"]
    assert_chain(history)
    assert c.state(ex.id) == {"prepared": True, "boomed": True, "after": True}


@pytest.mark.parametrize("kind", ["set", "object", "nan"])
def test_non_json_update_fails_with_state_error_naming_node_and_key(app: App, kind: str) -> None:
    c = app.controller
    ex = c.run(BAD_UPDATE, {"keep": 1}, variants={"emit": kind})

    assert ex.status == Status.FAILED
    stored = c.get(ex.id)
    assert stored.error_type == "StateError"
    message = stored.error_message or ""
    assert "'emit'" in message
    assert "'value'" in message
    history = c.history(ex.id)
    assert nodes(history) == [None]
    assert c.state(ex.id) == {"keep": 1}


@pytest.mark.parametrize(
    "value",
    [{1, 2}, workflows.Opaque(), math.nan],
    ids=["set", "object", "nan"],
)
def test_non_json_input_is_a_state_error_at_run(app: App, value: Any) -> None:
    c = app.controller
    execution_id = uid()
    with pytest.raises(StateError, match="'bad'"):
        c.run(LINEAR, {"x": 1, "bad": value}, execution_id=execution_id)
    with pytest.raises(NotFoundError):
        c.get(execution_id)


# --- time travel --------------------------------------------------------------------------------


def test_rollback_moves_the_head_and_resume_starts_a_new_branch(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1})
    history = c.history(ex.id)
    after_a = history[1]

    rolled = c.rollback(after_a.id)
    assert rolled.id == ex.id
    assert rolled.head_checkpoint_id == after_a.id
    assert rolled.status == Status.PAUSED
    assert c.get(ex.id).head_checkpoint_id == after_a.id
    assert c.state(ex.id) == {"x": 2, "trace": ["a"]}
    assert [cp.id for cp in c.history(ex.id)] == [cp.id for cp in history]  # nothing deleted
    assert c.checkpoint(history[-1].id).state == {
        "x": 2,
        "y": 4,
        "done": True,
        "trace": ["a", "b", "c"],
    }

    done = c.resume(ex.id)
    assert done.status == Status.COMPLETED
    branched = c.history(ex.id)
    assert [cp.id for cp in branched[: len(history)]] == [cp.id for cp in history]
    new = branched[len(history) :]
    assert nodes(new) == ["b", "c"]
    assert new[0].parent_id == after_a.id
    assert new[1].parent_id == new[0].id
    assert c.get(ex.id).head_checkpoint_id == new[-1].id
    assert c.state(ex.id) == {"x": 2, "y": 4, "done": True, "trace": ["a", "b", "c"]}


def test_metrics_follow_the_lineage_through_rollback_and_fork(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1})
    history = c.history(ex.id)
    assert c.get(ex.id).metrics["tokens"] == 3

    c.rollback(history[1].id)
    assert c.get(ex.id).metrics.get("tokens") == 1
    c.resume(ex.id)
    assert c.get(ex.id).metrics["tokens"] == 3

    fork = c.fork(history[2].id, run=False)
    assert c.get(fork.id).metrics.get("tokens") == 2
    fork_of_fork = c.fork(c.history(fork.id)[0].id)
    assert c.get(fork_of_fork.id).metrics["tokens"] == 3


def test_fork_patches_state_overrides_variants_and_leaves_the_original(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1})
    original = c.get(ex.id)
    history = c.history(ex.id)
    after_a = history[1]

    fork = c.fork(after_a.id, state_patch={"x": 100}, variant_overrides={"b": "triple"})

    assert fork.id != ex.id
    assert fork.status == Status.COMPLETED
    assert fork.parent_execution_id == ex.id
    assert fork.forked_from_checkpoint_id == after_a.id
    assert c.get(fork.id).variants == {"b": "triple"}
    assert c.state(fork.id) == {"x": 100, "y": 300, "done": True, "trace": ["a", "b", "c"]}

    fork_history = c.history(fork.id)
    first = fork_history[0]
    assert first.source == Source.FORK
    assert first.parent_id == after_a.id
    assert first.execution_id == fork.id
    assert c.checkpoint(first.id).state == {"x": 100, "trace": ["a"]}
    assert nodes(fork_history[1:]) == ["b", "c"]
    assert fork_history[1].variant == "triple"
    assert_chain(fork_history)

    # The original execution is untouched.
    assert c.get(ex.id).status == Status.COMPLETED
    assert c.get(ex.id).head_checkpoint_id == original.head_checkpoint_id
    assert [cp.id for cp in c.history(ex.id)] == [cp.id for cp in history]
    assert c.state(ex.id) == {"x": 2, "y": 4, "done": True, "trace": ["a", "b", "c"]}


def test_fork_recomputes_routing_from_the_patched_state(app: App) -> None:
    c = app.controller
    ex = c.run(BRANCHING, {"x": 1})
    assert c.state(ex.id)["route"] == "small"
    after_classify = c.history(ex.id)[1]

    fork = c.fork(after_classify.id, state_patch={"x": 50})

    assert fork.status == Status.COMPLETED
    assert c.state(fork.id)["route"] == "big"
    assert nodes(c.history(fork.id)[1:]) == ["big"]
    assert c.state(ex.id)["route"] == "small"


def test_fork_from_the_input_checkpoint_with_another_variant(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1})
    fork = c.fork(c.history(ex.id)[0].id, variant_overrides={"a": "plus10"})

    assert fork.status == Status.COMPLETED
    assert c.state(fork.id)["x"] == 11
    assert nodes(c.history(fork.id)[1:]) == ["a", "b", "c"]


def test_fork_without_run_stays_paused_until_resumed(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1})
    after_a = c.history(ex.id)[1]

    fork = c.fork(after_a.id, state_patch={"x": 5}, run=False)
    assert fork.status == Status.PAUSED
    assert c.get(fork.id).status == Status.PAUSED
    assert len(c.history(fork.id)) == 1
    assert c.state(fork.id) == {"x": 5, "trace": ["a"]}

    done = c.resume(fork.id)
    assert done.status == Status.COMPLETED
    assert c.state(fork.id)["y"] == 10


@pytest.mark.parametrize("given", ["before", "written"])
def test_replay_reruns_the_node_with_a_variant_and_everything_after(app: App, given: str) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1})
    history = c.history(ex.id)
    start = history[0] if given == "before" else history[1]  # a runs after [0], writes [1]

    replayed = c.replay(start.id, "a", "times")

    assert replayed.id != ex.id
    assert replayed.status == Status.COMPLETED
    assert replayed.parent_execution_id == ex.id
    assert c.get(replayed.id).variants == {"a": "times"}
    assert c.state(replayed.id) == {"x": 3, "y": 6, "done": True, "trace": ["a", "b", "c"]}
    rh = c.history(replayed.id)
    assert rh[0].source == Source.FORK
    assert rh[0].parent_id == history[0].id
    assert nodes(rh[1:]) == ["a", "b", "c"]
    assert rh[1].variant == "times"
    assert c.state(ex.id)["x"] == 2


@pytest.mark.parametrize("given", ["before", "written"])
def test_replay_a_middle_node(app: App, given: str) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1})
    history = c.history(ex.id)
    start = history[1] if given == "before" else history[2]  # b runs after [1], writes [2]

    replayed = c.replay(start.id, "b", "triple")

    assert replayed.status == Status.COMPLETED
    assert c.state(replayed.id) == {"x": 2, "y": 6, "done": True, "trace": ["a", "b", "c"]}
    rh = c.history(replayed.id)
    assert rh[0].parent_id == history[1].id
    assert nodes(rh[1:]) == ["b", "c"]


def test_diff_lists_added_removed_and_changed_keys(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1, "note": "kept"})
    history = c.history(ex.id)
    first, last = history[0], history[-1]

    forward = c.diff(first.id, last.id)
    assert forward.added == {"y": 4, "done": True, "trace": ["a", "b", "c"]}
    assert forward.removed == {}
    assert forward.changed == {"x": (1, 2)}
    assert not forward.empty

    backward = c.diff(last.id, first.id)
    assert set(backward.removed) == {"y", "done", "trace"}
    assert backward.added == {}
    assert backward.changed == {"x": (2, 1)}

    assert c.diff(history[1].id, history[1].id).empty


def test_resuming_a_completed_execution_is_an_execution_error(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1})
    with pytest.raises(ExecutionError, match=ex.id):
        c.resume(ex.id)
    with pytest.raises(ExecutionError):
        c.step(ex.id)


UNKNOWN_ID_CALLS: dict[str, Callable[[Any, str], Any]] = {
    "get": lambda c, i: c.get(i),
    "resume": lambda c, i: c.resume(i),
    "step": lambda c, i: c.step(i),
    "state": lambda c, i: c.state(i),
    "history": lambda c, i: c.history(i),
    "checkpoint": lambda c, i: c.checkpoint(i),
    "rollback": lambda c, i: c.rollback(i),
    "fork": lambda c, i: c.fork(i),
    "replay": lambda c, i: c.replay(i, "a", "plus10"),
    "diff": lambda c, i: c.diff(i, i),
}


@pytest.mark.parametrize("call", list(UNKNOWN_ID_CALLS))
def test_unknown_ids_are_not_found_errors(app: App, call: str) -> None:
    with pytest.raises(NotFoundError):
        UNKNOWN_ID_CALLS[call](app.controller, uid("missing"))


# --- audit trail --------------------------------------------------------------------------------


def audit_types(app: App, execution_id: str, level: Severity = Severity.INFO) -> list[str]:
    with app.uow() as uow:
        return [e.event_type for e in uow.audit.entries(execution_id, min_severity=level)]


def test_audit_trail_lists_execution_events(app: App) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1}, break_before=["b"])
    c.resume(ex.id)
    assert audit_types(app, ex.id) == [
        "execution_started",
        "execution_paused",
        "execution_resumed",
        "execution_completed",
    ]
    with app.uow() as uow:
        entries = uow.audit.entries(ex.id)
    assert all(e.execution_id == ex.id for e in entries)
    # Node runs are DEBUG entries, with their node, in order with the execution's entries.
    assert audit_types(app, ex.id, Severity.DEBUG) == [
        "execution_started",
        "node_completed",
        "execution_paused",
        "execution_resumed",
        "node_completed",
        "node_completed",
        "execution_completed",
    ]
    assert [e.node for e in entries if e.event_type == "node_completed"] == ["a", "b", "c"]
    assert {e.severity for e in entries} == {Severity.DEBUG, Severity.INFO, Severity.SUCCESS}

    first_node = c.history(ex.id)[1]
    c.rollback(first_node.id)
    assert audit_types(app, ex.id)[-1] == "execution_rolled_back"

    fork = c.fork(first_node.id, state_patch={"x": 7})
    assert audit_types(app, fork.id) == ["execution_forked", "execution_completed"]

    failed = c.run(FLAKY, {"explode": True})
    assert audit_types(app, failed.id) == ["execution_started", "node_failed", "execution_failed"]
    assert audit_types(app, failed.id, Severity.ERROR) == ["node_failed", "execution_failed"]
    with app.uow() as uow:
        failure = uow.audit.entries(failed.id)[-1]
    assert "boom" in failure.message


# --- content addressing -------------------------------------------------------------------------


def blob_stats(backend: Backend, app: App) -> tuple[int, int]:
    """(number of stored state values, their total encoded size) for the backend's store."""
    if backend.kind == "memory":
        assert backend.memory is not None
        blobs = backend.memory.blobs
        return len(blobs), sum(len(v) for v in blobs.values())
    assert app.database is not None
    with app.database.engine.connect() as conn:
        count, size = conn.execute(
            text("SELECT count(*), coalesce(sum(size), 0) FROM wtb_state_blobs")
        ).one()
    return int(count), int(size)


def test_unchanged_large_values_are_stored_once(backend: Backend, app: App) -> None:
    c = app.controller
    tag = uuid.uuid4().hex  # unique content: the PostgreSQL database is shared by tests
    docs = [f"{tag}-{i:05d}-" + "x" * 90 for i in range(1000)]
    docs_size = len(json.dumps(docs, separators=(",", ":")))
    assert docs_size > 100_000

    count0, size0 = blob_stats(backend, app)
    ex = c.run(BIG_STATE, {"docs": docs, "counter": 0})
    count1, size1 = blob_stats(backend, app)

    assert ex.status == Status.COMPLETED
    assert c.state(ex.id) == {"docs": docs, "counter": 3}
    # docs once, plus at most one small value per checkpoint (counter 0..3).
    assert docs_size <= size1 - size0 < docs_size + 1_000
    assert count1 - count0 <= 5

    # Forking with a patch of another key does not copy docs either.
    fork = c.fork(c.history(ex.id)[1].id, state_patch={"counter": 1000})
    count2, size2 = blob_stats(backend, app)
    assert c.state(fork.id)["docs"] == docs
    assert size2 - size1 < 1_000
    assert count2 - count1 <= 4


# --- workflow identity --------------------------------------------------------------------------


def test_resume_with_a_changed_workflow_is_a_workflow_error(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = app.controller
    ex = c.run(LINEAR, {"x": 1}, break_before=["b"])

    monkeypatch.setattr(workflows, "linear", workflows.linear_changed)
    with pytest.raises(WorkflowError, match="changed"):
        c.resume(ex.id)
    assert c.get(ex.id).status == Status.PAUSED
    assert nodes(c.history(ex.id)) == [None, "a"]

    changed = load_workflow(LINEAR)
    with pytest.raises(WorkflowError, match="changed"):
        c.resume(ex.id, workflow=changed)

    monkeypatch.undo()
    assert c.resume(ex.id).status == Status.COMPLETED


def test_execution_started_from_an_object_needs_the_workflow_to_resume(app: App) -> None:
    c = app.controller
    wf = workflows.linear()  # a Workflow object, not a reference
    ex = c.run(wf, {"x": 1}, break_before=["b"])

    with pytest.raises(WorkflowError, match="workflow="):
        c.resume(ex.id)
    assert c.resume(ex.id, workflow=wf).status == Status.COMPLETED


# --- determinism --------------------------------------------------------------------------------


def test_resumed_run_gives_the_same_state_as_a_straight_run(app: App) -> None:
    """A node must see the same state whether or not the run was paused before it.

    ``produce`` returns a tuple and a dict with an int key; the store keeps them as JSON (a list
    and a str key). ``consume`` records what it saw.
    """
    c = app.controller
    straight = c.run(ROUND_TRIP, {})
    paused = c.run(ROUND_TRIP, {}, break_after=["produce"])
    resumed = c.resume(paused.id)

    assert straight.status == resumed.status == Status.COMPLETED
    assert c.state(straight.id) == c.state(resumed.id)


def test_replay_never_silently_skips_the_node(app: App) -> None:
    """From a checkpoint after which the node does not run, replay must not report success.

    Either it refuses (WorkflowError), or the replayed execution really ran the node with the
    variant. Here: the checkpoint written by the last node, asking to replay the first one.
    """
    c = app.controller
    ex = c.run(LINEAR, {"x": 1})
    last = c.history(ex.id)[-1]

    try:
        replayed = c.replay(last.id, "a", "times")
    except WorkflowError as exc:
        assert "'a'" in str(exc)
        return
    ran = [(cp.node, cp.variant) for cp in c.history(replayed.id) if cp.source == Source.NODE]
    assert ("a", "times") in ran, f"replay of 'a' completed without running it: {ran}"


# --- store edge cases ---------------------------------------------------------------------------


def test_execution_id_already_in_use_is_refused(app: App) -> None:
    """An explicit execution id that exists must not overwrite (or merge into) that execution."""
    c = app.controller
    execution_id = uid()
    first = c.run(LINEAR, {"x": 1}, execution_id=execution_id)
    assert first.id == execution_id
    before = [cp.id for cp in c.history(execution_id)]

    with pytest.raises(ExecutionExists, match=execution_id):
        c.run(LINEAR, {"x": 5}, execution_id=execution_id)
    source = c.history(execution_id)[0].id
    with pytest.raises(ExecutionExists, match=execution_id):  # a fork onto a used id too
        c.fork(source, {"x": 7}, execution_id=execution_id)

    assert c.checkpoint(c.history(execution_id)[0].id).state == {"x": 1}
    assert [cp.id for cp in c.history(execution_id)] == before
    assert c.state(execution_id)["x"] == 2


def test_text_with_a_nul_character_round_trips(app: App) -> None:
    """Scraped text can hold U+0000; every store must keep it (input and node output)."""
    c = app.controller
    ex = c.run(LINEAR, {"x": 1, "text": "before\x00after"})

    assert ex.status == Status.COMPLETED
    assert c.state(ex.id)["text"] == "before\x00after"
    assert c.checkpoint(c.history(ex.id)[0].id).state == {"x": 1, "text": "before\x00after"}


def test_update_state_edits_a_paused_execution_in_place(app: App) -> None:
    """update_state writes a `source=update` checkpoint after the head; resume sees the edit."""
    c = app.controller
    paused = c.run(LINEAR, {"x": 1}, break_before=["b"])
    head_before = paused.head_checkpoint_id
    edited = c.update_state(paused.id, {"x": 100})
    assert edited.id == paused.id
    cp = c.checkpoint(edited.head_checkpoint_id or "")
    assert cp.source.value == "update"
    assert cp.parent_id == head_before
    assert cp.state is not None and cp.state["x"] == 100
    done = c.resume(paused.id, LINEAR)
    assert done.status.value == "completed"
    assert [h.source.value for h in c.history(paused.id)][:4] == ["input", "node", "update", "node"]


def test_update_state_refuses_a_completed_execution(app: App) -> None:
    c = app.controller
    done = c.run(LINEAR, {"x": 1})
    with pytest.raises(ExecutionError, match="fork"):
        c.update_state(done.id, {"x": 2})
