"""Warm workers: a process builds its App and a batch's resolved spec once, for all tasks."""

from __future__ import annotations

import threading
import time

from tasks.batch import run_case_group
from tasks.secrets import app_for
from tests.batch.test_flow import linear_spec, results_of
from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.warm import BoundedCache


def test_bounded_cache_builds_a_key_once_under_concurrency_and_evicts_the_oldest() -> None:
    cache = BoundedCache(size=2)
    builds: list[str] = []

    def build() -> object:
        builds.append("a")
        time.sleep(0.05)  # every thread is waiting on the lock meanwhile
        return object()

    got: list[object] = []
    threads = [
        threading.Thread(target=lambda: got.append(cache.get_or_build("a", build)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == ["a"]
    assert len({id(v) for v in got}) == 1

    cache.get_or_build("b", object)
    cache.get_or_build("a", object)  # a is now the most recent
    cache.get_or_build("c", object)  # evicts b
    assert len(cache) == 2
    fresh = cache.get_or_build("b", lambda: "rebuilt")
    assert fresh == "rebuilt"


def test_tasks_of_a_batch_reuse_one_app_and_one_resolved_batch(sqlite_url: str) -> None:
    spec = linear_spec(sqlite_url, "warm")
    prepared = BatchService(sql_app(sqlite_url, audit=False)).prepare(spec, workers=4)
    assert len(prepared.groups) >= 2
    database = prepared.payload.get("database")
    assert app_for(database) is app_for(database)

    service = BatchService(app_for(database))
    first = service.resolved(prepared.batch_id, prepared.spec_hash)
    for group in prepared.groups:
        out = run_case_group.fn(prepared.payload, group.case_id, list(group.leaf_keys))
        assert out["failed"] == 0
    assert service.resolved(prepared.batch_id, prepared.spec_hash) is first
    assert len(results_of(sqlite_url, "warm")) == prepared.total
