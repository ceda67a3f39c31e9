"""Batches with recorded calls and the node cache (domain path, the store matrix): record a
batch, stop the server, replay it twice -- same results, zero live calls; the cache across
batches and its hits in the summary and the matrix; ``cache: false``; the repeats rule."""

from __future__ import annotations

from typing import Any

from tests.recording import workflows
from tests.recording.fake_openai import FakeOpenAI
from wtb_domain import App
from wtb_domain.batch.service import BatchService, BatchSummary
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.comparison import ComparisonMatrix
from wtb_domain.ids import new_id
from wtb_domain.model import BatchResult

WF = "tests.recording.workflows:workflow"


def cases(tag: str, n: int = 3) -> list[dict[str, Any]]:
    return [{"id": f"c{i}", "input": {"question": f"q{i} {tag}"}} for i in range(n)]


def spec(batch_id: str, tag: str, **fields: Any) -> BatchSpec:
    data: dict[str, Any] = {
        "workflow": WF,
        "batch_id": batch_id,
        "cases": cases(tag),
        "variants": {"answer": ["default", "careful"]},
        "evaluators": [{"type": "contains", "field": "loud", "value": "ANSWER TO"}],
    }
    data.update(fields)
    return BatchSpec.parse(data)


def run_batch(
    app: App, batch_spec: BatchSpec
) -> tuple[BatchSummary, list[BatchResult], ComparisonMatrix]:
    service = BatchService(app)
    prepared = service.prepare(batch_spec, workers=1)
    nodes = hits = 0
    for group in prepared.groups:
        outcome = service.run_group(prepared.payload, group.case_id, list(group.leaf_keys))
        nodes += outcome.node_executions
        hits += outcome.cache_hits
    summary = service.finish(prepared.batch_id, [], nodes, hits)
    with app.uow() as uow:
        results = uow.results.for_batch(prepared.batch_id)
    return summary, results, service.matrix(prepared.batch_id)


def outputs(app: App, results: list[BatchResult]) -> dict[tuple[str, str, int], Any]:
    return {
        (r.combination_name, r.case_id, r.repeat): (
            app.controller.state(r.execution_id)["loud"],
            r.overall_score,
            r.passed,
        )
        for r in results
    }


def test_a_recorded_batch_replays_with_the_server_stopped(app: App, fake_llm: FakeOpenAI) -> None:
    tag = new_id()
    recorded_id = f"rec-{tag}"
    summary, recorded, _ = run_batch(app, spec(recorded_id, tag, cache=False))
    assert summary.done == summary.total == 6 and summary.failed == 0, summary
    assert fake_llm.calls == 6  # 2 prompts x 3 cases
    fake_llm.shutdown()

    replay = {"mode": "replay", "source_batch": recorded_id}
    s1, first, _ = run_batch(app, spec(f"r1-{tag}", tag, llm=replay, cache=False))
    s2, second, _ = run_batch(app, spec(f"r2-{tag}", tag, llm=replay, cache=False))
    assert s1.failed == s2.failed == 0, [r.error for r in first]
    assert outputs(app, first) == outputs(app, second) == outputs(app, recorded)
    assert fake_llm.calls == 6  # zero live calls in both replays
    assert all(r.metrics.get("llm_live_calls") is None for r in first + second)
    assert all(r.metrics["llm_replayed_calls"] == 1 for r in first)


def test_replaying_a_batch_with_a_new_case_fails_that_case_clearly(
    app: App, fake_llm: FakeOpenAI
) -> None:
    tag = new_id()
    run_batch(app, spec(f"rec-{tag}", tag, cache=False))
    more = [*cases(tag), {"id": "new", "input": {"question": f"unseen {tag}"}}]
    replay = {"mode": "replay", "source_batch": f"rec-{tag}"}
    summary, results, _ = run_batch(app, spec(f"r-{tag}", tag, cases=more, llm=replay, cache=False))
    failed = [r for r in results if not r.success]
    assert {r.case_id for r in failed} == {"new"} and summary.failed == 2
    assert all("no recorded response for request" in (r.error or "") for r in failed)
    assert all("node 'retrieve'" in (r.error or "") for r in failed)


def test_replay_or_live_batch_calls_live_only_for_what_is_new(
    app: App, fake_llm: FakeOpenAI
) -> None:
    tag = new_id()
    run_batch(app, spec(f"rec-{tag}", tag, cache=False))
    assert fake_llm.calls == 6
    more = [*cases(tag), {"id": "new", "input": {"question": f"unseen {tag}"}}]
    summary, _, _ = run_batch(
        app,
        spec(f"r-{tag}", tag, cases=more, llm={"mode": "replay-or-live"}, cache=False),
    )
    assert summary.failed == 0
    assert fake_llm.calls == 8  # the new case's two prompts, nothing else


def test_the_cache_serves_a_second_batch_and_counts_hits(app: App, fake_llm: FakeOpenAI) -> None:
    tag = new_id()
    first, _, _ = run_batch(app, spec(f"a-{tag}", tag))
    assert first.cache_hits == 0
    runs = dict(workflows.RUNS)
    # retrieve is shared by both prompts (prefix sharing): 3 runs; shout after each answer: 6
    assert runs == {"retrieve": 3, "answer": 6, "shout": 6}
    second, results, matrix = run_batch(app, spec(f"b-{tag}", tag))
    assert workflows.RUNS == {"retrieve": 3, "answer": 12, "shout": 6}
    assert second.cache_hits == 9 and second.node_executions == 15
    assert all(r.metrics["cache_hits"] == 2 for r in results)  # retrieve + shout, each leaf
    row = matrix.to_json()
    assert "cache_hits" in row
    assert second.to_dict()["cache_hits"] == 9


def test_cache_false_in_the_spec_runs_every_node(app: App, fake_llm: FakeOpenAI) -> None:
    tag = new_id()
    run_batch(app, spec(f"a-{tag}", tag, cache=False))
    summary, _, _ = run_batch(app, spec(f"b-{tag}", tag, cache=False))
    assert summary.cache_hits == 0
    assert workflows.RUNS == {"retrieve": 6, "answer": 12, "shout": 12}


def test_batch_repeats_never_share_a_cached_result_unless_asked(
    app: App, fake_llm: FakeOpenAI
) -> None:
    tag = new_id()
    one = {"variants": {}, "repeats": 3, "cases": cases(tag, n=1)}
    cache = {"nodes": ["answer"]}  # answer is nondeterministic: one execution per repeat
    summary, _, _ = run_batch(app, spec(f"a-{tag}", tag, cache=cache, **one))
    assert workflows.RUNS["answer"] == 3 and summary.cache_hits == 0
    again, _, _ = run_batch(app, spec(f"b-{tag}", tag, cache=cache, **one))
    assert workflows.RUNS["answer"] == 3  # each repeat hit its own entry
    assert again.cache_hits == 1 + 3 + 3  # retrieve (shared by the repeats), answer, shout
    shared = {"nodes": ["answer"], "share_repeats": True}
    other = {**one, "cases": [{"id": "c0", "input": {"question": f"shared {tag}"}}]}
    run_batch(app, spec(f"c-{tag}", tag, cache=shared, **other))
    assert workflows.RUNS["answer"] == 4  # one run served all three repeats
