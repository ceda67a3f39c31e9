"""What ``wtb batch status`` and ``wtb matrix`` read: the batch row, its progress and its
comparison matrix, all from the store's aggregates (the rollups), never the result rows.

Kept apart from :mod:`wtb_domain.batch.service` (which plans and runs batches, with the spec
models and evaluators) so the read-only commands import only what they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wtb_domain.bootstrap import App
    from wtb_domain.comparison import ComparisonMatrix
    from wtb_domain.model import BatchProgress, BatchTest


def batch_status(app: App, batch_id: str) -> BatchTest:
    """The stored batch (NotFoundError naming it when there is none)."""
    with app.uow(read_only=True) as uow:
        return uow.batches.get(batch_id)


def batch_progress(app: App, batch_id: str) -> BatchProgress:
    """Done / failed / pending counts, from the rollups (one aggregate query)."""
    with app.uow(read_only=True) as uow:
        batch = uow.batches.get(batch_id)
        return uow.results.progress(batch_id, batch.total)


def batch_matrix(app: App, batch_id: str, baseline: str | None = None) -> ComparisonMatrix:
    """The comparison matrix, aggregated by the store; ``baseline`` defaults to the spec's."""
    with app.uow(read_only=True) as uow:
        batch = uow.batches.get(batch_id)
        return uow.results.comparison(batch_id, baseline or batch.spec.get("baseline"))
