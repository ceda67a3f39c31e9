"""Cross-store integrity checks and safe repairs (``wtb doctor``).

:class:`IntegrityChecker` runs small :class:`Check` classes over an :class:`IntegrityView`:
``wtb_domain.adapters.sql.integrity.SqlIntegrityView`` (SQLite, PostgreSQL) or
``wtb_domain.adapters.memory_integrity.MemoryIntegrityView``.
"""

from wtb_domain.integrity.checker import IntegrityChecker
from wtb_domain.integrity.checks import (
    INTERRUPTED,
    Check,
    OutboxDrained,
    default_checks,
)
from wtb_domain.integrity.model import Finding, IntegrityView, Problem, Report

__all__ = [
    "INTERRUPTED",
    "Check",
    "Finding",
    "IntegrityChecker",
    "IntegrityView",
    "OutboxDrained",
    "Problem",
    "Report",
    "default_checks",
]
