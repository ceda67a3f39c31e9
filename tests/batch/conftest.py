"""Fixtures of the batch suite: helper workflows reset, a SQLite URL per test.

The environment (no analytics, no Ray auth, the repository on PYTHONPATH) and the session's
Prefect harness live in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.batch import workflows


@pytest.fixture(autouse=True)
def _reset_workflow_counters() -> Iterator[None]:
    workflows.reset()
    yield
    workflows.reset()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file in the test's tmp_path (migrated on first use)."""
    return f"sqlite:///{tmp_path / 'wtb.db'}"
