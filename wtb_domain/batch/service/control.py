"""BatchService: what the Prefect tasks and flow call (the seed's IBatchTestRunner roles).

Registering and planning are in :mod:`.registry`, running a task group in :mod:`.groups`;
here: cancelling, ending a batch, and its reads (delegated to :mod:`wtb_domain.batch.reads`).
"""

from __future__ import annotations

from collections.abc import Sequence

from wtb_domain.batch.lifecycle import completed_progress, final_events
from wtb_domain.batch.reads import batch_matrix, batch_progress, batch_status
from wtb_domain.batch.service.groups import GroupRunner
from wtb_domain.batch.service.outcomes import BatchSummary
from wtb_domain.comparison import ComparisonMatrix, ResultRow, result_rows
from wtb_domain.events import Event
from wtb_domain.model import BatchProgress, BatchStatus, BatchTest, utcnow


class BatchService(GroupRunner):
    """Registers batches, runs task groups, reports status/progress, cancels, summarises."""

    def progress(self, batch_id: str) -> BatchProgress:
        return batch_progress(self.app, batch_id)

    def status(self, batch_id: str) -> BatchTest:
        return batch_status(self.app, batch_id)

    def cancel(self, batch_id: str) -> bool:
        """Ask running tasks to stop after their current execution; True if it was running."""
        with self.app.uow() as uow:
            batch = uow.batches.get(batch_id)
            was_running = batch.status is BatchStatus.RUNNING
            batch.cancel_requested = True
            batch.updated_at = utcnow()
            uow.batches.update(batch)
            uow.commit()
        return was_running

    def finish(
        self,
        batch_id: str,
        errors: Sequence[str] = (),
        node_executions: int = 0,
        cache_hits: int = 0,
    ) -> BatchSummary:
        """Set the batch's final status from its results and return a summary.

        Two runners of one batch id both end it: the second finds the status the first set
        (the row is locked while read) and, when it is the same, writes nothing and emits no
        second end event.
        """
        with self.app.uow() as uow:
            batch = uow.batches.get_for_update(batch_id)
            progress = uow.results.progress(batch_id, batch.total)
            before = batch.status
            if batch.cancel_requested and progress.pending:
                batch.status = BatchStatus.CANCELLED
            elif errors or progress.pending:
                batch.status = BatchStatus.FAILED
            elif progress.failed:
                batch.status = BatchStatus.COMPLETED_WITH_FAILURES
            else:
                batch.status = BatchStatus.COMPLETED
            events: list[Event] = []
            if batch.status is not before:  # a second runner of the batch ending with the
                batch.updated_at = utcnow()  # same outcome after it: the batch ended once
                uow.batches.update(batch)
                events = final_events(uow, batch, progress)
                uow.record(events)
            uow.commit()
        self.app.publish(events)
        self.app.flush()
        return BatchSummary(
            batch_id,
            batch.status,
            progress.total,
            progress.done,
            progress.failed,
            node_executions,
            list(errors),
            cache_hits,
        )

    def ended(self, batch_id: str) -> BatchSummary | None:
        """The summary of a batch that already ended completed with every result in (what
        its first run reported, with no node run now), or None when a run has work to do."""
        with self.app.uow(read_only=True) as uow:
            batch = uow.batches.get(batch_id)
            progress = completed_progress(uow, batch)
        if progress is None:
            return None
        return BatchSummary(batch_id, batch.status, progress.total, progress.done, progress.failed)

    def rows(self, batch_id: str) -> list[ResultRow]:
        """The batch's results as comparison rows."""
        with self.app.uow(read_only=True) as uow:
            return result_rows(uow.results.for_batch(batch_id))

    def matrix(self, batch_id: str, baseline: str | None = None) -> ComparisonMatrix:
        """The comparison matrix, aggregated by the store (from the rollups, see
        :mod:`wtb_domain.batch.reads`)."""
        return batch_matrix(self.app, batch_id, baseline)
