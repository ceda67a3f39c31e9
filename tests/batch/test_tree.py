"""The batch domain without Prefect: variant trees, repeats, failures, resume, cancel, scoring.

Every test runs on an in-memory store and on a SQLite file (``store`` fixture).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.batch import workflows as wf
from wtb_domain import App, SpecError, memory_app, sql_app
from wtb_domain.adapters.memory import MemoryStore
from wtb_domain.batch.parity import compare_results
from wtb_domain.batch.plan import resolve
from wtb_domain.batch.service import BatchService, GroupOutcome, PreparedBatch
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.model import BatchResult, BatchStatus, Source


@dataclass
class Store:
    """One store; :meth:`service` builds a fresh BatchService on it (as a new process would)."""

    kind: str
    app: App
    memory: MemoryStore | None = None
    url: str | None = None

    def service(self) -> BatchService:
        if self.memory is not None:
            return BatchService(memory_app(self.memory, audit=False))
        return BatchService(sql_app(self.url, audit=False))

    def node_checkpoints(self) -> int:
        """Checkpoints written by node runs (not input or fork checkpoints)."""
        if self.memory is not None:
            return sum(1 for cp in self.memory.checkpoints.values() if cp.source is Source.NODE)
        assert self.app.database is not None
        with self.app.database.engine.connect() as conn:
            query = text("SELECT count(*) FROM wtb_checkpoints WHERE source = 'node'")
            return int(conn.execute(query).scalar_one())

    def results(self, batch_id: str) -> list[BatchResult]:
        with self.app.uow() as uow:
            return uow.results.for_batch(batch_id)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        memory = MemoryStore()
        yield Store("memory", memory_app(memory, audit=False), memory=memory)
        return
    url = f"sqlite:///{tmp_path / 'wtb.db'}"
    app = sql_app(url, audit=False)
    yield Store("sqlite", app, url=url)
    assert app.database is not None
    app.database.dispose()


def cases(*qs: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": f"case-{q}", "input": {"q": q, **extra}} for q in qs]


def make_spec(workflow: str, batch_id: str, **fields: Any) -> BatchSpec:
    fields.setdefault("cases", cases("one"))
    fields.setdefault("evaluators", [{"type": "exact_match"}, {"type": "token_f1"}])
    return BatchSpec.parse({"workflow": workflow, "batch_id": batch_id, **fields})


ALL3 = {node: list(wf.VARIANTS) for node in ("a", "b", "c")}


def run_case_whole(
    service: BatchService, prepared: PreparedBatch, case_id: str | None = None
) -> GroupOutcome:
    """Run all leaves of one case as a single group (one tree: maximal sharing)."""
    case_id = case_id or prepared.case_ids[0]
    keys = [k for g in prepared.groups if g.case_id == case_id for k in g.leaf_keys]
    return service.run_group(prepared.payload, case_id, keys)


def run_groups(
    service: BatchService, prepared: PreparedBatch, groups: Sequence[Any] | None = None
) -> list[GroupOutcome]:
    return [
        service.run_group(prepared.payload, g.case_id, list(g.leaf_keys))
        for g in (prepared.groups if groups is None else groups)
    ]


def leaf_counts(results: Sequence[BatchResult]) -> Counter[tuple[str, str, int]]:
    return Counter((r.combination_name, r.case_id, r.repeat) for r in results)


def expected_leaves(prepared: PreparedBatch) -> set[tuple[str, str, int]]:
    resolved = resolve(prepared.spec)
    return {
        (leaf.combination.name, case_id, leaf.repeat)
        for case_id in prepared.case_ids
        for leaf in resolved.leaves
    }


def assert_linear3_answers(store: Store, results: Sequence[BatchResult]) -> None:
    """Every linear3 result's final state was produced by its own combination's variants."""
    wrong = []
    for r in results:
        state = store.app.controller.state(r.execution_id)
        tags = "-".join(f"{node}:{r.variant_config.get(node, 'x')}" for node in ("a", "b", "c"))
        want = f"{r.case_id.removeprefix('case-')}|{tags}"
        if state.get("answer") != want:
            wrong.append(f"{r.combination_name} / {r.case_id}: {state.get('answer')!r}")
    assert not wrong, f"{len(wrong)} of {len(results)} results ran other variants: {wrong[:5]}"


# --- prefix sharing ------------------------------------------------------------------------------


def test_prefix_sharing_runs_each_shared_prefix_once(store: Store) -> None:
    service = store.service()
    shared = service.prepare(make_spec(wf.LINEAR3, "shared", variants=ALL3))
    unshared = service.prepare(
        make_spec(wf.LINEAR3, "unshared", variants=ALL3, prefix_sharing=False)
    )
    assert shared.total == unshared.total == 27

    outcome = run_case_whole(service, shared)
    assert wf.runs() == 3 + 9 + 27 == 39
    assert (wf.runs("a"), wf.runs("b"), wf.runs("c")) == (3, 9, 27)
    assert outcome.node_executions == 39
    assert outcome.recorded == 27
    assert outcome.failed == 0
    assert store.node_checkpoints() == 39

    wf.reset()
    outcome = run_case_whole(service, unshared)
    assert wf.runs() == 27 * 3 == 81
    assert outcome.node_executions == 81
    assert outcome.recorded == 27
    assert store.node_checkpoints() == 39 + 81

    left, right = store.results("shared"), store.results("unshared")
    report = compare_results("shared", left, "unshared", right)
    assert report.ok, (report.missing, report.differences[:5])
    assert report.compared == 27
    assert_linear3_answers(store, left)
    assert_linear3_answers(store, right)
    answers = {r.combination_name: r for r in left}
    assert answers["a=y,b=z,c=x"].variant_config == {"a": "y", "b": "z", "c": "x"}
    state = store.app.controller.state(answers["a=y,b=z,c=x"].execution_id)
    assert state["answer"] == "one|a:y-b:z-c:x"
    assert state["path"] == ["a:y", "b:z", "c:x"]


def test_planned_groups_cover_every_leaf_once_and_share_within_a_group(store: Store) -> None:
    service = store.service()
    prepared = service.prepare(
        make_spec(wf.LINEAR3, "planned", variants=ALL3, cases=cases("one", "two")), workers=2
    )
    planned = Counter((g.case_id, k) for g in prepared.groups for k in g.leaf_keys)
    assert len(planned) == 54 and set(planned.values()) == {1}

    outcomes = run_groups(service, prepared)
    assert sum(o.recorded for o in outcomes) == 54
    # slicing a case's tree into groups loses some sharing, never correctness
    assert 2 * 39 <= wf.runs() < 2 * 81
    assert service.finish("planned").status is BatchStatus.COMPLETED
    assert_linear3_answers(store, store.results("planned"))


@pytest.mark.parametrize(
    "leaf_keys",
    [
        ["a=y,b=y,c=z#0", "a=y,b=z,c=x#0"],
        ["a=x,b=x,c=y#0", "a=x,b=y,c=z#0", "a=z,b=z,c=z#0"],
        ["a=z,b=y,c=y#0"],
    ],
    ids=["diverge-at-b", "diverge-at-a", "single-leaf"],
)
def test_any_group_of_leaves_runs_each_leafs_own_variants(
    store: Store, leaf_keys: list[str]
) -> None:
    """A task group is any slice of a case's leaves (plan_groups slices cases when there are
    fewer cases than workers): after the tree forks, each branch must still run the variants
    of its own leaves on every later node, not the node's default."""
    service = store.service()
    prepared = service.prepare(make_spec(wf.LINEAR3, "slice", variants=ALL3))
    outcome = service.run_group(prepared.payload, "case-one", leaf_keys)
    assert outcome.recorded == len(leaf_keys)
    results = store.results("slice")
    assert sorted(r.leaf_key for r in results) == sorted(leaf_keys)
    assert_linear3_answers(store, results)


