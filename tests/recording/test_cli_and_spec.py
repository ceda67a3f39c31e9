"""``--llm-mode`` / ``--no-cache`` on ``wtb run`` and ``wtb fork``, the spec's ``llm:`` and
``cache:`` fields, and request keys (hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from tests.recording import workflows
from tests.recording.fake_openai import FakeOpenAI
from wtb_cli.main import app as cli
from wtb_domain import SpecError, sql_app
from wtb_domain.batch.plan import resolve
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.ids import new_id
from wtb_domain.model import Status
from wtb_domain.recording.model import request_key, stored_request
from wtb_domain.redaction import is_reference

WF = "tests.recording.workflows:workflow"


def wtb(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_run_with_llm_mode_replay_and_no_cache(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    question = json.dumps({"question": f"cli {new_id()}"})
    recorded = wtb("run", WF, "--input", question, "--db", db)
    assert recorded.exit_code == 0, recorded.output
    assert fake_llm.calls == 1
    fake_llm.shutdown()
    replayed = wtb("run", WF, "--input", question, "--llm-mode", "replay", "--no-cache", "--db", db)
    assert replayed.exit_code == 0, replayed.output
    assert workflows.RUNS["retrieve"] == 2  # --no-cache: the cached node ran again
    app = sql_app(db)
    with app.uow() as uow:
        latest = uow.executions.recent(limit=1)[0]
    assert latest.labels["llm"] == {"mode": "replay"}
    assert latest.labels["cache"]["enabled"] is False
    unseen = wtb("run", WF, "--input", '{"question": "never"}', "--llm-mode", "replay", "--db", db)
    assert unseen.exit_code == 1
    assert "no recorded response for request" in unseen.output


def test_fork_with_llm_mode_replays(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    db = f"sqlite:///{tmp_path / 'fork.db'}"
    app = sql_app(db)
    e = app.controller.run(WF, {"question": f"fork {new_id()}"})
    cp = next(c for c in app.controller.history(e.id) if c.node == "retrieve")
    fake_llm.shutdown()
    forked = wtb("fork", cp.id, "--llm-mode", "replay", "--db", db)
    assert forked.exit_code == 0, forked.output
    with app.uow() as uow:
        newest = uow.executions.recent(limit=1)[0]
    assert newest.status is Status.COMPLETED
    assert newest.labels["llm"] == {"mode": "replay"}


def test_a_bad_llm_mode_is_a_one_line_error(tmp_path: Path) -> None:
    result = wtb("run", WF, "--input", "{}", "--llm-mode", "sometimes", "--db", "sqlite://")
    assert result.exit_code != 0
    assert "--llm-mode: unknown mode 'sometimes'" in result.output


def base(**fields: Any) -> dict[str, Any]:
    return {"workflow": WF, "cases": [{"id": "a", "input": {"question": "x"}}], **fields}


def test_spec_llm_and_cache_fields() -> None:
    spec = BatchSpec.parse(base(llm={"mode": "replay", "source_batch": "b1"}, cache=False))
    assert spec.llm.mode == "replay" and spec.llm.source_batch == "b1"
    assert spec.cache.enabled is False
    assert BatchSpec.parse(base()).llm.mode == "record"
    with pytest.raises(SpecError, match=r"llm\.mode"):
        BatchSpec.parse(base(llm={"mode": "sometimes"}))
    with pytest.raises(SpecError, match=r"llm\.prices"):
        BatchSpec.parse(base(llm={"prices": {"m": {"input_per_1m": -1}}}))
    with pytest.raises(SpecError, match=r"cache\.nodes\[0\]"):
        resolve(BatchSpec.parse(base(cache={"nodes": ["nope"]})))
    with pytest.raises(SpecError, match=r"cache\.share_repeat"):
        BatchSpec.parse(base(cache={"share_repeat": True}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(st.dictionaries(st.sampled_from(["model", "messages", "temperature", "n"]), json_values))
def test_the_request_key_ignores_key_order_and_transport_fields(request: dict[str, Any]) -> None:
    key = request_key("llm", "m", stored_request(request, where="r"))
    reordered = dict(reversed(list(request.items())))
    with_transport = {**request, "extra_headers": {"x": "y"}, "timeout": 3}
    assert request_key("llm", "m", stored_request(reordered, where="r")) == key
    assert request_key("llm", "m", stored_request(with_transport, where="r")) == key


@QUICK
@given(json_values)
def test_a_secret_looking_field_is_masked_and_changes_no_key(secret: Any) -> None:
    plain = stored_request({"model": "m", "max_tokens": 5}, where="r")
    with_key = stored_request({"model": "m", "max_tokens": 5, "api_token": secret}, where="r")
    if secret is None or is_reference(secret):  # nothing, or a pointer to a secret: kept
        assert with_key["api_token"] == secret
    else:
        assert with_key["api_token"] == "***"
    assert with_key["max_tokens"] == plain["max_tokens"] == 5


def test_prices_come_from_the_file_wtb_llm_prices_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wtb_domain.recording.prices import cost_usd

    prices = tmp_path / "prices.yaml"
    prices.write_text("m1: {input_per_1m: 2.0, output_per_1m: 4.0}\n")
    monkeypatch.setenv("WTB_LLM_PRICES", str(prices))
    assert cost_usd({}, "m1", 1_000_000, 500_000) == pytest.approx(4.0)
    assert cost_usd({}, "unpriced", 10, 10) is None
    assert cost_usd({"m1": {"input_per_1m": 1.0}}, "m1", 1_000_000, 1) == pytest.approx(1.0)
    prices.write_text("m1: {input_per_1m: -2}\n")
    import os

    os.utime(prices, ns=(1, 1))  # a new mtime: read again
    with pytest.raises(SpecError, match=r"WTB_LLM_PRICES\.m1\.input_per_1m"):
        cost_usd({}, "m1", 1, 1)
