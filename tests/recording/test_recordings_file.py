"""Recordings files: export a recorded batch, stop the server, replay it from the file in a
fresh database (same results, zero live calls); ``wtb recordings export`` and
``--llm-recordings``; the lookup preference; malformed files (one-line errors, hypothesis)."""

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
from tests.recording.test_batch_replay import run_batch, spec
from wtb_cli.main import app as cli
from wtb_domain import App, SpecError, WtbError, memory_app, sql_app
from wtb_domain.batch.spec import load_spec
from wtb_domain.errors import RecordingError
from wtb_domain.ids import new_id
from wtb_domain.model import BatchResult
from wtb_domain.recording.file import SCHEMA_VERSION, export_batch, parse_recordings
from wtb_domain.recording.model import CallMode, CallSettings, request_key
from wtb_domain.recording.recorder import Recorder

WF = "tests.recording.workflows:workflow"


def wtb(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def outputs(app: App, results: list[BatchResult]) -> dict[tuple[str, str, int], Any]:
    return {
        (r.combination_name, r.case_id, r.repeat): (
            app.controller.state(r.execution_id)["loud"],
            r.overall_score,
            r.passed,
        )
        for r in results
    }


def test_a_batch_exported_to_a_file_replays_in_a_fresh_database(
    app: App, fake_llm: FakeOpenAI, tmp_path: Path
) -> None:
    tag = new_id()
    recorded_id = f"rec-{tag}"
    summary, recorded, _ = run_batch(app, spec(recorded_id, tag, cache=False))
    assert summary.done == summary.total == 6 and summary.failed == 0, summary
    assert fake_llm.calls == 6
    with app.uow() as uow:
        doc = export_batch(uow, recorded_id)
    file = tmp_path / "rec.json"
    file.write_text(json.dumps(doc))
    assert doc["wtb_recordings"] == SCHEMA_VERSION
    kinds = [c["kind"] for c in doc["calls"]]
    assert kinds.count("llm") == 6 and kinds.count("tool") == 3  # retrieve: shared prefix
    text = file.read_text()
    assert "sk-test-secret" not in text and "header-secret" not in text
    fake_llm.shutdown()
    tools_before = sum(workflows.TOOL_RUNS.values())

    replay = {"mode": "replay", "recordings": str(file)}
    fresh_apps = [memory_app(), sql_app(f"sqlite:///{tmp_path / 'fresh.db'}")]
    for fresh in fresh_apps:
        s, replayed, _ = run_batch(fresh, spec(f"r-{tag}", tag, llm=replay, cache=False))
        assert s.failed == 0 and s.done == 6, [r.error for r in replayed]
        assert outputs(fresh, replayed) == outputs(app, recorded)
        assert all(r.metrics.get("llm_live_calls") is None for r in replayed)
        assert all(r.metrics["llm_replayed_calls"] == 1 for r in replayed)
        with fresh.uow() as uow:  # replayed calls are stored, but an export holds live ones
            assert uow.calls.for_batch(f"r-{tag}") == []
            assert export_batch(uow, f"r-{tag}")["calls"] == []
    assert fake_llm.calls == 6  # zero live calls
    assert sum(workflows.TOOL_RUNS.values()) == tools_before  # the tool never ran again
    if fresh_apps[1].database is not None:
        fresh_apps[1].database.dispose()


def test_cli_export_and_run_from_the_file(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    app = sql_app(db)
    tag = new_id()
    s, _, _ = run_batch(app, spec(f"cli-{tag}", tag, cache=False))
    assert s.failed == 0
    out = tmp_path / "calls.json"
    exported = wtb("recordings", "export", f"cli-{tag}", "--out", str(out), "--db", db)
    assert exported.exit_code == 0, exported.output
    assert "exported 9 recorded calls" in exported.output
    assert len(json.loads(out.read_text())["calls"]) == 9

    unknown = wtb("recordings", "export", "no-such-batch", "--out", str(out), "--db", db)
    assert unknown.exit_code == 2
    assert "no-such-batch" in unknown.output and len(unknown.output.strip().splitlines()) == 1
    nodir = tmp_path / "x" / "y.json"
    refused = wtb("recordings", "export", f"cli-{tag}", "--out", str(nodir), "--db", db)
    assert refused.exit_code == 2 and "--out: directory" in refused.output

    fake_llm.shutdown()
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    question = json.dumps({"question": f"q0 {tag}"})
    ran = wtb("run", WF, "--input", question, "--llm-recordings", str(out), "--db", fresh)
    assert ran.exit_code == 0, ran.output
    with sql_app(fresh).uow() as uow:
        latest = uow.executions.recent(limit=1)[0]
    assert latest.labels["llm"] == {"mode": "replay", "recordings": str(out.resolve())}
    unseen = '{"question": "never recorded"}'
    missing = wtb("run", WF, "--input", unseen, "--llm-recordings", str(out), "--db", fresh)
    assert missing.exit_code == 1
    assert "no recorded response for request" in missing.output
    flat = "".join(missing.output.split())  # the console wraps long lines
    assert f"recordingsfile{out.resolve()}" in flat
    bad = wtb("run", WF, "--input", question, "--llm-recordings", str(out), "--llm-mode", "record")
    assert bad.exit_code == 2 and "--llm-recordings needs --llm-mode replay" in bad.output


def test_the_spec_field_is_relative_to_the_spec_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    rec = tmp_path / "sub" / "rec.json"
    rec.write_text(json.dumps({"wtb_recordings": SCHEMA_VERSION, "calls": []}))
    spec_file = tmp_path / "sub" / "batch.yaml"
    spec_file.write_text(
        f"workflow: {WF}\ncases: [{{id: c, input: {{question: q}}}}]\n"
        "llm: {mode: replay, recordings: rec.json}\n"
    )
    loaded, _ = load_spec(spec_file)
    assert loaded.llm.recordings == str(rec.resolve())
    rec.write_text("{}")
    with pytest.raises(SpecError, match=rf"recordings file {rec}: wtb_recordings"):
        load_spec(spec_file)
    spec_file.write_text(spec_file.read_text().replace("mode: replay", "mode: record"))
    with pytest.raises(SpecError, match=r"llm\.recordings needs mode replay"):
        load_spec(spec_file)


def _call(kind: str, request: dict[str, Any], response: Any, **more: Any) -> dict[str, Any]:
    name = "lookup" if kind == "tool" else "m"
    return {
        "request_key": request_key(kind, name, request),
        "kind": kind,
        "name": name,
        "node": "n",
        "variant": "default",
        "request": request,
        "response": response,
        **more,
    }


def test_the_lookup_prefers_repeat_and_order_then_order_then_oldest(tmp_path: Path) -> None:
    req = {"tool": "lookup", "args": {"term": "x"}}
    calls = [
        _call("tool", req, "oldest", repeat=5, occurrence=3),
        _call("tool", req, "r0-o1", repeat=0, occurrence=1),
        _call("tool", req, "r1-o0", repeat=1, occurrence=0),
        _call("tool", req, "r2-o1", repeat=2, occurrence=1),
    ]
    file = tmp_path / "pick.json"
    file.write_text(json.dumps({"wtb_recordings": SCHEMA_VERSION, "calls": calls}))

    def served(repeat: int | None) -> list[Any]:
        def no_store() -> Any:
            raise AssertionError("a file replay must not read the store")

        rec = Recorder(
            "n",
            "default",
            "e1",
            CallSettings(CallMode.REPLAY, recordings=str(file)),
            no_store,
            lambda name, value: None,
            repeat=repeat,
        )
        never = lambda term: pytest.fail("the tool ran in replay")  # noqa: E731
        return [rec.tool("lookup", never, {"term": "x"}) for _ in range(3)]

    assert served(2) == ["r1-o0", "r2-o1", "oldest"]
    assert served(0) == ["r1-o0", "r0-o1", "oldest"]
    assert served(1) == ["r1-o0", "r0-o1", "oldest"]


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ("[1]", "expected a JSON object"),
        ('{"calls": []}', "wtb_recordings: missing"),
        ('{"wtb_recordings": 2, "calls": []}', "wtb_recordings: schema version 2"),
        ('{"wtb_recordings": true, "calls": []}', "schema version true"),
        ('{"wtb_recordings": 1}', "calls: Field required"),
        ('{"wtb_recordings": 1, "calls": [{"kind": "llm"}]}', "calls[0].request_key"),
        ("{", "recordings file"),
    ],
)
def test_a_malformed_file_is_a_one_line_error_naming_the_field(doc: str, field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_recordings(doc, "recordings file f.json")
    message = str(info.value)
    assert message.startswith("recordings file f.json") and "\n" not in message
    assert field in message


def test_an_edited_request_is_refused() -> None:
    call = _call("llm", {"model": "m", "messages": []}, {"ok": 1})
    call["request"]["model"] = "other"
    doc = json.dumps({"wtb_recordings": 1, "calls": [call]})
    with pytest.raises(SpecError, match=r"calls\[0\]\.request_key does not match"):
        parse_recordings(doc, "recordings file f.json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
call_fields = st.dictionaries(
    st.sampled_from([*sorted(_call("llm", {}, None)), "repeat", "occurrence", "tokens_in"]),
    json_values,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"wtb_recordings": st.sampled_from([1, 1.0, "1", 0]), "calls": st.lists(call_fields)}
        ),
    )
)
def test_arbitrary_json_never_raises_anything_but_a_wtb_error(data: Any) -> None:
    try:
        parse_recordings(json.dumps(data), "recordings file f.json")
    except WtbError as exc:
        assert "\n" not in str(exc)


