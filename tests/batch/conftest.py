"""Fixtures of the batch suite: one Prefect test harness per session, helper workflows reset.

The environment is set at import, before Prefect or Ray read it: no analytics, no Ray auth,
and the repository on ``PYTHONPATH`` so Ray workers and CLI subprocesses can import
``tests.batch.workflows``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["RAY_AUTH_MODE"] = "disabled"
_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if str(REPO_ROOT) not in _paths:
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *_paths])

from tests.batch import workflows  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_workflow_counters() -> Iterator[None]:
    workflows.reset()
    yield
    workflows.reset()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for every test that runs a real flow (~10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file in the test's tmp_path (migrated on first use)."""
    return f"sqlite:///{tmp_path / 'wtb.db'}"
