"""The events a batch's end writes (with its final status, in the same transaction)."""

from __future__ import annotations

from wtb_domain.events import BatchCancelled, BatchCompleted, CombinationCompleted, Event
from wtb_domain.model import BatchProgress, BatchStatus, BatchTest
from wtb_domain.ports import UnitOfWork


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
