"""Shared CLI helpers: error handling (exit 2 on user errors), JSON arguments, the app."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from wtb_domain.errors import RunError, SpecError, StoreError, WorkflowError, WtbError

if TYPE_CHECKING:
    from wtb_domain.bootstrap import App
    from wtb_domain.workflow.model import Workflow

# Piped output (CI logs, files) gets a wide console so tables stay on one line per row.
# emoji=False: user text (ids, names, error messages) prints as itself, ``:fire:`` included,
# as ``[/bold]`` does through ``escape``; and rich's emoji table is never loaded.
console = Console(width=None if sys.stdout.isatty() else 180, emoji=False)
err_console = Console(stderr=True, soft_wrap=True, emoji=False)

P = ParamSpec("P")
R = TypeVar("R")


def one_line(text: object) -> str:
    """User text for a one-line message: markup escaped, line breaks flattened."""
    return escape(" ".join(str(text).splitlines()))


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: <message>`` (escaped, one line) and return the Exit to raise."""
    err_console.print(f"[red]error:[/red] {one_line(message)}", highlight=False)
    return typer.Exit(code)


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn WtbError into a one-line message and exit code 2 (1 for store failures).

    A ``SystemExit`` raised by user code the command imported or ran (``wtb run sys:exit``)
    is a user error too: one line and exit 2, never a silent exit 0.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (StoreError, RunError) as exc:
            raise fail(str(exc), 1) from None
        except WtbError as exc:
            raise fail(str(exc), 2) from None
        except SystemExit as exc:
            raise fail(
                f"user code called exit({exc.code!r}) while the command ran; a workflow or "
                "evaluator reference must point to your own code, not to an exit function",
                2,
            ) from None

    return wrapper


def parse_json(value: str | None, option: str) -> Any:
    """Parse a JSON argument, or ``@path`` to a UTF-8 JSON file; SpecError on one line."""
    if value is None:
        return None
    from wtb_domain.inputs import load_json, read_text  # YAML loads with it, not with the CLI

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


def check_variants(wf: Workflow, selection: dict[str, str], option: str) -> None:
    """Refuse an unknown node or variant of ``wf`` before the store opens (one line).

    Raises:
        SpecError: Naming the option and the valid nodes or variants.
    """
    try:
        wf.check_variants(selection)
    except WorkflowError as exc:
        raise SpecError(f"{option}: {exc}") from None


def check_database_url(url: str | None, option: str = "--db / WTB_DATABASE_URL") -> None:
    """Refuse a database URL SQLAlchemy cannot use, before anything connects (one line).

    Raises:
        SpecError: Not a URL, an unknown database type or a driver that is not installed; the
            message shows the URL with its password masked.
    """
    if url is None:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    hint = "use e.g. sqlite:///path/wtb.db or postgresql+psycopg://user@host/db"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        raise SpecError(f"{option}: not a database URL; {hint}") from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise SpecError(
            f"{option}: {shown!r} has an unknown database type {parsed.drivername!r}; {hint}"
        ) from None
    except ImportError as exc:
        raise SpecError(
            f"{option}: the driver for {parsed.drivername!r} is not installed ({exc}); {hint}"
        ) from None


def check_workflow_ref(ref: str | None, option: str) -> None:
    """Refuse a standard-library or builtin workflow reference (``sys:exit``) before importing.

    Raises:
        SpecError: Naming the option.
    """
    from wtb_domain.evaluation.user_code import is_refused_module

    if ref is None or ":" not in ref:
        return  # the domain's loader explains a malformed reference
    module_name = ref.partition(":")[0]
    if module_name and is_refused_module(module_name):
        raise SpecError(
            f"{option}: {ref!r} is in the standard library, not a workflow; use your own "
            "module's workflow, e.g. wtb_domain.demo.qa:workflow"
        )


def app_for(database_url: str | None) -> App:
    check_database_url(database_url)
    from wtb_domain.bootstrap import sql_app  # the store loads with the first command using it

    return sql_app(database_url)
