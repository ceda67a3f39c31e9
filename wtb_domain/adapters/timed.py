"""A unit of work that times its checkpoint writes (``wtb_checkpoint_write_seconds``).

It wraps any store's unit of work and delegates everything (the port's members explicitly,
so a member added to the port fails type checking here until it is delegated);
``start_execution`` and ``save_node`` (a checkpoint and the head move, one commit) are timed
in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from wtb_domain.claims import Claim
from wtb_domain.events import Event
from wtb_domain.metrics import PrometheusMetrics
from wtb_domain.model import Checkpoint, Execution
from wtb_domain.ports import (
    AuditLog,
    BaselineRepository,
    BatchRepository,
    CallStore,
    CaseRepository,
    CheckpointStore,
    ExecutionRepository,
    NodeCacheStore,
    Outbox,
    ProcessedEvents,
    ResultRepository,
    UnitOfWork,
    UnitOfWorkFactory,
)


class TimedUnitOfWork:
    def __init__(self, inner: UnitOfWork, metrics: PrometheusMetrics) -> None:
        self._inner, self._metrics = inner, metrics

    @property
    def executions(self) -> ExecutionRepository:
        return self._inner.executions

    @property
    def checkpoints(self) -> CheckpointStore:
        return self._inner.checkpoints

    @property
    def audit(self) -> AuditLog:
        return self._inner.audit

    @property
    def batches(self) -> BatchRepository:
        return self._inner.batches

    @property
    def results(self) -> ResultRepository:
        return self._inner.results

    @property
    def baselines(self) -> BaselineRepository:
        return self._inner.baselines

    @property
    def cases(self) -> CaseRepository:
        return self._inner.cases

    @property
    def outbox(self) -> Outbox:
        return self._inner.outbox

    @property
    def processed(self) -> ProcessedEvents:
        return self._inner.processed

    @property
    def calls(self) -> CallStore:
        return self._inner.calls

    @property
    def node_cache(self) -> NodeCacheStore:
        return self._inner.node_cache

    def record(self, events: Sequence[Event]) -> None:
        self._inner.record(events)

    def __getattr__(self, name: str) -> Any:
        """What a particular store offers beyond the port (``connection`` of SQL)."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __enter__(self) -> Self:
        self._inner.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._inner.__exit__(exc_type, exc, tb)

    def commit(self) -> None:
        self._inner.commit()

    def rollback(self) -> None:
        self._inner.rollback()

    def start_execution(
        self,
        execution: Execution,
        checkpoint: Checkpoint,
        new_blobs: Mapping[str, str],
        claim: Claim | None = None,
    ) -> None:
        self._metrics.timed_write(
            lambda: self._inner.start_execution(execution, checkpoint, new_blobs, claim)
        )

    def save_node(
        self,
        checkpoint: Checkpoint,
        new_blobs: Mapping[str, str],
        execution: Execution,
        claim: Claim | None = None,
        *,
        release: bool = False,
    ) -> None:
        self._metrics.timed_write(
            lambda: self._inner.save_node(checkpoint, new_blobs, execution, claim, release=release)
        )

    def claim_execution(
        self, execution: Execution, claim: Claim, takeover_from: str | None = None
    ) -> None:
        self._inner.claim_execution(execution, claim, takeover_from)

    def release_execution(self, execution: Execution, claim: Claim) -> None:
        self._inner.release_execution(execution, claim)

    def move_head(self, execution: Execution, expected_head: str | None) -> None:
        self._inner.move_head(execution, expected_head)

    def renew_claim(self, execution_id: str, claim: Claim) -> bool:
        return self._inner.renew_claim(execution_id, claim)

    def drop_claim(self, execution_id: str, claim: Claim) -> None:
        self._inner.drop_claim(execution_id, claim)


def timed(factory: UnitOfWorkFactory, metrics: PrometheusMetrics) -> UnitOfWorkFactory:
    """``factory`` whose units of work time their checkpoint writes."""

    def uow(*, read_only: bool = False) -> UnitOfWork:
        return TimedUnitOfWork(factory(read_only=read_only), metrics)

    return uow
