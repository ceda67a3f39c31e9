"""Scoring one execution: evaluators, building them from config, and the score card."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from wtb_domain.errors import SpecError
from wtb_domain.evaluation import (
    Contains,
    Cost,
    Custom,
    Evaluator,
    ExactMatch,
    JsonKeys,
    JsonSchema,
    Latency,
    LlmJudge,
    NumericTolerance,
    Regex,
    RunInfo,
    TokenF1,
    WeightedEvaluator,
    build_evaluators,
    default_qa_evaluators,
    fake_judge,
    score_execution,
    token_f1,
)

OK = RunInfo(duration_ms=100.0, metrics={"cost_usd": 0.02, "tokens": 120})
FAILED = RunInfo(duration_ms=5.0, error="NodeError: boom")


def score(evaluator: Any, output: Mapping[str, Any], expected: Any = None) -> float:
    result: float = evaluator.evaluate(output, expected, OK)
    return result


def test_exact_match_normalises_case_and_whitespace_by_default() -> None:
    em = ExactMatch()
    assert score(em, {"answer": "  Paris\n"}, {"answer": "paris"}) == 1.0
    assert score(em, {"answer": "New   York"}, {"answer": "new york"}) == 1.0
    assert score(ExactMatch(normalize=False), {"answer": "Paris "}, {"answer": "Paris"}) == 0.0
    assert score(em, {"answer": "Paris."}, {"answer": "Paris"}) == 0.0


def test_exact_match_accepts_any_of_a_list_of_expected_answers() -> None:
    assert score(ExactMatch(), {"answer": "NYC"}, {"answer": ["New York", "nyc"]}) == 1.0


def test_missing_output_or_expected_field_scores_zero() -> None:
    for evaluator in (ExactMatch(), Contains(), TokenF1(), NumericTolerance()):
        assert score(evaluator, {"other": "x"}, {"answer": "x"}) == 0.0
        assert score(evaluator, {"answer": "x"}, None) == 0.0


def test_field_is_a_dotted_path_into_nested_output() -> None:
    output = {"result": {"items": [{"id": "a7"}]}}
    assert score(ExactMatch(field="result.items.0.id"), output, {"result": output["result"]}) == 1
    assert score(Regex(r"^a\d$", field="result.items.0.id"), output) == 1.0
    assert score(Regex(r"^a\d$", field="result.items.5.id"), output) == 0.0


@pytest.mark.parametrize(
    ("prediction", "truth", "expected"),
    [
        ("Denver Broncos", "Denver Broncos", 1.0),
        ("the Denver Broncos!", "Denver Broncos", 1.0),
        ("Broncos", "Denver Broncos", 2 / 3),
        ("Denver Broncos won", "Denver Broncos", 0.8),
        ("Carolina Panthers", "Denver Broncos", 0.0),
        ("a", "the", 1.0),
    ],
)
def test_token_f1_matches_squad_values(prediction: str, truth: str, expected: float) -> None:
    assert token_f1(prediction, truth) == pytest.approx(expected)
    assert score(TokenF1(), {"answer": prediction}, {"answer": truth}) == pytest.approx(expected)


def test_contains_and_constant_value() -> None:
    assert score(Contains(), {"answer": "It is Paris, France"}, {"answer": "paris"}) == 1.0
    assert score(Contains(case_sensitive=True), {"answer": "PARIS"}, {"answer": "paris"}) == 0.0
    assert score(Contains(value="sorry"), {"answer": "I'm sorry"}) == 1.0


def test_numeric_tolerance_parses_text_and_respects_tolerances() -> None:
    expected = {"answer": 100}
    assert score(NumericTolerance(abs_tol=0.5), {"answer": "100.4"}, expected) == 1.0
    assert score(NumericTolerance(abs_tol=0.5), {"answer": "100.6"}, expected) == 0.0
    assert score(NumericTolerance(rel_tol=0.01), {"answer": "100.9"}, expected) == 1.0
    assert score(NumericTolerance(), {"answer": "1,234.5"}, {"answer": 1234.5}) == 1.0
    assert score(NumericTolerance(abs_tol=1), {"answer": "about 100"}, expected) == 0.0


def test_json_keys_scores_fraction_present_and_parses_json_text() -> None:
    evaluator = JsonKeys(keys=("title", "summary", "meta.author"))
    assert score(evaluator, {"answer": {"title": 1, "meta": {"author": "x"}}}) == pytest.approx(
        2 / 3
    )
    assert score(evaluator, {"answer": '{"title": 1, "summary": 2}'}) == pytest.approx(2 / 3)
    assert score(evaluator, {"answer": "not json"}) == 0.0
    assert score(evaluator, {"answer": [1, 2]}) == 0.0


def test_json_schema_checks_types_required_and_nested_properties() -> None:
    evaluator = JsonSchema(
        schema={
            "type": "object",
            "required": ["name", "tags"],
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        }
    )
    assert score(evaluator, {"answer": {"name": "Ada", "age": 36, "tags": ["x"]}}) == 1.0
    assert score(evaluator, {"answer": '{"name": "Ada", "tags": []}'}) == 1.0
    assert score(evaluator, {"answer": {"name": "Ada"}}) == 0.0
    assert score(evaluator, {"answer": {"name": "Ada", "age": "36", "tags": []}}) == 0.0
    assert score(evaluator, {"answer": {"name": "Ada", "tags": [1]}}) == 0.0


def test_latency_and_cost_decay_linearly_between_target_and_max() -> None:
    latency = Latency(target_ms=100, max_ms=300)
    for duration, expected in ((50, 1.0), (100, 1.0), (200, 0.5), (300, 0.0), (900, 0.0)):
        assert latency.evaluate({}, None, RunInfo(duration_ms=duration)) == expected
    cost = Cost(budget=0.01, max_cost=0.03)
    assert cost.evaluate({}, None, OK) == pytest.approx(0.5)
    assert cost.evaluate({}, None, RunInfo(duration_ms=1)) == 1.0
    tokens = Cost(budget=100, max_cost=200, metric="tokens", name="tokens_score")
    assert tokens.evaluate({}, None, OK) == pytest.approx(0.8)


def test_failed_run_scores_zero_everywhere_and_does_not_pass() -> None:
    evaluators: list[Evaluator] = [Latency(10, 20), Cost(1, 2), ExactMatch(), TokenF1()]
    output, expected = {"answer": "x"}, {"answer": "x"}
    for evaluator in evaluators:
        assert evaluator.evaluate(output, expected, FAILED) == 0.0
    card = score_execution(evaluators, output, expected, FAILED, pass_threshold=0.0)
    assert card.overall == 0.0
    assert not card.passed
    assert set(card.scores.values()) == {0.0}


def test_weights_normalise_into_overall_score_and_pass_threshold() -> None:
    evaluators = [
        WeightedEvaluator(ExactMatch(), 3.0),
        WeightedEvaluator(Contains(value="zzz"), 1.0),
    ]
    card = score_execution(evaluators, {"answer": "Paris"}, {"answer": "paris"}, OK)
    assert card.overall == pytest.approx(0.75)
    assert card.passed
    strict = score_execution(
        evaluators, {"answer": "Paris"}, {"answer": "paris"}, OK, pass_threshold=0.8
    )
    assert not strict.passed


def test_score_card_holds_scores_by_name_and_recorded_metrics_as_is() -> None:
    card = score_execution(
        default_qa_evaluators(), {"answer": "Broncos"}, {"answer": "Broncos"}, OK
    )
    assert card.scores == {"exact_match": 1.0, "token_f1": 1.0}
    assert card.metrics == {"exact_match": 1.0, "token_f1": 1.0, "cost_usd": 0.02, "tokens": 120}
    assert card.to_dict()["overall"] == 1.0


def test_default_qa_evaluators_weight_exact_match_twice() -> None:
    card = score_execution(
        default_qa_evaluators(), {"answer": "Denver Broncos"}, {"answer": "Broncos"}, OK
    )
    assert card.scores["exact_match"] == 0.0
    assert card.overall == pytest.approx((2 * 0.0 + 1 * 2 / 3) / 3)


def test_build_evaluators_from_plain_dicts() -> None:
    built = build_evaluators(
        [
            {"type": "exact_match", "field": "answer", "weight": 2.0, "name": "em"},
            {"type": "regex", "pattern": r"\d{4}", "name": "has_year"},
            {"type": "latency", "target_ms": 50, "max_ms": 150, "weight": 0},
        ]
    )
    assert [(e.name, e.weight) for e in built] == [("em", 2.0), ("has_year", 1.0), ("latency", 0)]
    card = score_execution(built, {"answer": "in 1990"}, {"answer": "1990"}, OK)
    assert card.scores == {"em": 0.0, "has_year": 1.0, "latency": 0.5}
    assert card.overall == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("configs", "fragment"),
    [
        ([{"type": "exact_match"}, {"type": "regex", "pattern": "("}], "evaluators[1].pattern"),
        ([{"type": "similarity"}], "evaluators[0].type: unknown type 'similarity'"),
        ([{"field": "answer"}], "evaluators[0].type: missing"),
        ([{"type": "regex"}], "evaluators[0].pattern: required"),
        ([{"type": "latency", "target_ms": 10}], "evaluators[0].max_ms: required"),
        ([{"type": "exact_match", "weight": -1}], "evaluators[0].weight: must be"),
        ([{"type": "exact_match", "weight": "2"}], "evaluators[0].weight: expected a number"),
        ([{"type": "exact_match", "weight": 0}, {"type": "token_f1", "weight": 0}], "all weights"),
        ([{"type": "exact_match", "feild": "x"}], "evaluators[0].feild: unknown option"),
        ([{"type": "exact_match"}, {"type": "exact_match"}], "evaluators[1].name"),
        ([{"type": "json_schema", "schema": {"type": "strng"}}], "evaluators[0].schema.type"),
        ([{"type": "latency", "target_ms": 500, "max_ms": 100}], "evaluators[0].max_ms"),
        ([], "non-empty list"),
    ],
)
def test_bad_evaluator_config_names_the_field_path(
    configs: list[dict[str, Any]], fragment: str
) -> None:
    with pytest.raises(SpecError) as info:
        build_evaluators(configs)
    assert fragment in str(info.value)


def test_invalid_regex_error_names_the_field_path_and_the_problem() -> None:
    configs = [{"type": "exact_match"}, {"type": "token_f1"}, {"type": "regex", "pattern": "[a-"}]
    with pytest.raises(SpecError, match=r"^evaluators\[2\]\.pattern: invalid regex '\[a-'"):
        build_evaluators(configs)


@pytest.fixture
def scorer_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "my_scorers.py").write_text(
        "def length_ok(output, expected, run):\n"
        "    return 1.0 if len(output['answer']) <= 5 else 0.25\n"
        "def overshoot(output, expected, run):\n"
        "    return 7\n"
        "def strict_judge(question, output_text, expected_text, rubric=''):\n"
        "    return 1.0 if rubric == 'exact' and output_text == expected_text else 0.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_scorers"


def test_custom_evaluator_by_import_path(scorer_module: str) -> None:
    built = build_evaluators([{"type": "custom", "function": f"{scorer_module}:length_ok"}])
    assert score_execution(built, {"answer": "short"}, None, OK).overall == 1.0
    assert score_execution(built, {"answer": "much longer"}, None, OK).overall == 0.25
    assert Custom(f"{scorer_module}:overshoot").evaluate({}, None, OK) == 1.0


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("no_such_pkg.scorers:fn", "module 'no_such_pkg' not found"),
        (
            "wtb_domain.demo.qa:no_such_function",
            "module 'wtb_domain.demo.qa' has no attribute 'no_such_function'",
        ),
        ("json.dumps", "must look like 'package.module:function'"),
    ],
)
def test_bad_custom_import_path_is_a_spec_error_saying_what_is_missing(
    ref: str, fragment: str
) -> None:
    with pytest.raises(SpecError) as info:
        build_evaluators([{"type": "custom", "function": ref}])
    assert str(info.value).startswith("evaluators[0].function: ")
    assert fragment in str(info.value)


def test_llm_judge_gets_question_output_expected_and_rubric(scorer_module: str) -> None:
    judge = LlmJudge(f"{scorer_module}:strict_judge", rubric="exact")
    assert judge.evaluate({"answer": "42"}, {"answer": "42"}, OK) == 1.0
    assert judge.evaluate({"answer": "41"}, {"answer": "42"}, OK) == 0.0
    calls: list[tuple[str, str, str]] = []

    def three_arg_judge(question: str, output_text: str, expected_text: str) -> float:
        calls.append((question, output_text, expected_text))
        return 0.5

    assert LlmJudge(three_arg_judge).evaluate({"question": "Q?", "answer": "A"}, None, OK) == 0.5
    assert calls == [("Q?", "A", "")]
    with pytest.raises(SpecError, match="rubric"):
        LlmJudge(three_arg_judge, rubric="be strict")


def test_fake_judge_is_deterministic_token_overlap() -> None:
    built = build_evaluators(
        [{"type": "llm_judge", "judge": "wtb_domain.evaluation:fake_judge", "rubric": "r"}]
    )
    output, expected = {"answer": "Denver Broncos"}, {"answer": "Broncos"}
    first = score_execution(built, output, expected, OK).overall
    assert first == score_execution(built, output, expected, OK).overall == pytest.approx(2 / 3)
    assert fake_judge("Who won?", "nobody", "") == 0.0
