"""Node faults inside a batch: a node raising, a node over its timeout, a state over the size
limit. Each fails its own execution with a clear error; the batch goes on and completes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.reliability import harness as h
from tests.reliability import workflows as wf
from wtb_cli.main import app as cli
from wtb_domain import StateError, Status, memory_app, sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.errors import SpecError
from wtb_domain.state import (
    DEFAULT_MAX_STATE_BYTES,
    MAX_STATE_ENV,
    check_state_size,
    max_state_bytes,
)

LIMIT = 16 * 1024
CASES = [
    {"id": f"f{i}", "input": {"q": f"q{i}"}, "expected": {"answer": f"q{i}:ok"}} for i in (0, 1)
]


def faults_spec(url: str, batch_id: str, modes: list[str], **fields: Any) -> BatchSpec:
    data: dict[str, Any] = {
        "workflow": wf.FAULTS,
        "batch_id": batch_id,
        "variants": {"work": modes},
        "cases": CASES,
        "evaluators": [{"type": "exact_match"}],
        "max_workers": 2,
        "database_url": url,
    }
    data.update(fields)
    return BatchSpec.parse(data)


def test_faulty_nodes_fail_their_results_and_the_batch_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_STATE_ENV, str(LIMIT))
    monkeypatch.setenv(wf.NODE_LOG_ENV, str(tmp_path / "calls.log"))
    url = f"sqlite:///{tmp_path / 'wtb.db'}"
    spec = faults_spec(url, "faults", ["ok", "boom", "slow", "big"])
    service = BatchService(sql_app(url, audit=False))
    prepared = service.prepare(spec, workers=2)
    for group in prepared.groups:
        service.run_group(prepared.payload, group.case_id, list(group.leaf_keys))
    summary = service.finish("faults")
    assert (summary.status.value, summary.done, summary.failed) == (
        "completed_with_failures",
        8,
        6,
    )

    by_variant: dict[str, set[str | None]] = {}
    for r in h.results(url, "faults"):
        by_variant.setdefault(r.variant_config["work"], set()).add(r.error)
        assert r.success is (r.variant_config["work"] == "ok")
    assert by_variant["ok"] == {None}
    assert by_variant["boom"] == {"ValueError: boom on q0", "ValueError: boom on q1"}
    assert by_variant["slow"] == {"TimeoutError: node 'work' exceeded its timeout of 0.5 s"}
    (big,) = by_variant["big"]
    assert big is not None and big.startswith("StateError: node 'work' made the state ")
    assert f"key 'blob': {64 * 1024 + 2} bytes), over the limit of {LIMIT} bytes" in big
    assert MAX_STATE_ENV in big

    # the failed nodes stopped their executions: finish ran for the ok leaves only
    finished = [e for e, n, _ in wf.calls(tmp_path / "calls.log") if n == "finish"]
    assert len(finished) == 2


def test_state_limit_fails_the_execution_not_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_STATE_ENV, str(LIMIT))
    controller = memory_app(audit=False).controller
    execution = controller.run(wf.faults(), {"q": "q"}, variants={"work": "big"})
    assert execution.status is Status.FAILED
    assert execution.error_type == "StateError"
    assert "node 'work'" in str(execution.error_message)
    assert "'blob'" in str(execution.error_message)
    assert f"limit of {LIMIT} bytes" in str(execution.error_message)
    assert execution.paused_at == "failed:work"
    assert controller.state(execution.id) == {"q": "q"}  # nothing of the big update stored
    assert len(controller.history(execution.id)) == 1

    # under the limit the same node passes
    monkeypatch.setenv(MAX_STATE_ENV, str(4 * LIMIT + 100))
    ok = memory_app(audit=False).controller.run(wf.faults(), {"q": "q"}, variants={"work": "big"})
    assert ok.status is Status.COMPLETED


def test_an_input_over_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_STATE_ENV, "100")
    controller = memory_app(audit=False).controller
    with pytest.raises(StateError, match=r"the input state is \d+ bytes \(key 'q'"):
        controller.run(wf.faults(), {"q": "x" * 200})


def test_size_check_counts_the_whole_state_and_allows_shrinking() -> None:
    sizes = {"a": 60, "b": 30}
    check_state_size(sizes, {"b": 40}, node="n", limit=100)  # 100: at the limit
    with pytest.raises(StateError, match=r"node 'n' made the state 101 bytes \(key 'b': 41"):
        check_state_size(sizes, {"b": 41}, node="n", limit=100)
    check_state_size({"a": 500}, {"a": 400}, node="n", limit=100)  # over, but smaller than before
    check_state_size({"a": 500}, {}, node="n", limit=100)


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5", "16MiB", "9" * 40, "nan"])
def test_a_bad_limit_is_one_line_naming_the_variable(value: str) -> None:
    with pytest.raises(SpecError) as info:
        max_state_bytes(value)
    message = str(info.value)
    assert message.startswith(f"{MAX_STATE_ENV}: ") and "\n" not in message
    assert "unset it" in message


def test_the_limit_defaults_to_16_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_STATE_ENV, raising=False)
    assert max_state_bytes() == DEFAULT_MAX_STATE_BYTES == 16 * 1024 * 1024
    assert max_state_bytes(" 2048 ") == 2048
    monkeypatch.setenv(MAX_STATE_ENV, "")
    assert max_state_bytes() == DEFAULT_MAX_STATE_BYTES


def test_cli_refuses_a_bad_limit_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["history", "nope", "--db", f"sqlite:///{tmp_path / 'wtb.db'}"],
        env={MAX_STATE_ENV: "lots"},
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and MAX_STATE_ENV in lines[0], result.output
    assert "Traceback" not in result.output
