"""What the batch service hands out: a registration, a prepared batch, a group's outcome and
the batch's summary (plain values, passed to the flow and its tasks)."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from wtb_domain.batch.credentials import DatabaseRef
from wtb_domain.batch.plan import TaskGroup
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.model import BatchStatus

CANCEL_POLL_S = 0.5


@dataclass(frozen=True)
class Registration:
    """A registered batch: what the flow receives (ids and a database reference only).

    ``ended``: the batch had already ended completed with every result in (a rerun of it
    has nothing to run; it was not marked running again).
    """

    batch_id: str
    spec_hash: str
    total: int
    database: DatabaseRef | None
    ended: bool = False

    @property
    def payload(self) -> dict[str, Any]:
        """The flow's and every task's reference to the batch (small whatever its size)."""
        return {
            "batch_id": self.batch_id,
            "spec_hash": self.spec_hash,
            "database": self.database.to_param() if self.database else None,
        }


@dataclass(frozen=True)
class PreparedBatch:
    """A registered batch and its task plan; ``payload`` is what every task receives.

    ``spec`` has its secret literals (in memory only); ``secrets`` is the overlay the tasks
    need to restore them in the stored spec (passed as an in-memory argument).
    """

    batch_id: str
    spec_hash: str
    spec: BatchSpec
    groups: list[TaskGroup]
    payload: dict[str, Any]
    total: int
    secrets: dict[str, Any] = field(default_factory=dict)
    case_ids: list[str] = field(default_factory=list)


@dataclass
class GroupOutcome:
    case_id: str
    recorded: int = 0
    skipped: int = 0
    failed: int = 0
    executions: int = 0
    node_executions: int = 0
    cache_hits: int = 0
    cancelled: bool = False
    worker_id: str = ""


@dataclass
class BatchSummary:
    batch_id: str
    status: BatchStatus
    total: int
    done: int
    failed: int
    node_executions: int = 0
    errors: list[str] = field(default_factory=list)
    cache_hits: int = 0
    """Of ``node_executions``, the node runs served from the node result cache."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "status": self.status.value}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"
