"""RegressionService over a memory store: blessing, resolving the baseline, comparing."""

from __future__ import annotations

import pytest

from wtb_domain import App, NotFoundError, SpecError, memory_app
from wtb_domain.model import BatchResult, BatchStatus, BatchTest
from wtb_domain.regression.service import RegressionService

NAME = "qa-nightly"
CASES = [f"c{i}" for i in range(10)]


def add_batch(
    app: App,
    batch_id: str,
    score: float = 1.0,
    status: BatchStatus = BatchStatus.COMPLETED,
    combination: str = "a=x",
    results: bool = True,
) -> str:
    with app.uow() as uow:
        uow.batches.add(BatchTest(batch_id, "m:w", {}, len(CASES), NAME, status=status))
        if results:
            uow.results.add_many(
                [
                    BatchResult(
                        batch_id,
                        f"{batch_id}-{c}",
                        combination,
                        {"a": "x"},
                        c,
                        0,
                        success=True,
                        passed=score >= 0.5,
                        overall_score=score,
                        duration_ms=10.0,
                        metrics={"cost_usd": 0.01},
                    )
                    for c in CASES
                ]
            )
        uow.commit()
    return batch_id


@pytest.fixture
def service() -> RegressionService:
    return RegressionService(memory_app(audit=False))


def test_a_regressed_batch_is_never_blessed_and_the_next_run_still_uses_the_pinned_one(
    service: RegressionService,
) -> None:
    good = add_batch(service.app, "good")
    service.bless(NAME, good, note="green")
    bad = add_batch(service.app, "bad", score=0.0)
    baseline = service.resolve_baseline(None, NAME)
    assert baseline.id == good
    verdict = service.compare(bad, baseline)
    assert verdict.status == "regressed"
    assert service.bless_on_pass(NAME, verdict) is None  # the opt-in only pins a pass
    # The next night: the regressed batch is the newest one, but the baseline stays pinned.
    later = add_batch(service.app, "later", score=1.0)
    assert service.resolve_baseline(None, NAME).id == good
    assert service.compare(later, service.resolve_baseline(None, NAME)).status == "not_worse"
    assert [b.batch_test_id for b in service.history(NAME)] == [good]


def test_bless_on_pass_pins_a_batch_that_is_not_worse(service: RegressionService) -> None:
    service.bless(NAME, add_batch(service.app, "first"))
    verdict = service.compare(add_batch(service.app, "second"), "first")
    blessed = service.bless_on_pass(NAME, verdict)
    assert blessed is not None and blessed.batch_test_id == "second"
    assert service.resolve_baseline(None, NAME).id == "second"


def test_nothing_pinned_says_how_to_bless_one(service: RegressionService) -> None:
    add_batch(service.app, "unblessed")  # a finished batch of that name is not a baseline
    with pytest.raises(
        NotFoundError,
        match=r"no baseline pinned for 'qa-nightly'.*wtb baseline set qa-nightly BATCH_ID",
    ):
        service.resolve_baseline(None, NAME)
    with pytest.raises(SpecError, match=r"^name: .*--baseline"):
        service.resolve_baseline(None, None)


def test_a_baseline_may_be_a_name_or_a_batch_id(service: RegressionService) -> None:
    add_batch(service.app, "b1")
    add_batch(service.app, "b2")
    service.bless("other", "b2")
    assert service.resolve_baseline("b1", NAME).id == "b1"
    assert service.resolve_baseline("other", NAME).id == "b2"
    with pytest.raises(NotFoundError, match="no baseline pinned for 'nope' and no batch"):
        service.resolve_baseline("nope", NAME)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (BatchStatus.RUNNING, "still running"),
        (BatchStatus.FAILED, "is failed; only a completed batch"),
        (BatchStatus.CANCELLED, "is cancelled; only a completed batch"),
    ],
)
def test_only_a_finished_batch_can_be_blessed(
    service: RegressionService, status: BatchStatus, message: str
) -> None:
    add_batch(service.app, "b", status=status)
    with pytest.raises(SpecError, match=message):
        service.bless(NAME, "b")
    assert service.history(NAME) == []


def test_blessing_a_missing_or_empty_batch_fails(service: RegressionService) -> None:
    with pytest.raises(NotFoundError, match="no batch test 'missing'"):
        service.bless(NAME, "missing")
    add_batch(service.app, "empty", results=False)
    with pytest.raises(SpecError, match="has no results"):
        service.bless(NAME, "empty")
    add_batch(service.app, "ok")
    with pytest.raises(SpecError, match="non-empty name"):
        service.bless("  ", "ok")
    assert service.bless(NAME, "ok", blessed_by="me").blessed_by == "me"


def test_a_failed_current_batch_is_incomparable(service: RegressionService) -> None:
    service.bless(NAME, add_batch(service.app, "base"))
    add_batch(service.app, "broken", status=BatchStatus.FAILED)
    verdict = service.compare("broken", "base")
    assert verdict.status == "incomparable" and "incomplete" in verdict.reason


def test_no_shared_combination_is_incomparable(service: RegressionService) -> None:
    add_batch(service.app, "base", combination="a=x")
    add_batch(service.app, "now", combination="a=y")
    verdict = service.compare("now", "base")
    assert verdict.status == "incomparable" and verdict.exit_code == 2


def test_a_batch_is_not_its_own_baseline(service: RegressionService) -> None:
    add_batch(service.app, "same")
    with pytest.raises(SpecError, match="its own baseline"):
        service.compare("same", "same")