def test_a_request_not_in_the_file_is_the_replay_error(tmp_path: Path) -> None:
    file = tmp_path / "empty.json"
    file.write_text(json.dumps({"wtb_recordings": SCHEMA_VERSION, "calls": []}))
    rec = Recorder(
        "n",
        "default",
        "e1",
        CallSettings(CallMode.REPLAY, recordings=str(file)),
        lambda: pytest.fail("store read"),
        lambda name, value: None,
    )
    with pytest.raises(RecordingError, match=r"no recorded response .* in recordings file"):
        rec.tool("lookup", lambda term: term, {"term": "x"})


def test_batch_run_option_replaces_the_spec_source(tmp_path: Path) -> None:
    from wtb_cli.batch import with_call_options

    rec = tmp_path / "rec.json"
    rec.write_text(json.dumps({"wtb_recordings": SCHEMA_VERSION, "calls": []}))
    base = spec("b", "t", llm={"mode": "replay", "source_batch": "old"})
    changed = with_call_options(base, None, None, False, rec)
    assert (changed.llm.mode, changed.llm.recordings) == ("replay", str(rec.resolve()))
    assert changed.llm.source_batch is None
    with pytest.raises(SpecError, match=r"exclude each other"):
        with_call_options(base, None, "other", False, rec)
    with pytest.raises(SpecError, match=r"recordings file .*missing\.json does not exist"):
        with_call_options(base, None, None, False, tmp_path / "missing.json")
