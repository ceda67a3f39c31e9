"""What the integrity checks read and repair (a port), and what they report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

SAMPLES = 10


@dataclass(frozen=True)
class Problem:
    """One inconsistency: ``key`` is what a repair acts on (an execution, a batch, an outbox
    row), ``detail`` says what is wrong in a few words."""

    key: str
    detail: str


@dataclass
class Finding:
    """What one check found: how many problems, a few examples, and what a repair did.

    ``skipped`` (with ``note``) means the check does not apply to this store (no outbox table
    yet, no rollups in memory); ``remaining`` is the count after any repair.
    """

    check: str
    title: str
    count: int = 0
    samples: list[str] = field(default_factory=list)
    repairable: bool = False
    repaired: int = 0
    remaining: int = 0
    skipped: bool = False
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.skipped or self.remaining == 0

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


@dataclass
class Report:
    findings: list[Finding]
    repair: bool = False

    @property
    def clean(self) -> bool:
        """Nothing is left to fix (every check passed, or its problems were repaired)."""
        return all(f.ok for f in self.findings)

    @property
    def exit_code(self) -> int:
        return 0 if self.clean else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "repair": self.repair,
            "problems": sum(f.count for f in self.findings),
            "repaired": sum(f.repaired for f in self.findings),
            "remaining": sum(f.remaining for f in self.findings),
            "findings": [f.to_dict() for f in self.findings],
        }


class IntegrityView(Protocol):
    """Read-only questions the checks ask a store, and the few safe repairs.

    A method returning ``None`` means the store has nothing of the kind (no rollups in memory,
    no outbox table before its migration): the check is skipped with a note.
    """

    def missing_parents(self) -> list[Problem]:
        """Checkpoints whose ``parent_id`` names no stored checkpoint."""
        ...

    def misplaced_heads(self) -> list[Problem]:
        """Executions whose head is missing or a checkpoint of another execution."""
        ...

    def missing_blobs(self) -> list[Problem]:
        """Manifest entries whose value hash has no stored blob."""
        ...

    def orphan_blobs(self) -> list[Problem]:
        """Blobs no checkpoint manifest refers to."""
        ...

    def dangling_results(self) -> list[Problem]:
        """Batch results whose ``execution_id`` names no stored execution."""
        ...

    def stale_rollups(self) -> list[Problem] | None:
        """(batch, combination, case) rollups that differ from their results; key: batch."""
        ...

    def rebuild_rollups(self, batch_ids: Sequence[str]) -> int:
        """Recompute these batches' rollups from their results; the number of batches."""
        ...

    def undrained_outbox(self, older_than_s: float) -> list[Problem] | None:
        """Outbox rows unpublished for longer than ``older_than_s``; key: the row id."""
        ...

    def stuck_running(self) -> list[Problem]:
        """Executions ``running`` whose claim is gone or whose lease has expired."""
        ...

    def interrupt(self, execution_ids: Sequence[str]) -> int:
        """Mark these executions interrupted if they are still stuck (compare-and-set); the
        number changed."""
        ...
