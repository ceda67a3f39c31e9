"""Shared CLI helpers: error handling (exit 2 on user errors), JSON arguments, the app."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from wtb_domain import App, SpecError, WtbError, sql_app
from wtb_domain.errors import RunError, StoreError

# Piped output (CI logs, files) gets a wide console so tables stay on one line per row.
console = Console(width=None if sys.stdout.isatty() else 180)
err_console = Console(stderr=True, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn WtbError into a one-line message and exit code 2 (1 for store failures)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (StoreError, RunError) as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None
        except WtbError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def parse_json(value: str | None, option: str) -> Any:
    """Parse a JSON argument, or ``@path`` to a JSON file."""
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise SpecError(f"{option}: file {path} does not exist")
        text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{option}: not valid JSON ({exc.msg} at column {exc.colno}); "
            'quote it for the shell, e.g. --input \'{"question": "..."}\''
        ) from None


def parse_pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """Parse repeated ``node=variant`` options."""
    out: dict[str, str] = {}
    for item in values or []:
        node, sep, variant = item.partition("=")
        if not sep or not node or not variant:
            raise SpecError(f"{option}: expected NODE=VARIANT, got {item!r}")
        out[node] = variant
    return out


def app_for(database_url: str | None) -> App:
    return sql_app(database_url)
