"""The integrity checks over the memory store (no rollups and no outbox there: skipped)."""

from __future__ import annotations

from dataclasses import replace

from tests.contract.workflows import LINEAR
from wtb_domain import memory_app
from wtb_domain.adapters.memory import MemoryStore
from wtb_domain.adapters.memory_integrity import MemoryIntegrityView
from wtb_domain.integrity import INTERRUPTED, IntegrityChecker
from wtb_domain.model import Status


def test_memory_store_corruptions_are_found_and_dead_runs_interrupted() -> None:
    store = MemoryStore()
    app = memory_app(store, audit=False)
    first = app.controller.run(LINEAR, {"x": 1})
    second = app.controller.run(LINEAR, {"x": 2})
    view = MemoryIntegrityView(store)
    report = IntegrityChecker().run(view)
    assert report.clean
    assert {f.check for f in report.findings if f.skipped} == {"rollups"}

    head = store.checkpoints[first.head_checkpoint_id or ""]
    store.checkpoints[head.id] = replace(head, parent_id="gone")
    store.executions[second.id] = replace(
        store.executions[second.id], head_checkpoint_id=head.id, status=Status.RUNNING
    )
    store.blobs["f00d"] = "1"

    found = {f.check: f for f in IntegrityChecker().run(view, repair=True).findings}
    counts = {name: f.count for name, f in found.items() if f.count}
    assert counts == {
        "checkpoint_parents": 1,
        "execution_heads": 1,
        "orphan_blobs": 1,
        "stuck_running": 1,
    }
    assert (found["stuck_running"].repaired, found["stuck_running"].remaining) == (1, 0)
    assert found["checkpoint_parents"].remaining == 1  # reported only
    repaired = store.executions[second.id]
    assert repaired.status is Status.FAILED and repaired.error_type == INTERRUPTED
