"""Shared CLI helpers: error handling (exit 2 on user errors), JSON arguments, the app."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from wtb_domain import App, SpecError, WtbError, sql_app
from wtb_domain.errors import RunError, StoreError
from wtb_domain.inputs import load_json, read_text

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
    """Parse a JSON argument, or ``@path`` to a UTF-8 JSON file; SpecError on one line."""
    if value is None:
        return None
    if value.startswith("@"):
        return load_json(read_text(value[1:], f"{option}: file"), f"{option} {value[1:]}")
    try:
        return load_json(value, option)
    except SpecError as exc:
        if "not valid JSON (" not in str(exc):
            raise
        hint = """quote it for the shell, e.g. --input '{"question": "..."}'"""
        raise SpecError(f"{exc}; {hint}") from None


def parse_pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """Parse repeated ``node=variant`` options."""
    out: dict[str, str] = {}
    for item in values or []:
        node, sep, variant = item.partition("=")
        node, variant = node.strip(), variant.strip()
        if not sep or not node or not variant:
            raise SpecError(f"{option}: expected NODE=VARIANT, got {item!r}")
        if node in out and out[node] != variant:
            raise SpecError(f"{option}: node {node!r} is given twice ({out[node]!r}, {variant!r})")
        out[node] = variant
    return out


def app_for(database_url: str | None) -> App:
    return sql_app(database_url)
