"""Ports: the small protocols the domain talks to. Adapters live in :mod:`wtb_domain.adapters`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self

from wtb_domain.model import AuditEntry, Checkpoint, Execution, Status


class ExecutionRepository(Protocol):
    def add(self, execution: Execution) -> None: ...

    def get(self, execution_id: str) -> Execution:
        """Raise NotFoundError if absent."""
        ...

    def update(self, execution: Execution) -> None: ...

    def recent(self, *, status: Status | None = None, limit: int = 50) -> list[Execution]:
        """Newest first."""
        ...


class CheckpointStore(Protocol):
    def add(self, checkpoint: Checkpoint, new_blobs: Mapping[str, str]) -> None:
        """Store a checkpoint and the encoded values it introduces (hash -> JSON text)."""
        ...

    def get(self, checkpoint_id: str) -> Checkpoint:
        """The checkpoint with its full ``state``; raise NotFoundError if absent."""
        ...

    def history(self, execution_id: str) -> list[Checkpoint]:
        """Every checkpoint of an execution in creation order, without ``state``."""
        ...

    def load_values(self, hashes: Sequence[str]) -> dict[str, Any]:
        """Decoded values by content hash."""
        ...


class AuditLog(Protocol):
    def add(self, entry: AuditEntry) -> None: ...

    def entries(self, execution_id: str | None = None, limit: int = 200) -> list[AuditEntry]: ...


class UnitOfWork(Protocol):
    """A transaction over the repositories. Rolls back unless :meth:`commit` is called."""

    @property
    def executions(self) -> ExecutionRepository: ...

    @property
    def checkpoints(self) -> CheckpointStore: ...

    @property
    def audit(self) -> AuditLog: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