def test_conditional_branches_share_and_untaken_variants_cost_nothing(store: Store) -> None:
    service = store.service()
    variants = {"first": ["p", "q"], "branch_a": ["a1", "a2"], "branch_b": ["b1", "b2"]}
    the_cases = [
        {"id": "to-a", "input": {"kind": "a"}},
        {"id": "to-b", "input": {"kind": "b"}},
    ]
    shared = service.prepare(make_spec(wf.CONDITIONAL, "cond", variants=variants, cases=the_cases))
    unshared = service.prepare(
        make_spec(
            wf.CONDITIONAL,
            "cond-unshared",
            variants=variants,
            cases=the_cases,
            prefix_sharing=False,
        )
    )
    assert shared.total == 16

    outcome_a = run_case_whole(service, shared, "to-a")
    # first: one run per variant; branch_a: one per (first, branch_a); branch_b never runs
    assert (wf.runs("first"), wf.runs("branch_a"), wf.runs("branch_b")) == (2, 4, 0)
    assert outcome_a.node_executions == 6
    assert outcome_a.recorded == 8
    outcome_b = run_case_whole(service, shared, "to-b")
    assert (wf.runs("first"), wf.runs("branch_a"), wf.runs("branch_b")) == (4, 4, 4)
    assert outcome_b.node_executions == 6

    wf.reset()
    run_case_whole(service, unshared, "to-a")
    run_case_whole(service, unshared, "to-b")
    assert wf.runs() == 16 * 2

    left, right = store.results("cond"), store.results("cond-unshared")
    report = compare_results("shared", left, "unshared", right)
    assert report.ok, (report.missing, report.differences[:5])
    assert report.compared == 16

    by_leaf = {(r.combination_name, r.case_id): r for r in left}
    for first in ("p", "q"):
        for a in ("a1", "a2"):
            # on the a-branch, the two branch_b variants end in the same execution
            one = by_leaf[(f"first={first},branch_a={a},branch_b=b1", "to-a")]
            two = by_leaf[(f"first={first},branch_a={a},branch_b=b2", "to-a")]
            assert one.execution_id == two.execution_id
            assert store.app.controller.state(one.execution_id)["answer"] == f"a:{first}:{a}"
    answer = store.app.controller.state(
        by_leaf[("first=q,branch_a=a1,branch_b=b2", "to-b")].execution_id
    )["answer"]
    assert answer == "b:q:b2"


