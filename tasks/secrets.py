"""Worker-side credentials: Prefect Secret blocks and the store of a batch reference."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from wtb_domain import App, sql_app
from wtb_domain.batch.credentials import DatabaseRef, resolve_database_url
from wtb_domain.batch.warm import APPS
from wtb_domain.errors import WtbError


def prefect_secret(name: str) -> str:
    """The value of the Prefect Secret block ``name`` (read where the value is needed)."""
    from prefect.blocks.system import Secret

    try:
        block = cast("Secret[Any]", Secret.load(name))  # sync context: the block itself
    except ValueError as exc:  # Prefect: "Unable to find block document named ..."
        raise WtbError(
            f"Prefect Secret block {name!r} not found ({exc}); create it with "
            f"prefect.blocks.system.Secret(value=...).save({name!r})"
        ) from None
    return str(block.get())


def database_url(database: Mapping[str, Any] | str | None) -> str | None:
    """The full database URL of a reference (flow/task parameter), resolved on this worker."""
    ref = DatabaseRef.from_param(database)
    return None if ref is None else resolve_database_url(ref, prefect_secret)


def app_for(database: Mapping[str, Any] | str | None) -> App:
    """The process's App for a batch's store: built once per URL, reused by every task
    this worker runs (engine, migrations check, bus and controller)."""
    url = database_url(database)
    return APPS.get_or_build(url, lambda: sql_app(url))
