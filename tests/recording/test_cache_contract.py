"""The node result cache over memory, SQLite and PostgreSQL: hit/miss, invalidation, the
repeats rule, ``cache: false``; a hit still writes the node's checkpoint."""

from __future__ import annotations

from typing import Any

from tests.recording import workflows
from tests.recording.fake_openai import FakeOpenAI
from wtb_domain import App
from wtb_domain.ids import new_id
from wtb_domain.model import Execution, Status
from wtb_domain.recording.cache import cache_label
from wtb_domain.workflow import GraphBuilder

WF = "tests.recording.workflows:workflow"


def run(app: App, question: str, **kwargs: Any) -> Execution:
    e = app.controller.run(WF, {"question": question}, **kwargs)
    assert e.status is Status.COMPLETED, e.error_message
    return e


def cache_meta(app: App, e: Execution) -> dict[str, Any]:
    return {cp.node: cp.metadata.get("cache") for cp in app.controller.history(e.id) if cp.node}


def test_a_second_run_is_served_from_the_cache_and_still_writes_checkpoints(
    app: App, fake_llm: FakeOpenAI
) -> None:
    question = f"cache {new_id()}"
    first = run(app, question)
    second = run(app, question)
    assert workflows.RUNS == {"retrieve": 1, "answer": 2, "shout": 1}  # answer is not cached
    assert app.controller.state(second.id) == app.controller.state(first.id)
    meta = cache_meta(app, second)
    assert meta["retrieve"]["hit"] is True and meta["shout"]["hit"] is True
    assert meta["answer"] is None
    assert cache_meta(app, first)["retrieve"]["hit"] is False
    history = app.controller.history(second.id)
    assert [cp.node for cp in history] == [None, "retrieve", "answer", "shout"]
    assert second.metrics["cache_hits"] == 2 and "cache_hits" not in first.metrics
    assert second.cache_hits == 2 and second.nodes_run == 3
    # time travel is unchanged: the hit's checkpoint has the full state
    shout_cp = next(cp for cp in history if cp.node == "shout")
    assert app.controller.checkpoint(shout_cp.id).state == app.controller.state(first.id)


def test_a_changed_read_key_or_variant_misses(app: App, fake_llm: FakeOpenAI) -> None:
    question = f"inv {new_id()}"
    run(app, question)
    run(app, f"{question} (other)")  # the state retrieve reads changed
    assert workflows.RUNS["retrieve"] == 2
    run(app, question, variants={"shout": "calm"})  # other params
    assert workflows.RUNS["shout"] == 3
    run(app, question, variants={"shout": "calm"})
    assert workflows.RUNS["shout"] == 3  # ... cached from now on


def test_a_key_the_node_does_not_read_does_not_invalidate(app: App, fake_llm: FakeOpenAI) -> None:
    question = f"reads {new_id()}"
    app.controller.run(WF, {"question": question, "noise": 1})
    app.controller.run(WF, {"question": question, "noise": 2})
    assert workflows.RUNS["retrieve"] == 1  # reads=["question"] only


def _counting_workflow(tag: str, suffix: str = "") -> Any:
    def node(state: Any, ctx: Any) -> dict[str, Any]:
        workflows.RUNS[tag + suffix] += 1
        return {"out": f"{state['x']}{suffix}"}

    g = GraphBuilder(f"counting-{tag}")
    g.add_node("n", node, cache=True)  # reads the whole state
    g.set_entry("n")
    return g.build(), tag + suffix


def test_without_reads_the_whole_state_is_the_key(app: App) -> None:
    wf, counter = _counting_workflow(new_id())
    app.controller.run(wf, {"x": 1, "y": 1})
    app.controller.run(wf, {"x": 1, "y": 1})
    app.controller.run(wf, {"x": 1, "y": 2})
    assert workflows.RUNS[counter] == 2


def test_a_value_the_node_closes_over_is_part_of_the_key(app: App) -> None:
    tag = new_id()
    first, a = _counting_workflow(tag, "")
    changed, b = _counting_workflow(tag, "!")  # same names, same graph, other closure
    app.controller.run(first, {"x": 1})
    e = app.controller.run(changed, {"x": 1})
    assert workflows.RUNS[a] == 1 and workflows.RUNS[b] == 1
    assert app.controller.state(e.id)["out"] == "1!"


def _one_node(fn: Any) -> Any:
    fn.__qualname__ = "edited_node"  # the same name before and after an edit of its body
    g = GraphBuilder("edited")
    g.add_node("n", fn, cache=True)
    g.set_entry("n")
    return g.build()


def test_the_node_code_is_part_of_the_key(app: App) -> None:
    def before(state: Any, ctx: Any) -> dict[str, Any]:
        return {"out": state["x"] + 1}

    def after(state: Any, ctx: Any) -> dict[str, Any]:
        return {"out": state["x"] * 10}

    x = int(new_id()[-6:], 16)
    app.controller.run(_one_node(before), {"x": x})
    e = app.controller.run(_one_node(after), {"x": x})
    assert app.controller.state(e.id)["out"] == x * 10
    again = app.controller.run(_one_node(after), {"x": x})
    assert again.metrics.get("cache_hits") == 1


def test_cache_false_reads_and_writes_nothing(app: App, fake_llm: FakeOpenAI) -> None:
    question = f"off {new_id()}"
    off = {"cache": cache_label(enabled=False)}
    run(app, question, labels=off)
    e = run(app, question, labels=off)
    assert workflows.RUNS["retrieve"] == 2
    assert all(m is None for m in cache_meta(app, e).values())
    run(app, question)  # nothing was stored while off: a miss, then stored
    run(app, question)
    assert workflows.RUNS["retrieve"] == 3


def test_spec_nodes_opt_a_node_in(app: App, fake_llm: FakeOpenAI) -> None:
    question = f"optin {new_id()}"
    labels = {"cache": cache_label(nodes=["answer"])}
    run(app, question, labels=labels)
    run(app, question, labels=labels)
    assert workflows.RUNS["answer"] == 1
    assert fake_llm.calls == 1


def test_repeats_never_share_a_cached_result_unless_asked(app: App, fake_llm: FakeOpenAI) -> None:
    question = f"rep {new_id()}"

    def leaf(repeat: int, share: bool) -> dict[str, Any]:
        return {
            "leaves": [f"answer=default,retrieve=default,shout=default#{repeat}"],
            "cache": cache_label(share_repeats=share),
        }

    for repeat in (0, 1, 0):
        run(app, question, labels=leaf(repeat, share=False))
    assert workflows.RUNS["retrieve"] == 2  # repeats 0 and 1: one run each; repeat 0 again hit
    other = f"{question} shared"
    for repeat in (0, 1, 2):
        run(app, other, labels=leaf(repeat, share=True))
    assert workflows.RUNS["retrieve"] == 3  # shared across repeats: one run