# --- repeats and nondeterministic nodes ----------------------------------------------------------


def test_repeats_rerun_a_nondeterministic_node_and_share_what_comes_before(store: Store) -> None:
    service = store.service()
    prepared = service.prepare(
        make_spec(wf.NOISY, "noisy", variants={"prep": ["p1", "p2"]}, repeats=3)
    )
    assert prepared.total == 6

    outcome = run_case_whole(service, prepared)
    assert wf.runs("prep") == 2  # deterministic, before the split: once per variant
    assert wf.runs("sample") == 6  # once per (variant, repeat)
    assert wf.runs("score") == 6
    assert outcome.recorded == 6
    assert outcome.executions == 6

    results = store.results("noisy")
    assert {(r.combination_name, r.repeat) for r in results} == {
        (f"prep={p}", r) for p in ("p1", "p2") for r in range(3)
    }
    assert len({r.execution_id for r in results}) == 6
    for prep in ("p1", "p2"):
        draws = [
            store.app.controller.state(r.execution_id)["draw"]
            for r in results
            if r.combination_name == f"prep={prep}"
        ]
        assert len(set(draws)) == 3, draws  # unseeded random: each repeat its own value


def test_spec_can_mark_a_node_nondeterministic(store: Store) -> None:
    service = store.service()
    flagged = service.prepare(
        make_spec(wf.NOISY_UNFLAGGED, "by-spec", repeats=4, nondeterministic_nodes=["sample"])
    )
    run_case_whole(service, flagged)
    assert (wf.runs("prep"), wf.runs("sample"), wf.runs("score")) == (1, 4, 4)
    draws = {store.app.controller.state(r.execution_id)["draw"] for r in store.results("by-spec")}
    assert len(draws) == 4


def test_repeats_of_a_deterministic_workflow_share_one_run(store: Store) -> None:
    service = store.service()
    prepared = service.prepare(make_spec(wf.NOISY_UNFLAGGED, "det", repeats=3))
    outcome = run_case_whole(service, prepared)
    assert (wf.runs("prep"), wf.runs("sample"), wf.runs("score")) == (1, 1, 1)
    assert outcome.recorded == 3
    results = store.results("det")
    assert sorted(r.repeat for r in results) == [0, 1, 2]
    assert len({r.execution_id for r in results}) == 1


# --- failures ------------------------------------------------------------------------------------


