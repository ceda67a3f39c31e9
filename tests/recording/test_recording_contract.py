"""Recorded LLM and tool calls over memory, SQLite and PostgreSQL, with the official OpenAI
client against a loopback server: record, stop the server, replay; misses; replay-or-live."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.recording import workflows
from tests.recording.fake_openai import FakeOpenAI
from wtb_domain import App
from wtb_domain.engine import RunContext
from wtb_domain.ids import new_id
from wtb_domain.model import Execution, Status
from wtb_domain.recording import llm_label
from wtb_domain.recording.model import CallSettings
from wtb_domain.recording.recorder import Recorder

WF = "tests.recording.workflows:workflow"
NO_CACHE = {"cache": {"enabled": False}}


def run(app: App, question: str, mode: str | None = None, **labels: Any) -> Execution:
    all_labels: dict[str, Any] = {**NO_CACHE, **labels}
    if mode is not None:
        all_labels["llm"] = llm_label(mode)
    return app.controller.run(WF, {"question": question}, labels=all_labels)


def final_state(app: App, execution: Execution) -> dict[str, Any]:
    return app.controller.state(execution.id)


def node_checkpoint(app: App, execution: Execution, node: str) -> str:
    return next(cp.id for cp in app.controller.history(execution.id) if cp.node == node)


def test_record_then_replay_with_the_server_stopped_gives_the_same_results(
    app: App, fake_llm: FakeOpenAI
) -> None:
    question = f"what is {new_id()}?"
    recorded = run(app, question)  # record is the default mode
    assert recorded.status is Status.COMPLETED, recorded.error_message
    assert fake_llm.calls == 1
    assert workflows.TOOL_RUNS[question] == 1
    fake_llm.shutdown()  # from here on a live call would fail: connection refused

    first = run(app, question, "replay")
    second = run(app, question, "replay")
    assert first.status is second.status is Status.COMPLETED, first.error_message
    assert final_state(app, first) == final_state(app, second) == final_state(app, recorded)
    assert fake_llm.calls == 1  # zero live calls while replaying
    assert workflows.TOOL_RUNS[question] == 1  # the tool did not run again either
    assert first.metrics.get("llm_live_calls") is None
    assert first.metrics["llm_replayed_calls"] == second.metrics["llm_replayed_calls"] == 1
    assert first.metrics["tool_replayed_calls"] == 1
    # tokens describe the served response; a replay costs nothing
    assert first.metrics["llm_tokens_out"] == recorded.metrics["llm_tokens_out"] > 0
    assert "llm_cost_usd" not in first.metrics


def test_calls_are_stored_with_the_node_checkpoint_without_secrets(
    app: App, fake_llm: FakeOpenAI
) -> None:
    question = f"store {new_id()}"
    e = run(app, question)
    cp_id = node_checkpoint(app, e, "answer")
    retrieve_cp = node_checkpoint(app, e, "retrieve")
    with app.uow() as uow:
        records = uow.calls.for_checkpoint(cp_id)
        assert [(r.kind, r.name, r.node, r.live) for r in records] == [
            ("llm", "fake-small", "answer", True)
        ]
        rec = records[0]
        bodies = uow.calls.bodies([rec.request_hash, rec.response_hash])
        tool = uow.calls.for_checkpoint(retrieve_cp)
    assert rec.execution_id == e.id and rec.tokens_in > 0 and rec.tokens_out > 0
    request, response = bodies[rec.request_hash], bodies[rec.response_hash]
    assert request["messages"][-1] == {"role": "user", "content": question}
    assert request["max_tokens"] == 20 and request["temperature"] == 0.0
    assert response["choices"][0]["message"]["content"] == final_state(app, e)["answer"]
    text = json.dumps(bodies)
    assert "sk-test-secret" not in text and "header-secret" not in text
    assert "extra_headers" not in request
    # the server did get the header: it is a transport detail, not part of the request key
    sent = {k.lower(): v for k, v in fake_llm.headers[-1].items()}
    assert sent["authorization-extra"] == "Bearer header-secret"
    assert [(r.kind, r.name) for r in tool] == [("tool", "lookup")]


def test_a_request_never_seen_in_replay_fails_the_node_naming_node_and_request(
    app: App, fake_llm: FakeOpenAI
) -> None:
    e = run(app, f"never recorded {new_id()}", "replay")
    assert e.status is Status.FAILED
    assert e.error_type == "RecordingError"
    assert e.paused_at == "failed:retrieve"  # the tool call is the first one made
    message = e.error_message or ""
    assert "node 'retrieve'" in message and "no recorded response for request" in message
    assert "never recorded" in message and "replay-or-live" in message
    assert fake_llm.calls == 0 and not workflows.TOOL_RUNS


def test_replay_names_the_llm_request_it_has_not_seen(app: App, fake_llm: FakeOpenAI) -> None:
    question = f"q {new_id()}"
    run(app, question)
    e = app.controller.run(
        WF,
        {"question": question},
        variants={"answer": "careful"},  # another prompt: another request
        labels={**NO_CACHE, "llm": llm_label("replay")},
    )
    assert e.status is Status.FAILED and e.paused_at == "failed:answer"
    assert "node 'answer'" in (e.error_message or "")
    assert "llm 'fake-small'" in (e.error_message or "")
    assert fake_llm.calls == 1


def test_replay_or_live_makes_one_live_call_then_serves_it(app: App, fake_llm: FakeOpenAI) -> None:
    question = f"fresh {new_id()}"
    e = run(app, question, "replay-or-live")
    assert e.status is Status.COMPLETED, e.error_message
    assert fake_llm.calls == 1
    assert e.metrics["llm_live_calls"] == 1
    again = run(app, question, "replay-or-live")
    assert fake_llm.calls == 1  # recorded by the first run, served now
    assert final_state(app, again) == final_state(app, e)


def test_live_mode_calls_every_time_and_stores_nothing(app: App, fake_llm: FakeOpenAI) -> None:
    question = f"live {new_id()}"
    e = run(app, question, "live")
    run(app, question, "live")
    assert fake_llm.calls == 2
    cp_id = node_checkpoint(app, e, "answer")
    with app.uow() as uow:
        assert uow.calls.for_checkpoint(cp_id) == []
    replay = run(app, question, "replay")
    assert replay.status is Status.FAILED and replay.error_type == "RecordingError"


def test_replay_from_a_source_batch_only_serves_that_batch(app: App, fake_llm: FakeOpenAI) -> None:
    question = f"scoped {new_id()}"
    run(app, question, "record", batch_test_id="batch-a")
    ok = app.controller.run(
        WF,
        {"question": question},
        labels={**NO_CACHE, "llm": llm_label("replay", source_batch="batch-a")},
    )
    other = app.controller.run(
        WF,
        {"question": question},
        labels={**NO_CACHE, "llm": llm_label("replay", source_batch="batch-b")},
    )
    assert ok.status is Status.COMPLETED, ok.error_message
    assert other.status is Status.FAILED and "in batch 'batch-b'" in (other.error_message or "")


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_tokens_and_cost_are_node_metrics_and_prometheus_counters(
    app: App, fake_llm: FakeOpenAI
) -> None:
    model = f"priced-{new_id()}"
    prices = {model: {"input_per_1m": 1000.0, "output_per_1m": 2000.0}}
    e = app.controller.run(
        WF,
        {"question": f"cost {new_id()}"},
        variants={"answer": "default"},
        labels={**NO_CACHE, "llm": llm_label("record", prices=prices)},
    )
    # the model is the variant's param: use the cheap default and check the priced one below
    assert e.status is Status.COMPLETED
    before_in = _sample("wtb_llm_tokens_total", model=model, kind="input")
    before_cost = _sample("wtb_llm_cost_usd_total", model=model)
    recorder = Recorder(
        "n",
        "default",
        "exec",
        CallSettings(prices=prices),
        app.uow,
        RunContext("n", "default", {}, "exec", 1).record,
    )
    ctx = RunContext("n", "default", {}, "exec", 1, calls=recorder)
    recorder.record_metric = ctx.record
    client = workflows.client()
    data = ctx.llm(client._client.chat.completions.create, model=model, messages=[_user("hi")])
    usage = data["usage"]
    assert ctx.metrics["llm_tokens_in"] == usage["prompt_tokens"]
    assert ctx.metrics["llm_tokens_out"] == usage["completion_tokens"]
    expected = (usage["prompt_tokens"] * 1000 + usage["completion_tokens"] * 2000) / 1e6
    assert ctx.metrics["llm_cost_usd"] == pytest.approx(expected)
    after_in = _sample("wtb_llm_tokens_total", model=model, kind="input")
    assert after_in - before_in == usage["prompt_tokens"]
    after_cost = _sample("wtb_llm_cost_usd_total", model=model)
    assert after_cost - before_cost == pytest.approx(expected)
    assert e.metrics["llm_tokens_in"] > 0 and "llm_cost_usd" not in e.metrics  # unpriced


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_the_async_client_is_recorded_and_replayed(app: App, fake_llm: FakeOpenAI) -> None:
    """``await ctx.allm`` / the wrapped AsyncOpenAI go through the same recorder."""
    question = f"async {new_id()}"

    def recorder(mode: str) -> Recorder:
        return Recorder(
            "aanswer",
            "default",
            new_id(),
            CallSettings.from_labels({"llm": llm_label(mode)}),
            app.uow,
            lambda name, value: None,
        )

    async def call(rec: Recorder) -> Any:
        node = rec.bind(workflows.aanswer)
        ctx = RunContext("aanswer", "default", {}, rec.execution_id, 1, calls=rec)
        return await node({"question": question}, ctx)

    live = recorder("record")
    first = asyncio.run(call(live))
    with app.uow() as uow:
        uow.calls.add_many(live.for_checkpoint(f"cp-{new_id()}"), live.bodies)
        uow.commit()
    fake_llm.shutdown()
    replayed = asyncio.run(call(recorder("replay")))
    assert replayed == first and fake_llm.calls == 1


def test_an_async_node_with_the_async_client_is_recorded_and_replayed(
    app: App, fake_llm: FakeOpenAI
) -> None:
    wf = "tests.recording.workflows:async_workflow"
    inputs = {"question": f"async node {new_id()}", "messages": ["hello"]}
    first = app.controller.run(wf, inputs)
    assert first.status is Status.COMPLETED, first.error_message
    fake_llm.shutdown()
    again = app.controller.run(wf, inputs, labels={"llm": llm_label("replay")})
    assert again.status is Status.COMPLETED, again.error_message
    assert final_state(app, again) == final_state(app, first)
    assert fake_llm.calls == 1 and workflows.RUNS["aanswer"] == 2
    # the cached node's update goes through the append reducer once, hit or not
    assert workflows.RUNS["remember"] == 1 and again.metrics["cache_hits"] == 1
    assert final_state(app, again)["messages"] == ["hello", f"seen {inputs['question']}"]


def test_a_failed_node_stores_neither_its_calls_nor_a_cache_entry(
    app: App, fake_llm: FakeOpenAI
) -> None:
    from wtb_domain.workflow import GraphBuilder

    def flaky(state: Any, ctx: Any) -> dict[str, Any]:
        client = workflows.client()
        client.chat.completions.create(model="fake-small", messages=[_user(state["question"])])
        raise RuntimeError("after the call")

    g = GraphBuilder("flaky")
    g.add_node("flaky", flaky, cache=True)
    g.set_entry("flaky")
    wf = g.build()
    question = f"flaky {new_id()}"
    e = app.controller.run(wf, {"question": question})
    assert e.status is Status.FAILED and fake_llm.calls == 1
    # nothing was kept: a replay does not find the call, the cache has no entry
    again = app.controller.run(wf, {"question": question}, labels={"llm": llm_label("replay")})
    assert again.error_type == "RecordingError"


def test_replayed_calls_are_stored_but_only_live_ones_are_served(
    app: App, fake_llm: FakeOpenAI
) -> None:
    question = f"served {new_id()}"
    recorded = run(app, question)
    replayed = run(app, question, "replay")
    cp_id = node_checkpoint(app, replayed, "answer")
    original = node_checkpoint(app, recorded, "answer")
    with app.uow() as uow:
        mine = uow.calls.for_checkpoint(cp_id)
        key = mine[0].request_key
        served = uow.calls.find(key)
    assert [r.live for r in mine] == [False]  # the replayed checkpoint keeps what it got
    assert [r.checkpoint_id for r in served] == [original]
