"""Append-only lists are stored as delta blobs (tail + base hash) and read back whole."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from tests.contract.async_workflows import CONVERSATION, REWRITE
from tests.contract.conftest import Backend
from wtb_domain import App, Status
from wtb_domain.adapters.memory_integrity import MemoryIntegrityView
from wtb_domain.adapters.sql.integrity import SqlIntegrityView
from wtb_domain.deltas import MAX_DELTA_CHAIN, delta_base, is_delta


def blobs(backend: Backend, app: App, hashes: set[str]) -> dict[str, str]:
    """The stored data of ``hashes``."""
    if backend.kind == "memory":
        assert backend.memory is not None
        return {h: d for h, d in backend.memory.blobs.items() if h in hashes}
    assert app.database is not None
    with app.database.engine.connect() as conn:
        rows = conn.execute(text("SELECT hash, data FROM wtb_state_blobs")).all()
    return {h: d for h, d in rows if h in hashes}


def expected_messages(tag: str, roles: list[str]) -> list[dict[str, Any]]:
    return [{"role": r, "n": n, "text": f"{tag}-{n:04d}-" + "m" * 160} for n, r in enumerate(roles)]


def message_hashes(app: App, execution_id: str) -> list[str]:
    history = app.controller.history(execution_id)
    return [cp.manifest["messages"] for cp in history if "messages" in cp.manifest]


def test_appended_messages_are_stored_as_bounded_deltas_and_read_back_whole(
    backend: Backend, app: App
) -> None:
    c = app.controller
    tag = uuid.uuid4().hex
    turns = 80
    ex = c.run(CONVERSATION, {"tag": tag, "turns": turns})
    assert ex.status == Status.COMPLETED, ex.error_message

    roles = ["user", "bot"] * (turns // 2)
    # Every checkpoint (time travel) reads back the full list it had.
    for cp in c.history(ex.id)[1:]:
        state = c.checkpoint(cp.id).state or {}
        assert state["messages"] == expected_messages(tag, roles[: cp.step])

    hashes = message_hashes(app, ex.id)
    stored = blobs(backend, app, set(hashes))
    full_snapshots = sum(
        len(json.dumps(expected_messages(tag, roles[:n]), separators=(",", ":")))
        for n in range(1, turns + 1)
    )
    stored_bytes = sum(len(d) for d in stored.values())
    assert stored_bytes * 5 < full_snapshots, (stored_bytes, full_snapshots)
    deltas = [h for h in hashes if is_delta(stored[h])]
    assert len(deltas) > turns * 0.8
    # Each delta's base is the value the checkpoint before had; chains stay bounded.
    for before, after in itertools.pairwise(hashes):
        if is_delta(stored[after]):
            assert delta_base(stored[after]) == before
    depth, longest = 0, 0
    for h in hashes:
        depth = depth + 1 if is_delta(stored[h]) else 0
        longest = max(longest, depth)
    assert longest == MAX_DELTA_CHAIN  # a full value was written again after 32 deltas
    assert max(cp.metadata.get("deltas", {}).get("messages", 0) for cp in c.history(ex.id)) == 32


def test_a_list_that_is_not_an_extension_is_stored_whole(backend: Backend, app: App) -> None:
    c = app.controller
    ex = c.run(REWRITE, {"tag": uuid.uuid4().hex})
    assert ex.status == Status.COMPLETED, ex.error_message
    states = [(c.checkpoint(cp.id).state or {}).get("items") for cp in c.history(ex.id)]
    assert states == [None, [1], [True, 2], ["edited", 2, 3]]
    assert type(states[2][0]) is bool  # type: ignore[index]
    hashes = [cp.manifest["items"] for cp in c.history(ex.id)[1:]]
    assert not any(is_delta(d) for d in blobs(backend, app, set(hashes)).values())


def test_fork_replay_rollback_resume_and_diff_over_deltas(
    backend: Backend, app: App, make_app: Any
) -> None:
    c = app.controller
    tag = uuid.uuid4().hex
    ex = c.run(CONVERSATION, {"tag": tag, "turns": 12}, break_before=["user"])
    # Paused before the second "user": resumed by another app (as after a crash), many times.
    other = make_app().controller
    while (ex := other.resume(ex.id)).status == Status.PAUSED:
        pass
    assert ex.status == Status.COMPLETED, ex.error_message
    roles = ["user", "bot"] * 6
    assert c.state(ex.id)["messages"] == expected_messages(tag, roles)
    history = c.history(ex.id)
    # Resuming carried the chain length on: the last values are deltas of length > 1.
    assert history[-1].metadata["deltas"]["messages"] > 1

    middle = history[6]  # written by the third "bot": the replay reruns it
    replayed = c.replay(middle.id, "bot", "assistant")
    assert replayed.status == Status.COMPLETED, replayed.error_message
    got = [m["role"] for m in c.state(replayed.id)["messages"]]
    assert got == ["user", "bot"] * 2 + ["user", "assistant"] * 4

    fork = c.fork(middle.id, state_patch={"turns": 8})
    assert c.state(fork.id)["messages"] == expected_messages(tag, roles[:8])

    diff = c.diff(history[5].id, history[6].id)
    before, after = diff.changed["messages"]
    assert after[:-1] == before and len(after) == 6

    rolled = c.rollback(history[4].id)
    assert c.state(rolled.id)["messages"] == expected_messages(tag, roles[:4])
    done = c.resume(rolled.id)
    while done.status == Status.PAUSED:
        done = c.resume(rolled.id)
    assert c.state(rolled.id)["messages"] == expected_messages(tag, roles)


@pytest.mark.parametrize("backend", ["memory", "sqlite"], indirect=True)
def test_integrity_checker_counts_delta_bases_as_referenced(backend: Backend, app: App) -> None:
    ex = app.controller.run(CONVERSATION, {"tag": uuid.uuid4().hex, "turns": 10})
    assert ex.status == Status.COMPLETED
    view: Any
    if backend.kind == "memory":
        assert backend.memory is not None
        view = MemoryIntegrityView(backend.memory)
    else:
        assert app.database is not None
        view = SqlIntegrityView(app.database.engine)
    assert view.orphan_blobs() == [] and view.missing_blobs() == []

    hashes = message_hashes(app, ex.id)
    stored = blobs(backend, app, set(hashes))
    last = hashes[-1]
    assert is_delta(stored[last])
    base = delta_base(stored[last])
    if backend.kind == "memory":
        assert backend.memory is not None
        del backend.memory.blobs[base]
    else:
        assert app.database is not None
        with app.database.engine.begin() as conn:
            conn.execute(text("DELETE FROM wtb_state_blobs WHERE hash = :h"), {"h": base})
    missing = view.missing_blobs()
    assert any(p.key == last and base in p.detail for p in missing), missing