def test_failing_variants_record_failed_results_and_others_succeed(store: Store) -> None:
    service = store.service()
    prepared = service.prepare(
        make_spec(
            wf.FAILING,
            "fail",
            variants={"work": ["ok", "boom", "slow"], "finish": ["f1", "f2"]},
            cases=cases("one", "two"),
        )
    )
    outcomes = [run_case_whole(service, prepared, c) for c in prepared.case_ids]
    assert sum(o.recorded for o in outcomes) == 12
    assert sum(o.failed for o in outcomes) == 8

    results = store.results("fail")
    assert len(results) == 12
    for r in results:
        work = r.variant_config["work"]
        q = r.case_id.removeprefix("case-")
        if work == "ok":
            assert r.success and r.error is None
            state = store.app.controller.state(r.execution_id)
            assert state["answer"] == f"{q}:ok:{r.variant_config['finish']}"
            continue
        assert not r.success
        assert not r.passed
        assert r.overall_score == 0.0
        assert r.error is not None
        if work == "boom":
            assert r.error == f"ValueError: boom on {q}"
        else:
            assert r.error.startswith("TimeoutError:")
            assert "timeout of 0.25 s" in r.error
    # the failing node ran once per case and variant; finish never ran after it
    assert wf.runs("finish") == 2 * 2
    assert Counter(v for (n, v), c in wf.RUNS.items() if n == "work" for _ in range(c)) == {
        "ok": 2,
        "boom": 2,
        "slow": 2,
    }

    summary = service.finish("fail")
    assert summary.status is BatchStatus.COMPLETED_WITH_FAILURES
    assert (summary.total, summary.done, summary.failed) == (12, 12, 8)
    assert service.status("fail").status is BatchStatus.COMPLETED_WITH_FAILURES

    matrix = service.matrix("fail")
    failed = {s.name: s.n_failed for s in matrix.stats}
    assert failed["work=ok,finish=f1"] == 0
    assert failed["work=boom,finish=f2"] == 2


def test_finish_without_failures_and_with_missing_results(store: Store) -> None:
    service = store.service()
    prepared = service.prepare(make_spec(wf.LINEAR3, "partial", variants={"a": ["x", "y"]}))
    assert service.finish("partial").status is BatchStatus.FAILED  # nothing ran: pending
    run_groups(service, prepared)
    summary = service.finish("partial", node_executions=7)
    assert summary.status is BatchStatus.COMPLETED
    assert summary.to_dict() == {
        "batch_id": "partial",
        "status": "completed",
        "total": 2,
        "done": 2,
        "failed": 0,
        "node_executions": 7,
        "errors": [],
        "cache_hits": 0,
    }
    summary = service.finish("partial", errors=["RuntimeError: task died"])
    assert summary.status is BatchStatus.FAILED


# --- resume --------------------------------------------------------------------------------------


def test_rerunning_a_group_records_nothing_new(store: Store) -> None:
    service = store.service()
    prepared = service.prepare(make_spec(wf.LINEAR3, "twice", variants=ALL3))
    first = run_case_whole(service, prepared)
    assert first.recorded == 27 and first.skipped == 0
    runs_before, checkpoints_before = wf.runs(), store.node_checkpoints()

    again = run_case_whole(store.service(), prepared)
    assert again.skipped == 27
    assert again.recorded == 0
    assert again.executions == 0
    assert again.node_executions == 0
    assert wf.runs() == runs_before
    assert store.node_checkpoints() == checkpoints_before
    results = store.results("twice")
    assert len(results) == 27
    assert set(leaf_counts(results).values()) == {1}


def test_a_stopped_batch_completes_when_rerun(store: Store) -> None:
    spec = make_spec(wf.LINEAR3, "stopped", variants=ALL3, cases=cases("one", "two", "three"))
    service = store.service()
    prepared = service.prepare(spec, workers=1)  # one group per case
    assert len(prepared.groups) == 3
    run_groups(service, prepared, prepared.groups[:1])  # the "process" stops here
    partial = service.progress("stopped")
    assert 0 < partial.done < partial.total == 81

    restarted = store.service()  # a new process: same batch id, same spec
    again = restarted.prepare(spec, workers=1)
    assert again.groups == prepared.groups
    outcomes = run_groups(restarted, again)
    assert sum(o.skipped for o in outcomes) == partial.done
    summary = restarted.finish("stopped")
    assert summary.status is BatchStatus.COMPLETED
    assert summary.done == 81
    results = store.results("stopped")
    assert set(leaf_counts(results)) == expected_leaves(again)
    assert set(leaf_counts(results).values()) == {1}
    assert_linear3_answers(store, results)


