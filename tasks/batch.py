"""Prefect tasks of a batch test."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.secrets import app_for
from wtb_domain.batch.service import BatchService


@task(name="wtb-variant-tree", cache_policy=NO_CACHE, persist_result=False)
def run_case_group(
    payload: dict[str, Any],
    case_id: str,
    leaf_keys: list[str],
    secrets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one case's variant tree (or a slice of it); results go straight to the store.

    ``payload`` references the batch (id, spec hash, database URL without its password);
    the spec and the case are read from the store. ``secrets`` restores the stored spec's
    secret literals: an in-memory argument (Prefect stores no task parameters).
    """
    service = BatchService(app_for(payload.get("database")))
    return asdict(service.run_group(payload, case_id, leaf_keys, secrets))
