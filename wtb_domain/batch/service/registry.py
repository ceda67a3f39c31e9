"""Registering a batch, reading its spec back (secrets restored, hash checked) and planning
its task groups: the base of :class:`~wtb_domain.batch.service.BatchService`."""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from wtb_domain.adapters.sql.database import absolute_url
from wtb_domain.batch.credentials import DatabaseRef
from wtb_domain.batch.lifecycle import completed_progress
from wtb_domain.batch.plan import ResolvedBatch, plan_groups, resolve
from wtb_domain.batch.service.outcomes import CANCEL_POLL_S, PreparedBatch, Registration
from wtb_domain.batch.spec import BatchSpec, Case
from wtb_domain.batch.stored import (
    live_overlay,
    remember_overlay,
    spec_from_stored,
    spec_hash,
    stored_spec,
)
from wtb_domain.batch.warm import resolved_batch
from wtb_domain.bootstrap import App
from wtb_domain.errors import SpecError
from wtb_domain.events import BatchStarted
from wtb_domain.ids import new_id
from wtb_domain.model import BatchStatus, BatchTest, utcnow

log = logging.getLogger(__name__)


@lru_cache(maxsize=16)
def _resolve_cached(spec_json: str) -> ResolvedBatch:
    return resolve(BatchSpec.parse(json.loads(spec_json)))


def _resolved(spec: BatchSpec) -> ResolvedBatch:
    return _resolve_cached(json.dumps(spec.model_dump(mode="json"), sort_keys=True))


def _note_kept_settings(batch_id: str, kept: dict[str, Any], offered: dict[str, Any]) -> None:
    differ = sorted(k for k in set(kept) | set(offered) if kept.get(k) != offered.get(k))
    if differ:
        log.warning(
            "batch %s already ended completed with every result in: this rerun runs nothing "
            "and the batch keeps the settings it ran with (this spec differs in: %s)",
            batch_id,
            ", ".join(differ),
        )