@pytest.mark.parametrize("sharing", [True, False], ids=["shared", "unshared"])
def test_a_crash_mid_tree_continues_unfinished_executions(store: Store, sharing: bool) -> None:
    """A process dies while a tree is half done; the rerun picks up each execution where it
    stopped, so across both runs every node runs exactly as often as in one clean run."""
    spec = make_spec(wf.LINEAR3, "crash", variants=ALL3, prefix_sharing=sharing)
    clean = 39 if sharing else 81
    service = store.service()
    prepared = service.prepare(spec)

    count = {"n": 0}

    def die_on_the_30th_node(node: str, variant: str, state: Any) -> None:
        count["n"] += 1
        if count["n"] == 30:
            raise wf.Crash()

    wf.HOOKS.append(die_on_the_30th_node)
    with pytest.raises(wf.Crash):
        run_case_whole(service, prepared)
    wf.HOOKS.clear()
    done = service.progress("crash").done
    assert 0 < done < 27
    assert store.node_checkpoints() == 29

    restarted = store.service()
    outcome = run_case_whole(restarted, restarted.prepare(spec))
    assert outcome.skipped == done
    assert outcome.recorded == 27 - done
    results = store.results("crash")
    assert len(results) == 27
    assert set(leaf_counts(results).values()) == {1}
    assert_linear3_answers(store, results)
    assert restarted.finish("crash").status is BatchStatus.COMPLETED
    # no node ran twice: the rerun continued the unfinished executions
    assert store.node_checkpoints() == clean, (
        f"{store.node_checkpoints()} node checkpoints after crash + rerun, a clean run writes "
        f"{clean}: the rerun re-ran work that was already checkpointed"
    )


def test_rerunning_a_batch_id_with_another_spec_is_refused(store: Store) -> None:
    service = store.service()
    service.prepare(make_spec(wf.LINEAR3, "fixed", variants={"a": ["x", "y"]}))
    with pytest.raises(SpecError, match=r"^batch_id: 'fixed' already exists .*variants"):
        service.prepare(make_spec(wf.LINEAR3, "fixed", variants={"a": ["x", "z"]}))
    with pytest.raises(SpecError, match="set of cases"):
        service.prepare(
            make_spec(wf.LINEAR3, "fixed", variants={"a": ["x", "y"]}, cases=cases("1", "2"))
        )


# --- cancel --------------------------------------------------------------------------------------


def test_cancel_before_a_group_starts(store: Store) -> None:
    spec = make_spec(wf.LINEAR3, "cancel-early", variants=ALL3)
    service = store.service()
    prepared = service.prepare(spec)
    assert service.cancel("cancel-early") is True
    assert service.status("cancel-early").cancel_requested

    outcome = run_case_whole(service, prepared)
    assert outcome.cancelled
    assert outcome.recorded == 0
    assert wf.runs() == 0
    summary = service.finish("cancel-early")
    assert summary.status is BatchStatus.CANCELLED
    assert summary.done == 0
    assert service.cancel("cancel-early") is False  # no longer running

    # rerunning the batch clears the request and runs it
    again = service.prepare(spec)
    assert not service.status("cancel-early").cancel_requested
    outcome = run_case_whole(service, again)
    assert not outcome.cancelled
    assert outcome.recorded == 27
    assert service.finish("cancel-early").status is BatchStatus.COMPLETED


def test_cancel_during_a_run_stops_the_group_early(store: Store) -> None:
    # a splits 3 ways, then b runs in the same execution, c splits 3 ways x 2 repeats
    spec = make_spec(
        wf.SLOW_LINEAR3,
        "cancel-mid",
        variants={"a": list(wf.VARIANTS), "c": list(wf.VARIANTS)},
        repeats=2,
        nondeterministic_nodes=["c"],
    )
    service = store.service()
    # The group reads the cancel flag before every node (not at most every 0.5 s), so the
    # group stops at its next node however fast the remaining nodes run.
    service.cancel_poll_s = 0.0
    prepared = service.prepare(spec)
    assert prepared.total == 18
    canceller = store.service()  # another process asks to cancel ...
    answers: list[bool] = []

    def cancel_on_the_first_c(node: str, variant: str, state: Any) -> None:
        if node == "c" and not answers:  # ... while the first leaf's last node runs
            answers.append(canceller.cancel("cancel-mid"))

    wf.HOOKS.append(cancel_on_the_first_c)
    try:
        outcome = run_case_whole(service, prepared)
    finally:
        wf.HOOKS.clear()
    assert answers == [True]

    assert outcome.cancelled
    # the leaf whose c was running when the cancel came is recorded; no node ran after it
    assert outcome.recorded == 1
    assert wf.runs() == 3
    summary = service.finish("cancel-mid")
    assert summary.status is BatchStatus.CANCELLED
    assert summary.done == outcome.recorded
    assert service.status("cancel-mid").status is BatchStatus.CANCELLED

    again = service.prepare(spec)
    rest = run_case_whole(service, again)
    assert not rest.cancelled
    assert rest.skipped == outcome.recorded
    assert rest.recorded == 18 - outcome.recorded
    assert service.finish("cancel-mid").status is BatchStatus.COMPLETED
    results = store.results("cancel-mid")
    assert len(results) == 18 and set(leaf_counts(results).values()) == {1}
    assert_linear3_answers(store, results)


