"""Fixtures of the reliability suite: a Prefect API the CLI subprocesses share.

A ``wtb batch run`` subprocess without ``PREFECT_API_URL`` starts its own temporary Prefect
server (15-25 s on a loaded machine); pointing every subprocess at the session's test harness
makes a start cost a few seconds, so 10 kills per store fit in CI.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness: None) -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect test harness has no API URL"
    return str(url)
