"""Redaction: keep secret values out of everything WTB stores or prints.

A key looks secret when its name contains token, key, secret, password, passwd, credential
or auth (any case). Values under such keys become ``"***"``; references to secrets
(``{secret: NAME}`` resolved from a Prefect Secret block, ``{env: NAME}`` from the worker's
environment) are not secret themselves and are kept.

Text under any key loses what has the shape of a credential (:data:`SECRET_TEXT`: an
``sk-...`` API key, a ``Bearer`` token, GitHub/Slack/AWS/Google keys) and the password of a
database URL: a key pasted into a prompt is not stored either. :func:`redact_text` applies
only that part, for data whose key names are not the caller's to choose (LLM responses:
``prompt_tokens`` is a count, not a secret).
"""

from __future__ import annotations

import re
from typing import Any

SECRET_KEY = re.compile(r"(token|key|secret|password|passwd|credential|auth)", re.I)
MASK = "***"
SECRET_TEXT = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-]{16,}"  # OpenAI / Anthropic style API keys
    r"|(?:ghp|gho|ghs|ghu|ghr|github_pat)_[A-Za-z0-9_]{20,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{35})"
    r"|(?<=\b[Bb]earer )(?=[^\s\d]*\d)[A-Za-z0-9._~+/=\-]{16,}"  # a token, not a word
)
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
    if isinstance(obj, str):
        return mask_text(obj)
    return obj


def redact_text(obj: Any) -> Any:
    """A deep copy of JSON-like data with credential-shaped text and URL passwords masked
    in every string (keys are kept, whatever their names)."""
    if isinstance(obj, dict):
        return {key: redact_text(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_text(v) for v in obj]
    if isinstance(obj, str):
        return mask_text(obj)
    return obj


def mask_text(text: str) -> str:
    """``text`` with credential-shaped substrings (and a database URL's password) masked."""
    if "://" in text and "@" in text:
        text = mask_url(text) or text
    return SECRET_TEXT.sub(MASK, text)


def mask_url(url: str | None) -> str | None:
    """The URL with its password replaced by ``***`` (None stays None; no password: as is)."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url  # loads with the first URL to mask (`wtb --help`
    from sqlalchemy.exc import ArgumentError  # imports no SQLAlchemy)

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
