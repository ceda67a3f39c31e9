"""Credentials never travel as parameters: database URLs and secret literals, worker side.

A flow or task receives a :class:`DatabaseRef` -- the database URL with its password masked,
plus the name of a Prefect Secret block that may hold the password -- and resolves it where
it runs with :func:`resolve_database_url`. Secret literals of a spec (values under keys that
look secret, see :mod:`wtb_domain.redaction`) are kept out of the stored spec; the process
that registered the batch keeps them in memory as an *overlay* (:func:`secret_overlay`) and
hands it to the code that needs them (:func:`apply_overlay`).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from wtb_domain.errors import SpecError, StoreError
from wtb_domain.redaction import MASK, is_reference, looks_secret, mask_text, mask_url

SecretLoader = Callable[[str], str]
"""Returns the value of a named secret (on Prefect: a Secret block)."""

_lock = threading.Lock()
_known_passwords: dict[tuple[Any, ...], str] = {}


def _identity(url: URL) -> tuple[Any, ...]:
    return (url.get_backend_name(), url.host or "", url.port, url.username or "", url.database)


def _parse(url: str, what: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise StoreError(f"{what}: {mask_url(url)!r} is not a database URL") from None


def remember_password(url: str) -> None:
    """Let this process resolve masked URLs of ``url``'s database (in memory only)."""
    parsed = _parse(url, "database_url")
    if parsed.password and parsed.password != MASK:
        with _lock:
            _known_passwords[_identity(parsed)] = str(parsed.password)


@dataclass(frozen=True)
class DatabaseRef:
    """Where a worker finds the store: a URL without its password, and where the password is."""

    url: str
    password_secret: str | None = None

    @classmethod
    def for_url(cls, url: str, password_secret: str | None = None) -> DatabaseRef:
        """The reference of a full URL; this process remembers the password for its workers."""
        remember_password(url)
        return cls(mask_url(url) or url, password_secret)

    def to_param(self) -> dict[str, Any]:
        return {"url": self.url, "password_secret": self.password_secret}

    @classmethod
    def from_param(cls, value: Mapping[str, Any] | str | None) -> DatabaseRef | None:
        if value is None:
            return None
        if isinstance(value, str):
            return cls(value)
        return cls(str(value["url"]), value.get("password_secret"))


def _pgpass_available(environ: Mapping[str, str]) -> bool:
    if environ.get("PGPASSWORD"):
        return True
    passfile = environ.get("PGPASSFILE") or str(Path.home() / ".pgpass")
    return Path(passfile).is_file()


def resolve_database_url(
    ref: DatabaseRef,
    secret_loader: SecretLoader | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The URL with its password, from what this worker has.

    In order: a password this process already knows (it registered the batch);
    ``WTB_DATABASE_URL`` when it names the same server, user and database; the Prefect
    Secret block ``ref.password_secret``; ``PGPASSWORD`` / ``.pgpass`` (the URL is returned
    without a password and libpq reads them). Raises StoreError (one line) when none has it.
    """
    env = os.environ if environ is None else environ
    parsed = _parse(ref.url, "database")
    if parsed.password != MASK:
        return ref.url
    key = _identity(parsed)
    with _lock:
        known = _known_passwords.get(key)
    if known is not None:
        return parsed.set(password=known).render_as_string(hide_password=False)
    from_env = env.get("WTB_DATABASE_URL")
    if from_env:
        candidate = _parse(from_env, "WTB_DATABASE_URL")
        if _identity(candidate) == key and candidate.password and candidate.password != MASK:
            return parsed.set(password=candidate.password).render_as_string(hide_password=False)
    if ref.password_secret and secret_loader is not None:
        password = secret_loader(ref.password_secret)
        return parsed.set(password=password).render_as_string(hide_password=False)
    if _pgpass_available(env):
        bare = URL.create(
            parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database
        ).update_query_dict(dict(parsed.query))
        return bare.render_as_string(hide_password=False)
    raise StoreError(
        f"no password for database {ref.url} on this worker: set WTB_DATABASE_URL to that URL "
        "with its password, or PGPASSWORD / ~/.pgpass, or name a Prefect Secret block in the "
        "spec's database_password_secret"
    )


# --- secret literals of a spec -------------------------------------------------------------


def _path_key(path: tuple[str | int, ...]) -> str:
    return json.dumps(list(path))


def secret_overlay(
    data: Any, path: tuple[str | int, ...] = (), skip: tuple[tuple[str | int, ...], ...] = ()
) -> dict[str, Any]:
    """The values :func:`~wtb_domain.redaction.redact` hides, by path (JSON list of keys).

    Paths in ``skip`` are left out (the spec's ``database_url``: workers resolve the
    database password themselves, it never travels with the overlay).
    """
    found: dict[str, Any] = {}
    if path in skip:
        return found
    if isinstance(data, dict):
        for key, value in data.items():
            here = (*path, key)
            if is_reference(value) or here in skip:
                continue
            if looks_secret(key) and value is not None:
                found[_path_key(here)] = value
            else:
                found.update(secret_overlay(value, here, skip))
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            found.update(secret_overlay(value, (*path, i), skip))
    elif isinstance(data, str) and mask_text(data) != data:
        found[_path_key(path)] = data
    return found


def apply_overlay(redacted: Any, overlay: Mapping[str, Any]) -> Any:
    """``redacted`` with the overlay's values put back (a deep copy)."""
    out = json.loads(json.dumps(redacted))
    for raw, value in overlay.items():
        path = json.loads(raw)
        node = out
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return out


def missing_secrets(redacted: Any, overlay: Mapping[str, Any]) -> list[str]:
    """Paths whose literal secret was redacted and that the overlay does not restore."""
    return [
        ".".join(str(p) for p in json.loads(raw))
        for raw, value in secret_overlay(
            redacted, skip=(("database_url",), ("database_password_secret",))
        ).items()
        if MASK in str(value) and raw not in overlay
    ]


def require_secrets(redacted: Any, overlay: Mapping[str, Any]) -> None:
    missing = missing_secrets(redacted, overlay)
    if missing:
        raise SpecError(
            f"{missing[0]}: its literal secret is never stored, so only the process that "
            "registered the batch has it; rerun the batch from its spec file (same batch_id), "
            "or give env_vars values as {secret: NAME} or {env: NAME}"
        )
