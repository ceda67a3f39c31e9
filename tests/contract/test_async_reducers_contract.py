"""Async nodes and reducers per state key, on every store (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.contract import async_workflows as aw
from tests.contract.async_workflows import BAD_APPEND, CHAT, MIXED, SLOW
from wtb_domain import App, Status


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    aw.reset()
    yield
    aw.reset()


def states(app: App, execution_id: str) -> list[dict[str, object]]:
    c = app.controller
    return [dict(c.checkpoint(cp.id).state or {}) for cp in c.history(execution_id)]


# --- async nodes -----------------------------------------------------------------------------


def test_async_and_sync_nodes_mix_and_share_one_loop_per_thread(app: App) -> None:
    c = app.controller
    first = c.run(MIXED, {"x": 1})
    second = c.run(MIXED, {"x": 2})

    assert first.status == Status.COMPLETED, first.error_message
    assert c.state(first.id) == {"x": 2, "y": 4, "done": True, "log": ["a", "b", "c:4"]}
    assert c.state(second.id)["log"] == ["a", "b", "c:6"]
    assert first.metrics["tokens"] == 1
    # Four async node runs on this thread, all on the same (reused) event loop.
    assert len(aw.LOOPS) == 4
    assert len(set(aw.LOOPS)) == 1


def test_async_execution_pauses_and_resumes_from_a_second_app(app: App, make_app) -> None:  # type: ignore[no-untyped-def]
    ex = app.controller.run(MIXED, {"x": 1}, break_before=["c"])
    assert ex.status == Status.PAUSED
    assert app.controller.state(ex.id)["log"] == ["a", "b"]

    done = make_app().controller.resume(ex.id)
    assert done.status == Status.COMPLETED, done.error_message
    assert app.controller.state(ex.id)["log"] == ["a", "b", "c:4"]


def test_fork_and_replay_of_async_nodes(app: App) -> None:
    c = app.controller
    ex = c.run(MIXED, {"x": 1})
    after_a = c.history(ex.id)[1]

    fork = c.fork(after_a.id, state_patch={"x": 5})
    assert fork.status == Status.COMPLETED, fork.error_message
    assert c.state(fork.id) == {"x": 5, "y": 10, "done": True, "log": ["a", "b", "c:10"]}

    replayed = c.replay(after_a.id, "a", "plus10")
    assert replayed.status == Status.COMPLETED, replayed.error_message
    assert c.state(replayed.id) == {"x": 11, "y": 22, "done": True, "log": ["a", "b", "c:22"]}
    assert c.state(ex.id)["log"] == ["a", "b", "c:4"]


def test_timed_out_async_node_is_cancelled_and_fails_the_execution(app: App) -> None:
    c = app.controller
    ex = c.run(SLOW, {"x": 1})

    assert ex.status == Status.FAILED
    assert ex.error_type == "TimeoutError"
    assert "'sleepy' exceeded its timeout of 0.2 s" in (ex.error_message or "")
    assert aw.CANCELLED.is_set(), "the coroutine never saw CancelledError"
    assert ex.paused_at == "failed:sleepy"
    assert [cp.node for cp in c.history(ex.id)] == [None, "a"]


# --- reducers ----------------------------------------------------------------------------------


def test_reducers_merge_updates_and_checkpoints_store_the_merged_state(app: App) -> None:
    c = app.controller
    ex = c.run(CHAT, {"turns": 4})

    assert ex.status == Status.COMPLETED, ex.error_message
    roles = [m["role"] for m in c.state(ex.id)["messages"]]
    assert roles == ["user", "bot", "user", "bot"]
    assert c.state(ex.id)["count"] == 4
    seen = states(app, ex.id)
    assert [len(s.get("messages", [])) for s in seen] == [0, 1, 2, 3, 4]
    assert [s.get("count") for s in seen] == [None, 1, 2, 3, 4]
    for before, after in itertools.pairwise(seen[1:]):
        assert after["messages"][:-1] == before["messages"]  # time travel sees merged values


def test_fork_and_replay_continue_from_the_merged_state(app: App) -> None:
    c = app.controller
    ex = c.run(CHAT, {"turns": 4})
    history = c.history(ex.id)
    second = history[2]  # after user, bot

    replayed = c.replay(second.id, "bot", "assistant")
    assert replayed.status == Status.COMPLETED, replayed.error_message
    roles = [m["role"] for m in c.state(replayed.id)["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert c.state(replayed.id)["count"] == 4

    # A patch replaces the value as given; the nodes after it append to the patched list.
    fork = c.fork(second.id, state_patch={"messages": [{"role": "edited", "n": 0}], "turns": 3})
    assert fork.status == Status.COMPLETED, fork.error_message
    roles = [m["role"] for m in c.state(fork.id)["messages"]]
    assert roles == ["edited", "user", "bot"]


def test_append_of_a_non_list_fails_naming_node_and_key(app: App) -> None:
    ex = app.controller.run(BAD_APPEND, {})
    assert ex.status == Status.FAILED
    assert ex.error_type == "StateError"
    message = ex.error_message or ""
    assert "node 'talker'" in message and "key 'messages'" in message and "str" in message
    assert "append" in message


def test_append_onto_a_non_list_input_fails_naming_node_and_key(app: App) -> None:
    ex = app.controller.run(CHAT, {"turns": 2, "messages": "not a list"})
    assert ex.status == Status.FAILED
    assert "node 'user'" in (ex.error_message or "")
    assert "key 'messages'" in (ex.error_message or "")
