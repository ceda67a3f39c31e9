"""Fixtures of the recording suite: the store matrix and a loopback OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.conftest import app, backend, make_app  # noqa: F401 (the store matrix)
from tests.recording import workflows
from tests.recording.fake_openai import FakeOpenAI


@pytest.fixture
def fake_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """The fake server, serving on 127.0.0.1 for the test (stopped after it)."""
    server = FakeOpenAI().serve()
    monkeypatch.setenv(workflows.URL_ENV, server.base_url)
    try:
        yield server
    finally:
        server.shutdown()


@pytest.fixture(autouse=True)
def _reset_counters() -> Iterator[None]:
    workflows.RUNS.clear()
    workflows.TOOL_RUNS.clear()
    yield
    workflows.RUNS.clear()
    workflows.TOOL_RUNS.clear()