class BatchRegistry:
    """Registers batches, loads their specs back and plans their task groups."""

    def __init__(self, app: App, cancel_poll_s: float = CANCEL_POLL_S) -> None:
        self.app = app
        self.cancel_poll_s = cancel_poll_s  # how stale a running group's cancel flag may be

    def database_ref(self, password_secret: str | None = None) -> DatabaseRef | None:
        """How workers find this service's store: the URL with its password masked."""
        if self.app.database is None:
            return None
        return DatabaseRef.for_url(absolute_url(self.app.database.url), password_secret)

    def register(self, spec: BatchSpec, base_dir: Path | None = None) -> Registration:
        """Validate the spec, store the batch and its cases (or find it, to resume).

        The stored spec has no cases and no secret literals; the cases go to their own
        table in multi-row inserts. This process remembers the secret literals (in memory)
        for the flow it starts.

        A batch found unfinished (running, failed, cancelled) is marked running again, to be
        resumed, with this spec's settings; one that already ended completed with every
        result in stays as it ended (``Registration.ended``): its rerun runs nothing, writes
        no second start or end, and the batch keeps the settings its results ran with (a
        rerun with other settings is logged as such, not stored).
        """
        resolved = resolve(spec)
        cases = [c.model_dump(mode="json") for c in spec.load_cases(base_dir)]
        if not cases:
            raise SpecError("cases: the batch has no cases")
        batch_id = spec.batch_id or f"batch-{new_id()[:20]}"
        stored, overlay = stored_spec(spec, batch_id, cases)
        total = len(resolved.leaves) * len(cases)
        ended = False
        with self.app.uow() as uow:
            new = BatchTest(batch_id, spec.workflow, stored, total, spec.name)
            started: list[BatchStarted] = []
            if uow.batches.find(batch_id) is None and uow.batches.add_if_absent(new):
                uow.cases.add_many(batch_id, cases)
                started.append(BatchStarted(batch_id, spec.name, total))
            else:  # registered before (or by another runner just now): locked, as finish reads
                existing = uow.batches.get_for_update(batch_id)  # it: one ends before the other
                self._check_same(existing, stored, total)
                if uow.cases.count(batch_id) == 0:  # registered before cases were stored
                    uow.cases.add_many(batch_id, cases)
                ended = completed_progress(uow, existing) is not None
                if ended:  # nothing will run: it keeps the settings its results ran with
                    _note_kept_settings(batch_id, existing.spec, stored)
                    stored = existing.spec
                else:
                    existing.spec = stored  # settings that may change on resume (runner, ...)
                    existing.status = BatchStatus.RUNNING
                    existing.cancel_requested = False
                    existing.updated_at = utcnow()
                    started.append(BatchStarted(batch_id, spec.name, total, resumed=True))
                    uow.batches.update(existing)
            uow.record(started)
            uow.commit()
        self.app.publish(started)
        hash_ = spec_hash(stored)
        remember_overlay(batch_id, hash_, overlay)
        return Registration(
            batch_id, hash_, total, self.database_ref(spec.database_password_secret), ended
        )

    def load(self, batch_id: str, hash_: str, secrets: dict[str, Any] | None = None) -> BatchSpec:
        """The spec of a registered batch, its secrets restored (``secrets`` or this
        process's memory); StateError if the batch was registered again with another spec."""
        return self._load(batch_id, hash_, secrets)[0]

    def _load(
        self, batch_id: str, hash_: str, secrets: dict[str, Any] | None
    ) -> tuple[BatchSpec, bool]:
        """:meth:`load`, and the batch's cancel flag as read."""
        with self.app.uow(read_only=True) as uow:
            batch = uow.batches.get(batch_id)
        if spec_hash(batch.spec) != hash_:
            raise SpecError(
                f"batch {batch_id!r} was registered again with other settings while this run "
                "started; rerun it"
            )
        overlay = secrets if secrets is not None else live_overlay(batch_id, hash_)
        return spec_from_stored(batch.spec, overlay), batch.cancel_requested

    def resolved(
        self, batch_id: str, hash_: str, secrets: dict[str, Any] | None = None
    ) -> ResolvedBatch:
        """The resolved batch; built once per process for a stored-spec hash (warm workers),
        after the store's spec was checked to still have that hash."""
        return self._resolved_and_flag(batch_id, hash_, secrets)[0]

    def _resolved_and_flag(
        self, batch_id: str, hash_: str, secrets: dict[str, Any] | None
    ) -> tuple[ResolvedBatch, bool]:
        """:meth:`resolved`, and the batch's cancel flag from the same read."""
        overlay = secrets if secrets is not None else live_overlay(batch_id, hash_)
        with self.app.uow(read_only=True) as uow:
            batch = uow.batches.get(batch_id)
        stored = batch.spec
        if spec_hash(stored) != hash_:
            return _resolved(self.load(batch_id, hash_, overlay)), batch.cancel_requested  # raises
        resolved = resolved_batch(
            hash_, overlay, lambda: _resolved(spec_from_stored(stored, overlay))
        )
        return resolved, batch.cancel_requested

    def plan(
        self, registration: Registration, workers: int = 4, secrets: dict[str, Any] | None = None
    ) -> PreparedBatch:
        """The task groups of a registered batch (case ids from the store, not the cases)."""
        batch_id, hash_ = registration.batch_id, registration.spec_hash
        overlay = secrets if secrets is not None else live_overlay(batch_id, hash_)
        spec = self.load(batch_id, hash_, overlay)
        resolved = _resolved(spec)
        with self.app.uow(read_only=True) as uow:
            ids = uow.cases.ids(batch_id)
        stubs = [Case.model_construct(id=i, input={}, expected=None) for i in ids]
        groups = plan_groups(resolved, stubs, workers)
        total = len(resolved.leaves) * len(ids)
        return PreparedBatch(
            batch_id, hash_, spec, groups, registration.payload, total, overlay, ids
        )

    def prepare(
        self, spec: BatchSpec, base_dir: Path | None = None, workers: int = 4
    ) -> PreparedBatch:
        """:meth:`register` then :meth:`plan` (the domain path, without Prefect)."""
        return self.plan(self.register(spec, base_dir), workers)

    @staticmethod
    def _check_same(existing: BatchTest, stored: dict[str, Any], total: int) -> None:
        keys = ("workflow", "variants", "combinations", "repeats", "evaluators")
        changed = [k for k in keys if existing.spec.get(k) != stored.get(k)]
        digest = existing.spec.get("cases_digest")
        same_cases = existing.total == total and digest in (None, stored["cases_digest"])
        if changed or not same_cases:
            raise SpecError(
                f"batch_id: {existing.id!r} already exists with a different "
                f"{', '.join(changed) or 'set of cases'}; use a new batch_id to run this spec"
            )
