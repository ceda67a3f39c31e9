"""What a batch stores: its spec without cases and with secrets redacted, and its hash.

The flow and its tasks receive ``(batch_id, spec_hash)`` and read the spec and their cases
from the store; the secret literals the stored spec lacks stay in the memory of the process
that registered the batch (:func:`remember_overlay`) and travel only as in-memory task
arguments, never as stored flow parameters.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from wtb_domain.batch.credentials import apply_overlay, require_secrets, secret_overlay
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.redaction import redact

STORED_META = ("cases_count", "cases_digest")
DATABASE_URL_PATH = (("database_url",),)
# A Secret block's *name* (its key looks secret, its value is not): stored as given.
NAMES_NOT_SECRETS = ("database_password_secret",)

_lock = threading.Lock()
_live_overlays: dict[tuple[str, str], dict[str, Any]] = {}


def cases_digest(cases: Sequence[Mapping[str, Any]]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for case in cases:
        h.update(json.dumps(case, sort_keys=True, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def spec_hash(stored: Mapping[str, Any]) -> str:
    blob = json.dumps(stored, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def stored_spec(
    spec: BatchSpec, batch_id: str, cases: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(stored, overlay)``: the spec as stored (no cases, secrets redacted, the database
    URL's password masked) and the secret literals it lacks, by path."""
    data = spec.model_dump(mode="json", exclude={"cases"})
    data["batch_id"] = batch_id
    skip = DATABASE_URL_PATH + tuple((name,) for name in NAMES_NOT_SECRETS)
    overlay = secret_overlay(data, skip=skip)
    stored: dict[str, Any] = redact(data)
    for name in NAMES_NOT_SECRETS:
        stored[name] = data.get(name)
    stored["cases_count"] = len(cases)
    stored["cases_digest"] = cases_digest(cases)
    return stored, overlay


def spec_from_stored(stored: Mapping[str, Any], overlay: Mapping[str, Any]) -> BatchSpec:
    """The spec a stored batch runs, its secret literals restored from ``overlay``."""
    data = {k: v for k, v in stored.items() if k not in STORED_META}
    require_secrets(data, overlay)
    return BatchSpec.parse(apply_overlay(data, overlay))


def remember_overlay(batch_id: str, hash_: str, overlay: Mapping[str, Any]) -> None:
    with _lock:
        _live_overlays[(batch_id, hash_)] = dict(overlay)


def live_overlay(batch_id: str, hash_: str) -> dict[str, Any]:
    """The secret literals this process registered for the batch (empty when none)."""
    with _lock:
        return dict(_live_overlays.get((batch_id, hash_), {}))