def test_no_write_lock_is_held_while_a_node_runs(tmp_path: Path) -> None:
    """The engine promises no transaction (on SQLite: no write lock) while a node runs, so
    other workers, and ``wtb batch cancel``, can write meanwhile. Checked for every node of a
    variant tree, where most nodes are the first node run after a fork."""
    db_file = tmp_path / "lock.db"
    store = Store(
        "sqlite", sql_app(f"sqlite:///{db_file}", audit=False), url=f"sqlite:///{db_file}"
    )
    blocked: list[str] = []

    def try_to_write(node: str, variant: str, state: Any) -> None:
        other = sqlite3.connect(db_file, timeout=0.05, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            blocked.append(f"{node}:{variant} ({exc})")
        finally:
            other.close()

    service = store.service()
    prepared = service.prepare(make_spec(wf.LINEAR3, "locks", variants={"b": ["x", "y"]}))
    wf.HOOKS.append(try_to_write)
    try:
        run_case_whole(service, prepared)
    finally:
        wf.HOOKS.clear()
        assert store.app.database is not None
        store.app.database.dispose()
    assert wf.runs() == 1 + 2 + 2
    assert blocked == [], f"nodes ran while the store was write-locked: {blocked}"


# --- evaluation ----------------------------------------------------------------------------------


def test_scores_and_metrics_land_in_the_results_and_the_matrix_ranks_them(store: Store) -> None:
    the_cases = [
        {"id": f"n{n}", "input": {"n": n}, "expected": {"answer": str(2 * n)}} for n in range(8)
    ]
    spec = make_spec(
        wf.SCORED,
        "scored",
        variants={"answer": ["bad", "good"]},
        cases=the_cases,
        evaluators=[
            {"type": "exact_match", "weight": 2},
            {"type": "token_f1", "name": "f1"},
            {"type": "cost", "budget": 0.015, "max_cost": 0.025},
        ],
        baseline="answer=bad",
    )
    service = store.service()
    prepared = service.prepare(spec, workers=1)
    run_groups(service, prepared)
    assert service.finish("scored").status is BatchStatus.COMPLETED

    results = store.results("scored")
    assert len(results) == 16
    for r in results:
        good = r.variant_config == {"answer": "good"}
        assert set(r.metrics) >= {"exact_match", "f1", "cost", "tokens", "cost_usd", "latency_ms"}
        assert r.metrics["tokens"] == 7.0
        assert r.metrics["cost_usd"] == pytest.approx(0.01 if good else 0.02)
        assert r.metrics["exact_match"] == (1.0 if good else 0.0)
        assert r.metrics["f1"] == (1.0 if good else 0.0)
        assert r.metrics["cost"] == pytest.approx(1.0 if good else 0.5)
        expected_overall = (2 * 1 + 1 + 1) / 4 if good else 0.5 / 4
        assert r.overall_score == pytest.approx(expected_overall)
        assert r.passed is good
        assert r.success
        assert r.metrics["latency_ms"] > 0
        assert r.duration_ms == pytest.approx(r.metrics["latency_ms"])
        assert r.worker_id

    matrix = service.matrix("scored")
    assert matrix.best == "answer=good"
    assert [s.name for s in matrix.stats] == ["answer=good", "answer=bad"]
    assert matrix.stats[0].pass_rate == 1.0
    assert matrix.stats[1].pass_rate == 0.0
    assert matrix.stats[0].total_cost == pytest.approx(0.08)
    assert matrix.baseline == "answer=bad"  # from the spec
    (vs_base,) = matrix.vs_baseline
    assert (vs_base.combination, vs_base.verdict) == ("answer=good", "better")
    (vs_best,) = matrix.vs_best
    assert (vs_best.combination, vs_best.verdict) == ("answer=bad", "worse")
