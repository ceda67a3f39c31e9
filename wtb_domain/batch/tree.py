"""Runs one task group as a variant tree with shared prefixes, resumable after a crash.

Leaves (combination x repeat) start together in one execution. Before a node on which they
disagree (different variants, or repeats of a nondeterministic node), the execution pauses
at ``split:<node>`` and one child is forked per choice, each continuing from the same
checkpoint. Execution ids are derived from the batch, case, group and branch, so rerunning
a crashed batch finds the same executions and continues each from its last checkpoint.

Two runners of the same batch id (a rerun while the first still runs, on any machine) meet
the same executions: each run claims its execution in the store, and a runner that finds one
claimed by a live runner waits until that run pauses at a split, finishes, or its lease
expires (its runner died), then continues from what the store holds. No node runs twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from wtb_domain.batch.plan import Leaf
from wtb_domain.claims import ExecutionClaimed, ExecutionConflict
from wtb_domain.controller import ExecutionController
from wtb_domain.errors import ExecutionError, ExecutionExists
from wtb_domain.model import Execution, Status
from wtb_domain.workflow import Workflow

WAIT_FIRST_S = 0.05
WAIT_MAX_S = 0.5


def derived_id(*parts: str) -> str:
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Finished:
    """Leaves whose runs ended in ``execution`` (completed or failed)."""

    execution: Execution
    leaves: list[Leaf]


class VariantTree:
    """Drives the executions of one group of leaves of one case."""

    def __init__(
        self,
        controller: ExecutionController,
        workflow: Workflow,
        *,
        nondeterministic: set[str],
        prefix_sharing: bool = True,
        cancelled: Callable[[], bool] = lambda: False,
        labels: Mapping[str, object] | None = None,
    ) -> None:
        """``labels``: more labels of every execution (the call mode, the cache settings)."""
        self._controller = controller
        self._workflow = workflow
        self._nondeterministic = nondeterministic
        self._sharing = prefix_sharing
        self._cancelled = cancelled
        self._labels = dict(labels or {})
        self.nodes_run = 0
        self.cache_hits = 0

    def run(
        self,
        batch_id: str,
        case_id: str,
        case_input: dict[str, object],
        leaves: Sequence[Leaf],
        group_key: str,
    ) -> Iterator[Finished]:
        """Yield finished leaves as their executions end; stops early when cancelled.

        ``leaves`` are the group's pending leaves; ``group_key`` names the whole group, so a
        rerun after a crash finds the same root execution even when some leaves are done.
        """
        labels = {**self._labels, "batch_test_id": batch_id, "case_id": case_id}
        if not self._sharing:
            for leaf in leaves:
                if self._cancelled():
                    return
                eid = derived_id(batch_id, case_id, "leaf", leaf.key)
                execution = self._start(
                    eid,
                    partial(
                        self._controller.run,
                        self._workflow,
                        case_input,
                        variants=leaf.combination.selection,
                        execution_id=eid,
                        labels={**labels, "leaves": [leaf.key]},
                        split_before=partial(self._splits, [leaf]),
                    ),
                )
                yield from self._grow(execution, [leaf])
            return
        root_id = derived_id(batch_id, case_id, "root", group_key)
        root = self._start(
            root_id,
            partial(
                self._controller.run,
                self._workflow,
                case_input,
                variants=self._common(leaves),
                execution_id=root_id,
                labels={**labels, "leaves": [lf.key for lf in leaves]},
                split_before=partial(self._splits, list(leaves)),
            ),
        )
        yield from self._grow(root, list(leaves))

    def _grow(self, execution: Execution, leaves: list[Leaf]) -> Iterator[Finished]:
        if execution.finished:  # its nodes ran (a fork can run to the end): record it
            yield Finished(execution, leaves)
            return
        if self._cancelled():
            return
        driven = self._drive(execution, leaves)
        if driven is None:  # cancelled while waiting for another runner
            return
        execution = driven
        if execution.finished:
            yield Finished(execution, leaves)
            return
        node = self._at_split(execution)
        if node is None or execution.head_checkpoint_id is None:
            raise ExecutionError(
                f"execution {execution.id} stopped at {execution.paused_at!r}, not at a variant "
                "split with a head checkpoint; rerun the batch id to resume it"
            )
        for branch, group in self._partition(leaves, node).items():
            if self._cancelled():
                return
            child_id = derived_id(execution.id, node, branch)
            head = execution.head_checkpoint_id
            child = self._start(
                child_id,
                partial(
                    self._controller.fork,
                    head,
                    variant_overrides=self._common(group),
                    workflow=self._workflow,
                    execution_id=child_id,
                    labels={**execution.labels, "leaves": [lf.key for lf in group]},
                    split_before=partial(self._splits, group),
                    parent=execution,
                ),
            )
            yield from self._grow(child, group)

    def _drive(self, execution: Execution, leaves: list[Leaf]) -> Execution | None:
        """Run the execution on to its end or its split; wait while another runner has it."""
        delay = WAIT_FIRST_S
        while not execution.finished and not self._at_split(execution):
            try:
                driven = self._controller.drive(
                    execution, self._workflow, split_before=lambda node: self._splits(leaves, node)
                )
            except (ExecutionClaimed, ExecutionConflict) as exc:
                self._count(exc)  # nodes it wrote before another runner had the execution
                if self._cancelled():
                    return None
                time.sleep(delay)
                delay = min(delay * 2, WAIT_MAX_S)
                execution = self._controller.get(execution.id)
                continue
            self._count(driven)
            return driven
        return execution

    @staticmethod
    def _at_split(execution: Execution) -> str | None:
        where = execution.paused_at or ""
        if execution.status is Status.PAUSED and where.startswith("split:"):
            return where.removeprefix("split:")
        return None

    def _branch(self, leaf: Leaf, node: str) -> str:
        variant = leaf.combination.selection.get(node, self._workflow.node(node).default)
        if node in self._nondeterministic:
            return f"{variant}#r{leaf.repeat}"
        return variant

    def _partition(self, leaves: list[Leaf], node: str) -> dict[str, list[Leaf]]:
        groups: dict[str, list[Leaf]] = {}
        for leaf in leaves:
            groups.setdefault(self._branch(leaf, node), []).append(leaf)
        return groups

    def _splits(self, leaves: list[Leaf], node: str) -> bool:
        first = self._branch(leaves[0], node)
        return any(self._branch(leaf, node) != first for leaf in leaves[1:])

    @staticmethod
    def _common(leaves: Sequence[Leaf]) -> dict[str, str]:
        first = leaves[0].combination.selection
        return {
            node: variant
            for node, variant in first.items()
            if all(lf.combination.selection.get(node) == variant for lf in leaves)
        }

    def _start(self, execution_id: str, start: Callable[[], Execution]) -> Execution:
        """Create the execution and run it (to its end or its split) in one go: nothing is
        looked up first. Stored already (a rerun after a crash, or another runner created it
        first): the stored one, for :meth:`_grow` to drive on."""
        try:
            execution = start()
        except (ExecutionExists, ExecutionClaimed, ExecutionConflict) as exc:
            # Stored already, or another runner took it over: drive on what the store holds.
            self._count(exc)
            return self._controller.get(execution_id)
        self._count(execution)
        return execution

    def _count(self, ran: Execution | ExecutionError) -> None:
        """Add the nodes a run wrote (an execution, or the refusal that stopped it)."""
        self.nodes_run += getattr(ran, "nodes_run", 0)
        self.cache_hits += getattr(ran, "cache_hits", 0)
