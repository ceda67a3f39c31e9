"""Pinned baselines in the store: the history of blessings, the newest one is the baseline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from wtb_domain import App, NotFoundError
from wtb_domain.ids import new_id
from wtb_domain.model import Baseline, BatchStatus, BatchTest, utcnow


def stored_batch(app: App, name: str) -> str:
    batch_id = f"b-{new_id()}"
    with app.uow() as uow:
        uow.batches.add(BatchTest(batch_id, "m:w", {}, 1, name, status=BatchStatus.COMPLETED))
        uow.commit()
    return batch_id


def test_a_name_without_blessings_has_no_baseline(app: App) -> None:
    with app.uow() as uow:
        assert uow.baselines.current(f"never-{new_id()}") is None
        assert uow.baselines.history(f"never-{new_id()}") == []


def test_the_newest_blessing_is_the_baseline_and_history_keeps_all(app: App, make_app) -> None:  # type: ignore[no-untyped-def]
    name = f"nightly-{new_id()}"
    first, second = stored_batch(app, name), stored_batch(app, name)
    t0 = utcnow()
    with app.uow() as uow:
        uow.baselines.add(Baseline(name, first, note="first green night", blessed_at=t0))
        uow.baselines.add(
            Baseline(name, second, blessed_by="ci", blessed_at=t0 + timedelta(seconds=1))
        )
        uow.commit()
    with make_app().uow() as uow:  # another process sees the committed blessings
        current = uow.baselines.current(name)
        history = uow.baselines.history(name)
    assert current is not None and current.batch_test_id == second
    assert current.blessed_by == "ci" and current.id
    assert [b.batch_test_id for b in history] == [second, first]
    assert history[1].note == "first green night"
    assert history[1].blessed_at == t0
    assert history[1].blessed_at.tzinfo is not None


def test_blessings_of_other_names_do_not_mix(app: App) -> None:
    a, b = f"a-{new_id()}", f"b-{new_id()}"
    batch = stored_batch(app, a)
    with app.uow() as uow:
        uow.baselines.add(Baseline(a, batch))
        uow.commit()
    with app.uow() as uow:
        assert uow.baselines.current(b) is None
        assert [x.name for x in uow.baselines.history(a)] == [a]


def test_an_uncommitted_blessing_is_rolled_back(app: App) -> None:
    name = f"rollback-{new_id()}"
    batch = stored_batch(app, name)
    with app.uow() as uow:
        uow.baselines.add(Baseline(name, batch))
    with app.uow() as uow:
        assert uow.baselines.current(name) is None


def test_blessing_an_unknown_batch_is_not_found(app: App) -> None:
    with app.uow() as uow, pytest.raises(NotFoundError, match="no batch test 'missing'"):
        uow.baselines.add(Baseline("x", "missing"))
