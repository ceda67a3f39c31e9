"""Redaction: keep secret values out of everything WTB stores or prints.

A key looks secret when its name contains token, key, secret, password, passwd, credential
or auth (any case). Values under such keys become ``"***"``; references to secrets
(``{secret: NAME}`` resolved from a Prefect Secret block, ``{env: NAME}`` from the worker's
environment) are not secret themselves and are kept.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

SECRET_KEY = re.compile(r"(token|key|secret|password|passwd|credential|auth)", re.I)
MASK = "***"
REFERENCE_KINDS = ("secret", "env")


def looks_secret(key: object) -> bool:
    """True when a key's name suggests its value is a secret."""
    return isinstance(key, str) and SECRET_KEY.search(key) is not None


def is_reference(value: object) -> bool:
    """``{secret: NAME}`` or ``{env: NAME}``: a pointer to a secret, safe to store."""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in REFERENCE_KINDS
        and isinstance(next(iter(value.values())), str)
    )


def redact(obj: Any) -> Any:
    """A deep copy of JSON-like data with values under secret-looking keys replaced by ``***``.

    Database URLs (under any key) lose their password as well.
    """
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            if is_reference(value):
                out[key] = dict(value)
            elif looks_secret(key) and value is not None:
                out[key] = MASK
            else:
                out[key] = redact(value)
        return out
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and "://" in obj and "@" in obj:
        return mask_url(obj) or obj
    return obj


def mask_url(url: str | None) -> str | None:
    """The URL with its password replaced by ``***`` (None stays None; no password: as is)."""
    if url is None:
        return None
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return _mask_unparsed(url)
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)  # the password becomes ***


def _mask_unparsed(url: str) -> str:
    """``scheme://user:pw@host`` -> ``scheme://user:***@host`` for URLs SQLAlchemy refuses."""
    return re.sub(r"(://[^/:@]*:)[^@/]*@", lambda m: f"{m.group(1)}{MASK}@", url)
