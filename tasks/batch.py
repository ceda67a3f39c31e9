"""Prefect tasks of a batch test."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService


@task(name="wtb-variant-tree", cache_policy=NO_CACHE, persist_result=False)
def run_case_group(
    payload: dict[str, Any], case: dict[str, Any], leaf_keys: list[str]
) -> dict[str, Any]:
    """Run one case's variant tree (or a slice of it); results go straight to the store."""
    service = BatchService(sql_app(payload.get("database_url")))
    return asdict(service.run_group(payload, case, leaf_keys))
