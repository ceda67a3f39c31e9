"""Import references ``package.module:attr``: validated by pattern, imported, never evaluated."""

from __future__ import annotations

import importlib
import re
from typing import Any

from wtb_domain.errors import WorkflowError

REF_PATTERN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
MAX_REF_LENGTH = 512


def is_ref(text: object) -> bool:
    """True if ``text`` has the shape of a reference (it is not imported here)."""
    return (
        isinstance(text, str) and len(text) <= MAX_REF_LENGTH and bool(REF_PATTERN.fullmatch(text))
    )


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def import_ref(ref: str, what: str, example: str) -> Any:
    """The attribute ``ref`` names; every failure is a one-line WorkflowError.

    Args:
        ref: ``package.module:attr``.
        what: How the messages name the reference (e.g. ``workflow reference``).
        example: A valid reference shown in the message for a malformed one.
    """
    if not is_ref(ref):
        shown = repr(ref) if len(repr(ref)) <= 80 else repr(ref)[:77] + "..."
        raise WorkflowError(
            f"{what} {shown} must look like 'package.module:attr' (absolute, "
            f"at most {MAX_REF_LENGTH} characters; e.g. {example})"
        )
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise WorkflowError(
            f"{what} {ref!r}: module {exc.name!r} not found; "
            "check the spelling and that it is importable (installed or on PYTHONPATH)"
        ) from None
    except Exception as exc:  # the module itself is broken: say so in one line
        raise WorkflowError(
            f"{what} {ref!r}: importing module {module_name!r} failed "
            f"({type(exc).__name__}: {one_line(exc)}); fix the module"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise WorkflowError(
            f"{what} {ref!r}: module {module_name!r} has no attribute {attr!r}"
        ) from None
