"""Edges of WtbCheckpointSaver the conformance suite does not pin down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")

from langgraph.checkpoint.base import empty_checkpoint
from sqlalchemy import func, select

from wtb_domain.adapters.sql.database import Database
from wtb_domain.adapters.sql.repositories import CHECKPOINTS
from wtb_domain.errors import SpecError
from wtb_domain.langgraph.saver import WtbCheckpointSaver


def _checkpoint(cp_id: str, **values: Any) -> Any:
    cp = empty_checkpoint()
    cp["id"] = cp_id
    cp["channel_values"] = dict(values)
    cp["channel_versions"] = {k: 1 for k in values}
    return cp


def test_a_checkpoint_put_again_replaces_the_first(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    saver = WtbCheckpointSaver(db)
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    md: Any = {"source": "loop", "step": 0}
    saver.put(config, _checkpoint("cp-1", a="first"), md, {"a": 1})
    saver.put(config, _checkpoint("cp-1", a="second"), md, {"a": 1})
    got = saver.get_tuple(config)
    assert got is not None and got.checkpoint["channel_values"] == {"a": "second"}
    assert len(list(saver.list(config))) == 1
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CHECKPOINTS)).scalar_one() == 1
    db.engine.dispose()


def test_an_id_too_long_for_the_store_is_refused_naming_the_field(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    saver = WtbCheckpointSaver(db)
    config = {"configurable": {"thread_id": "t" * 300, "checkpoint_ns": ""}}
    with pytest.raises(SpecError, match="thread_id"):
        saver.put(config, _checkpoint("cp-1", a=1), {"source": "loop", "step": 0}, {"a": 1})
    db.engine.dispose()


def test_a_memory_app_is_refused() -> None:
    from wtb_domain.bootstrap import memory_app

    with pytest.raises(SpecError, match="memory App"):
        WtbCheckpointSaver(memory_app())


def test_a_value_the_engine_stored_as_a_delta_blob_reads_back(tmp_path: Path) -> None:
    """Content addressing is shared with WTB's own runs: the row for a hash may be a delta."""
    from wtb_domain.adapters.sql.repositories import BLOBS
    from wtb_domain.deltas import delta_data
    from wtb_domain.langgraph.codec import canonical
    from wtb_domain.state import content_hash

    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    base, full = canonical([1, 2]), canonical([1, 2, 3])
    with db.engine.begin() as conn:
        conn.execute(
            BLOBS.insert(),
            [
                {"hash": content_hash(base), "data": base, "size": len(base)},
                {
                    "hash": content_hash(full),
                    "data": delta_data(content_hash(base), canonical([3])),
                    "size": 3,
                },
            ],
        )
    saver = WtbCheckpointSaver(db)
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    saver.put(config, _checkpoint("cp-1", xs=[1, 2, 3]), {"source": "loop", "step": 0}, {"xs": 1})
    got = saver.get_tuple(config)
    assert got is not None and got.checkpoint["channel_values"] == {"xs": [1, 2, 3]}
    db.engine.dispose()
