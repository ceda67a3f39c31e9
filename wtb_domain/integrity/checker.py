"""IntegrityChecker: runs the checks over a view, repairs what is safe, reports counts."""

from __future__ import annotations

from collections.abc import Sequence

from wtb_domain.integrity.checks import Check, default_checks
from wtb_domain.integrity.model import SAMPLES, Finding, IntegrityView, Report


class IntegrityChecker:
    """Cross-store consistency checks (``wtb doctor``).

    With ``repair`` every repairable check repairs what it found and is run again, so a
    finding's ``remaining`` is what the store holds afterwards.
    """

    def __init__(self, checks: Sequence[Check] | None = None) -> None:
        self.checks = list(default_checks() if checks is None else checks)

    def run(self, view: IntegrityView, *, repair: bool = False) -> Report:
        return Report([self._one(check, view, repair) for check in self.checks], repair)

    @staticmethod
    def _one(check: Check, view: IntegrityView, repair: bool) -> Finding:
        finding = Finding(check.name, check.title, repairable=check.repairable)
        problems = check.find(view)
        if problems is None:
            finding.skipped, finding.note = True, check.skip_note
            return finding
        finding.count = finding.remaining = len(problems)
        finding.samples = [f"{p.key}: {p.detail}" for p in problems[:SAMPLES]]
        if not problems:
            return finding
        if not check.repairable:
            finding.note = check.no_repair_note
            return finding
        if not repair:
            finding.note = "repairable with --repair"
            return finding
        finding.repaired = check.repair(view, problems)
        after = check.find(view)
        finding.remaining = len(after or [])
        return finding
