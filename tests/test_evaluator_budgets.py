"""Evaluator time budgets, the regex matcher's timeout, and custom evaluator refs checked at
spec time: a slow or hostile evaluator fails its result with a clear error, never the batch."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.batch import workflows as wf
from wtb_domain import sql_app
from wtb_domain.batch.plan import resolve
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.errors import SpecError
from wtb_domain.evaluation import (
    Custom,
    ExactMatch,
    LlmJudge,
    Regex,
    RunInfo,
    WeightedEvaluator,
    build_evaluators,
    score_execution,
)

OK = RunInfo(duration_ms=10.0)
NO_HANG_S = 30.0
"""A bound that only proves a call did not hang (the hung or explosive call never returns)."""
EVIL = "a" * 40 + "!"
# `regex` resolves ^(a+)+$ without backtracking; (a|aa)+$ still explodes (2^40 paths).
EXPLOSIVE = r"(a|aa)+$"

SCORERS = """
import functools
import os
import threading
from os import system

release = threading.Event()
calls = []
print_ref = print
half = functools.partial(max, 0.5)


def hang(output, expected, run):
    calls.append("hang")
    release.wait(60)
    return 1.0


def boom(output, expected, run):
    raise ValueError("boom")


def text(output, expected, run):
    return "high"


def two_args(output, expected):
    return 1.0


def judge_two_args(question, output_text):
    return 1.0


class Scorer:
    def __init__(self, bonus=0.0):
        self.bonus = bonus

    def __call__(self, output, expected, run):
        return 0.5 + self.bonus


class NeedsArgs:
    def __init__(self, model):
        self.model = model

    def __call__(self, output, expected, run):
        return 1.0


class NotCallable:
    pass
