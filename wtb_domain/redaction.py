"""Keeping secrets out of what WTB stores and prints.

- :func:`looks_secret`: is a key (param, env var, field) one whose value is a secret?
- :func:`redact`: a deep copy of JSON-like data with secret-looking values replaced by ``***``;
  a reference (``{secret: NAME}`` or ``{env: NAME}``) holds no secret and is kept as is.
- :func:`mask_url`: a database URL with its password replaced by ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from wtb_domain.errors import SpecError

SECRET_KEY = re.compile(r"(token|key|secret|password|passwd|credential|auth)", re.I)
MASK = "***"
REFERENCE_KINDS = frozenset({"secret", "env"})


def looks_secret(key: str) -> bool:
    """True if ``key`` names a secret (``api_key``, ``DB_PASSWORD``, ``auth_token``, ...)."""
    return bool(SECRET_KEY.search(key))


def is_reference(value: Any) -> bool:
    """True for ``{secret: NAME}`` / ``{env: NAME}``: a pointer to a secret, not a secret."""
    return (
        isinstance(value, Mapping)
        and len(value) == 1
        and next(iter(value)) in REFERENCE_KINDS
        and isinstance(next(iter(value.values())), str)
    )


def redact(obj: Any) -> Any:
    """A deep copy of ``obj`` where values under secret-looking keys become ``"***"``."""
    if is_reference(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            if isinstance(key, str) and looks_secret(key) and not is_reference(value):
                # a reference holds no secret; anything else under a secret key is one
                out[key] = MASK if value is not None else None
            else:
                out[key] = redact(value)
        return out
    if isinstance(obj, list | tuple):
        return [redact(item) for item in obj]
    return obj


def mask_url(url: str | None) -> str | None:
    """``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``; SpecError if unparsable."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        raise SpecError(
            "database_url: not a database URL (expected e.g. postgresql://user@host/db or "
            "sqlite:///path/wtb.db)"
        ) from None
    return parsed.render_as_string(hide_password=True)
