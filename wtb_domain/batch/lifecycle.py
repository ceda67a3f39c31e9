"""A batch's end: the events it writes (with its final status, in the same transaction), and
whether a batch already ended with nothing left to run."""

from __future__ import annotations

from wtb_domain.events import BatchCancelled, BatchCompleted, CombinationCompleted, Event
from wtb_domain.model import BatchProgress, BatchStatus, BatchTest
from wtb_domain.ports import UnitOfWork

ENDED_COMPLETE = frozenset({BatchStatus.COMPLETED, BatchStatus.COMPLETED_WITH_FAILURES})
"""The statuses of a batch that ran to its end: every leaf has its result."""


def completed_progress(uow: UnitOfWork, batch: BatchTest) -> BatchProgress | None:
    """The progress of a batch that ended completed with every result in, or None when a
    run has work to do (it is running, failed, was cancelled, or results are missing).

    A rerun of such a batch runs nothing and does not mark it running again: its status,
    the matrix header and the flow's report keep saying how it ended.
    """
    if batch.status not in ENDED_COMPLETE:
        return None
    progress = uow.results.progress(batch.id, batch.total)
    return None if progress.pending else progress


def final_events(uow: UnitOfWork, batch: BatchTest, progress: BatchProgress) -> list[Event]:
    """The batch's end, and one event per combination whose results are all in (by name)."""
    if batch.status is BatchStatus.CANCELLED:
        return [BatchCancelled(batch.id, progress.total, progress.done)]
    events: list[Event] = []
    per_combination = uow.cases.count(batch.id) * int(batch.spec.get("repeats") or 1)
    if progress.done and per_combination:
        # Counts and mean scores only (one read of the rollups): the matrix's bootstrap and
        # percentiles are computed where the matrix is shown, not in this write transaction.
        for totals in uow.results.combination_totals(batch.id):
            if totals.n >= per_combination:
                events.append(
                    CombinationCompleted(
                        batch.id, totals.name, totals.n, totals.n_failed, totals.mean_score
                    )
                )
    events.append(
        BatchCompleted(batch.id, batch.status.value, progress.total, progress.done, progress.failed)
    )
    return events