"""


@pytest.fixture
def scorers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (tmp_path / "budget_scorers.py").write_text(SCORERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("budget_scorers", None)
    module = importlib.import_module("budget_scorers")
    yield module
    module.release.set()  # let an abandoned call finish so no thread outlives the test
    sys.modules.pop("budget_scorers", None)


# --- regex ---------------------------------------------------------------------------------------


def test_nested_quantifier_finishes_quickly_with_the_regex_matcher() -> None:
    start = time.monotonic()
    card = score_execution([Regex(r"^(a+)+$")], {"answer": EVIL}, None, OK)
    # Python's re would backtrack for hours here; the bound only proves it did not hang
    # (never a performance claim: shared CI machines are slow).
    assert time.monotonic() - start < NO_HANG_S
    assert card.scores == {"regex": 0.0}
    assert card.errors == {}


def test_catastrophic_regex_times_out_its_result_and_the_other_evaluators_still_score() -> None:
    built = build_evaluators(
        [
            {"type": "exact_match", "value": EVIL},
            {"type": "contains", "value": "aaa"},
            {"type": "regex", "pattern": EXPLOSIVE, "timeout_s": 1.0},
        ]
    )
    start = time.monotonic()
    card = score_execution(built, {"answer": EVIL}, None, OK)
    elapsed = time.monotonic() - start
    assert elapsed < NO_HANG_S, elapsed  # the pattern alone would run for hours
    assert card.errors == {"regex": "evaluator regex[2] timed out after 1.0 s"}
    assert card.error == "evaluator regex[2] timed out after 1.0 s"
    assert card.scores == {"exact_match": 1.0, "contains": 1.0, "regex": 0.0}
    assert card.passed is False  # 2/3 overall would pass; a failed evaluator fails the result
    assert card.to_dict()["errors"] == card.errors


def test_regex_default_budget_is_one_second_and_matching_still_works() -> None:
    (regex,) = build_evaluators([{"type": "regex", "pattern": r"\d{4}"}])
    assert regex.budget_s == 1.0
    assert score_execution([regex], {"answer": "in 1990"}, None, OK).scores == {"regex": 1.0}
    (em,) = build_evaluators([{"type": "exact_match"}])
    assert em.budget_s == 5.0


# --- budgets for user code -----------------------------------------------------------------------


def test_hung_custom_evaluator_times_out_and_is_not_called_again_while_still_hung(
    scorers: Any,
) -> None:
    built = build_evaluators(
        [
            {"type": "exact_match"},
            {"type": "custom", "function": "budget_scorers:hang", "name": "slow", "timeout_s": 0.3},
        ]
    )
    start = time.monotonic()
    first = score_execution(built, {"answer": "x"}, {"answer": "x"}, OK)
    assert time.monotonic() - start < NO_HANG_S  # the evaluator itself never returns
    assert first.errors == {"slow": "evaluator slow[1] timed out after 0.3 s"}
    assert first.scores == {"exact_match": 1.0, "slow": 0.0}

    start = time.monotonic()
    second = score_execution(built, {"answer": "x"}, {"answer": "x"}, OK)
    assert time.monotonic() - start < NO_HANG_S
    assert "still running" in second.errors["slow"]
    assert scorers.calls == ["hang"]  # not called again: no second hung thread

    scorers.release.set()  # the hung call returns: the function is called normally again
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        third = score_execution(built, {"answer": "x"}, {"answer": "x"}, OK)
        if not third.errors:
            break
        time.sleep(0.05)
    assert third.errors == {}
    assert third.scores == {"exact_match": 1.0, "slow": 1.0}


def test_custom_evaluator_that_raises_or_returns_text_fails_only_its_result(scorers: Any) -> None:
    built = build_evaluators(
        [
            {"type": "custom", "function": "budget_scorers:boom", "name": "boom"},
            {"type": "custom", "function": "budget_scorers:text", "name": "text"},
            {"type": "exact_match"},
        ]
    )
    card = score_execution(built, {"answer": "x"}, {"answer": "x"}, OK)
    assert card.errors == {
        "boom": "evaluator boom[0] raised ValueError: boom",
        "text": "evaluator text[1] returned str, expected a number in [0, 1]",
    }
    assert card.scores["exact_match"] == 1.0
    assert not card.passed


def test_evaluator_objects_from_python_run_within_their_budget() -> None:
    class Sleepy:
        name = "sleepy"

        def evaluate(self, output: Any, expected: Any, run: RunInfo) -> float:
            time.sleep(2)
            return 1.0

    start = time.monotonic()
    card = score_execution([WeightedEvaluator(Sleepy(), timeout_s=0.2)], {}, None, OK)
    assert time.monotonic() - start < NO_HANG_S / 10  # it sleeps 2 s: not waited for
    assert card.errors == {"sleepy": "evaluator sleepy[0] timed out after 0.2 s"}


@pytest.mark.parametrize("bad", [0, -1, "5", True, float("nan"), 1e9])
def test_timeout_must_be_a_positive_number_of_seconds(bad: Any) -> None:
    with pytest.raises(SpecError, match=r"^evaluators\[1\]\.timeout_s: "):
        build_evaluators([{"type": "exact_match"}, {"type": "token_f1", "timeout_s": bad}])


def test_a_slow_evaluator_fails_its_results_and_the_batch_goes_on(
    scorers: Any, tmp_path: Path
) -> None:
    """Through the batch service (what the Prefect task calls): every result is recorded."""
    url = f"sqlite:///{tmp_path / 'wtb.db'}"
    spec = BatchSpec.parse(
        {
            "workflow": wf.LINEAR3,
            "batch_id": "budgets",
            "variants": {"a": ["x", "y"]},
            "cases": [{"id": "c1", "input": {"q": EVIL}, "expected": {"answer": "?"}}],
            "evaluators": [
                {"type": "token_f1"},
                {"type": "regex", "field": "q", "pattern": EXPLOSIVE, "timeout_s": 0.2},
            ],
        }
    )
    service = BatchService(sql_app(url, audit=False))
    prepared = service.prepare(spec, workers=1)
    start = time.monotonic()
    for group in prepared.groups:
        service.run_group(prepared.payload, group.case_id, group.leaf_keys)
    assert time.monotonic() - start < NO_HANG_S
    with service.app.uow() as uow:
        results = uow.results.for_batch("budgets")
    assert len(results) == 2
    assert {r.error for r in results} == {"evaluator regex[1] timed out after 0.2 s"}
    assert not any(r.success or r.passed for r in results)


# --- custom evaluator refs checked at spec time --------------------------------------------------


def _custom_at_3(ref: str, kind: str = "custom", key: str = "function") -> list[dict[str, Any]]:
    return [{"type": "exact_match", "name": f"em{i}"} for i in range(3)] + [
        {"type": kind, key: ref}
    ]


@pytest.mark.parametrize(
    "ref",
    [
        "os:system",
        "builtins:eval",
        "builtins:print",
        "subprocess:run",
        "sys:exit",
        "shutil:rmtree",
        "os.path:join",
        "posix:system",
        "json:loads",
        "importlib:import_module",
    ],
)
def test_stdlib_and_builtin_functions_are_refused_naming_the_field(ref: str) -> None:
    with pytest.raises(SpecError) as info:
        build_evaluators(_custom_at_3(ref))
    message = str(info.value)
    assert message.startswith(f"evaluators[3].function: {ref!r}: "), message
    assert "standard-library or builtin module" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("attr", "fragment"),
    [
        ("system", "is a builtin (of 'posix')"),  # `from os import system` in a user module
        ("print_ref", "is a builtin (of 'builtins')"),
        ("half", "is from 'functools'"),
        ("two_args", "cannot be called as (output, expected, run)"),
        ("NeedsArgs", "constructor needs arguments"),
        ("NotCallable", "without __call__"),
        ("release", "points to a Event, not a function"),
    ],
)
def test_user_module_refs_must_be_own_functions_with_the_right_signature(
    scorers: Any, attr: str, fragment: str
) -> None:
    with pytest.raises(SpecError) as info:
        build_evaluators(_custom_at_3(f"budget_scorers:{attr}"))
    assert str(info.value).startswith("evaluators[3].function: "), str(info.value)
    assert fragment in str(info.value)


def test_judge_refs_are_checked_the_same_way(scorers: Any) -> None:
    with pytest.raises(SpecError, match=r"^evaluators\[3\]\.judge: 'os:system': "):
        build_evaluators(_custom_at_3("os:system", "llm_judge", "judge"))
    with pytest.raises(SpecError, match=r"^evaluators\[3\]\.judge: .*cannot be called as"):
        build_evaluators(_custom_at_3("budget_scorers:judge_two_args", "llm_judge", "judge"))
    with pytest.raises(SpecError, match="is a builtin"):
        LlmJudge(len)


def test_a_class_with_call_is_created_once_and_called(scorers: Any) -> None:
    (built,) = build_evaluators([{"type": "custom", "function": "budget_scorers:Scorer"}])
    assert score_execution([built], {}, None, OK).scores == {"custom": 0.5}
    assert Custom(scorers.Scorer(bonus=0.25)).evaluate({}, None, OK) == 0.75
    with pytest.raises(SpecError, match=r"^function: "):
        Custom(print)  # type: ignore[arg-type]


def test_os_system_is_refused_when_the_batch_is_resolved_before_any_task() -> None:
    spec = BatchSpec.parse(
        {
            "workflow": wf.LINEAR3,
            "variants": {"a": ["x"]},
            "cases": [{"id": "c1", "input": {"q": "q"}}],
            "evaluators": [{"type": "exact_match"}, {"type": "custom", "function": "os:system"}],
        }
    )
    with pytest.raises(SpecError, match=r"^evaluators\[1\]\.function: 'os:system': "):
        resolve(spec)


def test_built_in_evaluators_keep_scoring_inline() -> None:
    card = score_execution([ExactMatch()], {"answer": "a"}, {"answer": "a"}, OK)
    assert (card.scores, card.errors, card.passed) == ({"exact_match": 1.0}, {}, True)


def test_methods_and_callable_objects_of_user_modules_are_accepted(scorers: Any) -> None:
    scorers_src = Path(scorers.__file__)
    scorers_src.write_text(
        scorers_src.read_text() + "\n\nscorer = Scorer(bonus=0.5)\nbound = scorer.__call__\n"
    )
    sys.modules.pop("budget_scorers", None)
    for attr, expected in (("bound", 1.0), ("scorer", 1.0)):
        (built,) = build_evaluators([{"type": "custom", "function": f"budget_scorers:{attr}"}])
        card = score_execution([built], {}, None, OK)
        assert card.scores == {"custom": expected}, attr


def test_a_custom_evaluator_calling_exit_fails_its_result_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exiting_scorers.py").write_text(
        "import sys\n\ndef score(output, expected, run):\n    sys.exit(3)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    built = build_evaluators([{"type": "custom", "function": "exiting_scorers:score"}])
    card = score_execution(built, {}, None, OK)
    assert card.errors == {"custom": "evaluator custom[0] raised SystemExit: 3"}


@pytest.mark.usefixtures("prefect_harness")
def test_a_hung_custom_evaluator_and_a_catastrophic_regex_do_not_hang_the_prefect_flow(
    scorers: Any, tmp_path: Path
) -> None:
    from flows.batch_test import run_batch

    url = f"sqlite:///{tmp_path / 'wtb.db'}"
    spec = BatchSpec.parse(
        {
            "workflow": wf.LINEAR3,
            "batch_id": "budgets-flow",
            "variants": {"a": ["x", "y"]},
            "cases": [{"id": f"c{n}", "input": {"q": EVIL}} for n in (1, 2)],
            "evaluators": [
                {"type": "token_f1"},
                {"type": "regex", "field": "q", "pattern": EXPLOSIVE, "timeout_s": 0.5},
                {"type": "custom", "function": "budget_scorers:hang", "timeout_s": 0.5},
            ],
            "max_workers": 2,
            "database_url": url,
        }
    )
    start = time.monotonic()
    summary = run_batch(spec)
    assert time.monotonic() - start < 60
    assert summary["state"] == "Completed", summary
    assert (summary["done"], summary["failed"]) == (4, 4)
    results = results_of_batch(url, "budgets-flow")
    assert len(results) == 4
    for r in results:
        assert r.error is not None
        assert r.error.startswith("evaluator regex[1] timed out after 0.5 s; evaluator custom[2] ")
    timed_out = [r for r in results if "custom[2] timed out after 0.5 s" in (r.error or "")]
    assert 1 <= len(timed_out) <= 2  # one per worker at most; later calls fail fast (busy)


def results_of_batch(url: str, batch_id: str) -> list[Any]:
    with sql_app(url, audit=False).uow() as uow:
        return list(uow.results.for_batch(batch_id))
