"""The integrity checks: small classes, each asking an :class:`IntegrityView` one question.

A check ``find``s problems; a check that can repair them safely (nothing a user made is lost,
and a concurrent runner cannot be overruled) also ``repair``s them:

* rollups are recomputed from the results they summarise (the results are the truth);
* outbox rows are handed to the relay again (consumers are idempotent by event id);
* executions left ``running`` by a runner that died (claim gone or lease expired) are marked
  interrupted: status ``failed`` with ``error_type`` :data:`INTERRUPTED`, so ``wtb resume``
  continues them from their head checkpoint. A compare-and-set: one whose claim was renewed
  or taken over in the meantime is left alone.

Broken checkpoint chains, missing blobs and results of unknown executions are reported only
(what was lost cannot be recomputed). Orphan blobs are reported, not deleted: a writer that
found the blob already stored may be about to commit a checkpoint that refers to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from wtb_domain.integrity.model import IntegrityView, Problem

INTERRUPTED = "Interrupted"
"""``error_type`` of an execution whose runner died while it was running (set by the doctor)."""

INTERRUPTED_MESSAGE = (
    "the run stopped while running (its runner died: claim gone or lease expired); "
    "`wtb resume` continues it from its head checkpoint"
)

OUTBOX_GRACE_S = 60.0
"""An outbox row younger than this may simply not have been relayed yet."""


class Check:
    """One question about the store. ``find`` returns the problems (``None``: not applicable)."""

    name: ClassVar[str]
    title: ClassVar[str]
    skip_note: ClassVar[str] = "not applicable to this store"

    def find(self, view: IntegrityView) -> list[Problem] | None:
        raise NotImplementedError

    @property
    def repairable(self) -> bool:
        return False

    def repair(self, view: IntegrityView, problems: Sequence[Problem]) -> int:
        """Repair ``problems``; the number of keys repaired."""
        return 0

    @property
    def no_repair_note(self) -> str:
        return "report only: not safe to repair automatically"


class MissingParents(Check):
    name = "checkpoint_parents"
    title = "checkpoints whose parent does not exist"

    def find(self, view: IntegrityView) -> list[Problem]:
        return view.missing_parents()


class MisplacedHeads(Check):
    name = "execution_heads"
    title = "execution heads missing or in another execution"

    def find(self, view: IntegrityView) -> list[Problem]:
        return view.misplaced_heads()


class MissingBlobs(Check):
    name = "missing_blobs"
    title = "checkpoint values whose blob does not exist"

    def find(self, view: IntegrityView) -> list[Problem]:
        return view.missing_blobs()


class OrphanBlobs(Check):
    name = "orphan_blobs"
    title = "blobs no checkpoint refers to"

    def find(self, view: IntegrityView) -> list[Problem]:
        return view.orphan_blobs()

    @property
    def no_repair_note(self) -> str:
        return "report only: a concurrent writer may be about to refer to them"


class DanglingResults(Check):
    name = "result_executions"
    title = "batch results of executions that do not exist"

    def find(self, view: IntegrityView) -> list[Problem]:
        return view.dangling_results()


class StaleRollups(Check):
    name = "rollups"
    title = "rollups that differ from the results they summarise"
    skip_note = "this store keeps no rollups (the matrix is computed from the results)"

    def find(self, view: IntegrityView) -> list[Problem] | None:
        return view.stale_rollups()

    @property
    def repairable(self) -> bool:
        return True

    def repair(self, view: IntegrityView, problems: Sequence[Problem]) -> int:
        return view.rebuild_rollups(sorted({p.key for p in problems}))


class OutboxDrained(Check):
    """Events written but not published. Skipped until the outbox table exists.

    ``relay`` publishes the pending rows again and returns how many it published (the outbox
    relay's "publish pending" function); without one the check reports only.
    """

    name = "outbox"
    title = f"outbox events unpublished for more than {OUTBOX_GRACE_S:g} s"
    skip_note = "no outbox table in this database (yet)"

    def __init__(
        self, relay: Callable[[], int] | None = None, older_than_s: float = OUTBOX_GRACE_S
    ) -> None:
        self.relay = relay
        self.older_than_s = older_than_s

    def find(self, view: IntegrityView) -> list[Problem] | None:
        return view.undrained_outbox(self.older_than_s)

    @property
    def repairable(self) -> bool:
        return self.relay is not None

    def repair(self, view: IntegrityView, problems: Sequence[Problem]) -> int:
        return self.relay() if self.relay is not None else 0

    @property
    def no_repair_note(self) -> str:
        return "no outbox relay is registered to re-queue them"


class StuckRunning(Check):
    name = "stuck_running"
    title = "executions running past their lease (runner gone)"

    def find(self, view: IntegrityView) -> list[Problem]:
        return view.stuck_running()

    @property
    def repairable(self) -> bool:
        return True

    def repair(self, view: IntegrityView, problems: Sequence[Problem]) -> int:
        return view.interrupt(sorted({p.key for p in problems}))


def default_checks(outbox_relay: Callable[[], int] | None = None) -> list[Check]:
    """Every check, in the order a report lists them."""
    return [
        MissingParents(),
        MisplacedHeads(),
        MissingBlobs(),
        OrphanBlobs(),
        DanglingResults(),
        StaleRollups(),
        OutboxDrained(outbox_relay),
        StuckRunning(),
    ]
