"""Tests for the shipped demo QA workflow, driven by hand with a fake node context."""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest

from wtb_domain.demo.qa import (
    DATASET_PATH,
    build_workflow,
    load_corpus,
    load_dataset,
    workflow,
)
from wtb_domain.workflow import END, Workflow, load_workflow

BEST = {"retrieve": "bm25", "rerank": "none", "answer": "extractive"}
DEFAULT = {"retrieve": "keyword", "rerank": "none", "answer": "extractive"}
WORST = {"retrieve": "keyword_k1", "rerank": "none", "answer": "first_sentence"}


@dataclass
class FakeCtx:
    """The minimal NodeContext a node needs."""

    node: str
    variant: str
    params: Mapping[str, Any]
    execution_id: str = "test-exec"
    metrics: dict[str, float] = field(default_factory=dict)

    def record(self, name: str, value: float) -> None:
        self.metrics[name] = self.metrics.get(name, 0.0) + value


@dataclass
class Run:
    """The final state of a hand-driven run plus what each step produced."""

    state: dict[str, Any]
    path: list[str] = field(default_factory=list)
    updates: list[Mapping[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def drive(question: str, selection: Mapping[str, str], *, sleep: bool = False) -> Run:
    """Walk the demo graph like an engine would; ``sleep=False`` zeroes simulated latency."""
    run = Run(state={"question": question})
    node_name = workflow.next_node(None, run.state)
    while node_name != END:
        variant = workflow.node(node_name).variant(selection.get(node_name))
        params = dict(variant.params) if sleep else {**variant.params, "latency_ms": 0}
        ctx = FakeCtx(node_name, variant.name, params)
        update = variant.fn(MappingProxyType(run.state), ctx) or {}
        run.path.append(node_name)
        run.updates.append(update)
        for name, value in ctx.metrics.items():
            run.metrics[name] = run.metrics.get(name, 0.0) + value
        run.state = {**run.state, **update}
        node_name = workflow.next_node(node_name, run.state)
    return run


def exact_match_rate(selection: Mapping[str, str]) -> float:
    cases = load_dataset()
    hits = 0
    for case in cases:
        answer = drive(case["input"]["question"], selection).state["answer"]
        hits += answer.strip().lower() == case["expected"]["answer"].strip().lower()
    return hits / len(cases)


def test_workflow_builds_and_resolves_by_reference() -> None:
    loaded = load_workflow("wtb_domain.demo.qa:workflow")
    assert isinstance(loaded, Workflow)
    assert loaded is workflow
    fresh = build_workflow()
    assert fresh is not workflow
    assert fresh.structural_hash == workflow.structural_hash
    assert workflow.entry == "retrieve"
    assert set(workflow.nodes) == {"retrieve", "rerank", "answer", "fallback"}


@pytest.mark.parametrize("node", ["retrieve", "rerank", "answer"])
def test_each_tunable_node_has_at_least_three_variants(node: str) -> None:
    assert len(workflow.variant_names()[node]) >= 3


def test_named_selections_exist() -> None:
    for selection in (BEST, DEFAULT, WORST):
        workflow.check_variants(selection)


def test_dataset_answers_appear_in_exactly_one_document() -> None:
    cases = load_dataset()
    corpus = load_corpus()
    assert DATASET_PATH.is_file()
    assert len(cases) >= 20
    assert len({c["id"] for c in cases}) == len(cases)
    assert len({d["id"] for d in corpus}) == len(corpus) >= 30
    for case in cases:
        answer = case["expected"]["answer"]
        pattern = re.compile(rf"\b{re.escape(answer)}\b", re.IGNORECASE)
        holders = [d["id"] for d in corpus if pattern.search(d["text"])]
        assert len(holders) == 1, f"{case['id']}: {answer!r} is in {holders}"


def test_best_combination_beats_worst_by_a_clear_margin() -> None:
    best = exact_match_rate(BEST)
    worst = exact_match_rate(WORST)
    assert best >= 0.8
    assert worst <= 0.2
    assert best - worst >= 0.5


def test_better_retrieval_beats_the_default_keyword_retriever() -> None:
    assert exact_match_rate(BEST) - exact_match_rate(DEFAULT) >= 0.2


def test_every_node_output_is_json_serialisable() -> None:
    names = workflow.variant_names()
    questions = [c["input"]["question"] for c in load_dataset()[:3]] + ["zebra quantum flux?"]
    combos = itertools.product(names["retrieve"], names["rerank"], names["answer"])
    for retrieve, rerank, answer in combos:
        selection = {"retrieve": retrieve, "rerank": rerank, "answer": answer}
        for question in questions:
            run = drive(question, selection)
            for update in run.updates:
                assert json.loads(json.dumps(update)) == update
            assert isinstance(run.state["answer"], str)
            assert run.state["evidence"] is None or isinstance(run.state["evidence"], str)


def test_nodes_do_not_mutate_the_state_they_see() -> None:
    question = load_dataset()[0]["input"]["question"]
    state = drive(question, {"rerank": "none"}).state
    snapshot = copy.deepcopy(state)
    for node_name in ("rerank", "answer"):
        for variant in workflow.node(node_name).variants.values():
            variant.fn(MappingProxyType(state), FakeCtx(node_name, variant.name, {}))
    assert state == snapshot


def test_unanswerable_question_routes_to_fallback() -> None:
    run = drive("zebra quantum flux?", BEST)
    assert run.path == ["retrieve", "rerank", "fallback"]
    assert run.state["answer"] == "I don't know"
    assert run.state["evidence"] is None


def test_answered_question_names_its_evidence() -> None:
    case = load_dataset()[0]
    run = drive(case["input"]["question"], BEST)
    assert run.path == ["retrieve", "rerank", "answer"]
    corpus = {d["id"]: d["text"] for d in load_corpus()}
    assert case["expected"]["answer"] in corpus[run.state["evidence"]]


def test_runs_are_deterministic_and_record_usage() -> None:
    question = load_dataset()[5]["input"]["question"]
    selection = {"retrieve": "ngram", "rerank": "proximity", "answer": "llm_sim"}
    first = drive(question, selection, sleep=True)
    second = drive(question, selection, sleep=True)
    assert first.state == second.state
    assert first.metrics == second.metrics
    assert first.metrics["tokens"] > 0
    cheap = drive(question, {**selection, "answer": "extractive"}, sleep=True)
    assert first.metrics["cost_usd"] > cheap.metrics["cost_usd"]
