"""Ports: the small protocols the domain talks to. Adapters live in :mod:`wtb_domain.adapters`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

if TYPE_CHECKING:  # annotations only: a process that reads the store loads no statistics
    from wtb_domain.claims import Claim
    from wtb_domain.comparison import CombinationTotals, ComparisonMatrix
    from wtb_domain.events import Event
    from wtb_domain.model import (
        AuditEntry,
        Baseline,
        BatchProgress,
        BatchResult,
        BatchTest,
        Checkpoint,
        Execution,
        OutboxRecord,
        Severity,
        Status,
    )
    from wtb_domain.recording.model import CacheEntry, CallRecord


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

    def entries(
        self,
        execution_id: str | None = None,
        limit: int = 200,
        *,
        batch_id: str | None = None,
        min_severity: Severity | None = None,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        """The newest ``limit`` matching entries, oldest first (``min_severity``: that level
        and above; ``since``: created at or after)."""
        ...


class Outbox(Protocol):
    """Events written with the changes they describe (see :meth:`UnitOfWork.record`)."""

    def pending(self, limit: int = 500) -> list[OutboxRecord]:
        """Unpublished events, oldest first."""
        ...

    def mark_published(self, events: Sequence[Event]) -> None:
        """Record that ``events`` were published (staged: commits with the unit of work)."""
        ...

    def unpublished_count(self) -> int: ...


class ProcessedEvents(Protocol):
    """Which events a consumer has applied: what makes an at-least-once consumer idempotent."""

    def first_time(self, consumer: str, event_id: str) -> bool:
        """Record that ``consumer`` processed ``event_id`` (staged: commits with the unit of
        work); False if it already had (then do nothing)."""
        ...


class BatchRepository(Protocol):
    def add(self, batch: BatchTest) -> None: ...

    def add_if_absent(self, batch: BatchTest) -> bool:
        """Insert a new batch; False (nothing written) if its id is already taken (also by a
        writer whose transaction commits concurrently)."""
        ...

    def get(self, batch_id: str) -> BatchTest:
        """Raise NotFoundError if absent."""
        ...

    def find(self, batch_id: str) -> BatchTest | None: ...

    def get_for_update(self, batch_id: str) -> BatchTest:
        """:meth:`get`, the row locked until the transaction ends (two runners finishing one
        batch at once then set its final status one after the other)."""
        ...

    def update(self, batch: BatchTest) -> None: ...

    def latest(self, name: str, *, exclude: str | None = None) -> BatchTest | None:
        """The newest finished batch with this name (a regression baseline)."""
        ...


class ResultRepository(Protocol):
    def add_many(self, results: Sequence[BatchResult]) -> int:
        """Insert results, skipping any (batch, combination, case, repeat) already stored."""
        ...

    def done_keys(self, batch_id: str, case_id: str) -> set[str]:
        """``combination#repeat`` keys that have a result for this case."""
        ...

    def progress(self, batch_id: str, total: int) -> BatchProgress: ...

    def for_batch(self, batch_id: str) -> list[BatchResult]: ...

    def comparison(self, batch_id: str, baseline: str | None) -> ComparisonMatrix:
        """The comparison matrix of a batch, aggregated where the data lives."""
        ...

    def combination_totals(self, batch_id: str) -> list[CombinationTotals]:
        """Runs, failed runs and mean score per combination, by name (the matrix's values;
        a batch's end needs no more of it)."""
        ...


class BaselineRepository(Protocol):
    """Pinned regression baselines: the history of blessings per name."""

    def add(self, baseline: Baseline) -> None:
        """Record a blessing (the batch must exist: the store refuses an unknown one)."""
        ...

    def current(self, name: str) -> Baseline | None:
        """The newest blessing of ``name``, or ``None`` when none was ever pinned."""
        ...

    def history(self, name: str) -> list[Baseline]:
        """Every blessing of ``name``, newest first."""
        ...


class CaseRepository(Protocol):
    """The cases of a batch (``{"id", "input", "expected"}`` dicts), stored once with it."""

    def add_many(self, batch_id: str, cases: Sequence[Mapping[str, Any]]) -> None:
        """Store the batch's cases in this order (in multi-row statements)."""
        ...

    def get(self, batch_id: str, case_id: str) -> dict[str, Any]:
        """Raise NotFoundError if absent."""
        ...

    def ids(self, batch_id: str) -> list[str]:
        """Case ids in the order they were stored."""
        ...

    def count(self, batch_id: str) -> int: ...


class CallStore(Protocol):
    """Recorded LLM/tool calls (rows per node checkpoint) and their content-addressed bodies."""

    def add_many(self, records: Sequence[CallRecord], bodies: Mapping[str, str]) -> None:
        """Stage records and the bodies they refer to (hash -> JSON text): written with the
        next commit; a record already stored (same checkpoint and seq) is skipped."""
        ...

    def find(self, request_key: str, *, batch_id: str | None = None) -> list[CallRecord]:
        """Records of live calls of this request (of ``batch_id`` only, if given), oldest
        first: what a replay may serve (replayed calls are stored too, but not served)."""
        ...

    def for_checkpoint(self, checkpoint_id: str) -> list[CallRecord]:
        """The calls the node that wrote this checkpoint made, in call order."""
        ...

    def for_batch(self, batch_id: str) -> list[CallRecord]:
        """Records of the live calls this batch made, oldest first (what an export holds)."""
        ...

    def bodies(self, hashes: Sequence[str]) -> dict[str, Any]:
        """Decoded bodies by hash; NotFoundError if one is missing."""
        ...


class NodeCacheStore(Protocol):
    """The node result cache: entries by key (see :mod:`wtb_domain.recording.cache`)."""

    def get(self, key: str) -> CacheEntry | None: ...

    def put(self, entry: CacheEntry) -> None:
        """Stage an entry for the next commit; an existing key keeps its first entry."""
        ...


class UnitOfWork(Protocol):
    """A transaction over the repositories. Rolls back unless :meth:`commit` is called."""

    @property
    def executions(self) -> ExecutionRepository: ...

    @property
    def checkpoints(self) -> CheckpointStore: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def batches(self) -> BatchRepository: ...

    @property
    def results(self) -> ResultRepository: ...

    @property
    def baselines(self) -> BaselineRepository: ...
    @property
    def cases(self) -> CaseRepository: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def processed(self) -> ProcessedEvents: ...

    @property
    def calls(self) -> CallStore: ...

    @property
    def node_cache(self) -> NodeCacheStore: ...

    def record(self, events: Sequence[Event]) -> None:
        """Stage events: each becomes an outbox row and an audit entry written with the next
        commit (or write method, which commits), in the same transaction -- all or nothing
        with the change. A rollback drops them. Writing an event id twice is a no-op (a
        retried write). A store built without the audit trail ignores them.
        """
        ...

    def add_results(
        self, results: Sequence[BatchResult], events_for: Callable[[int], Sequence[Event]]
    ) -> tuple[int, list[Event]]:
        """Insert the results whose leaf is new, add those to the rollups, record
        ``events_for(n)`` for the ``n`` inserted (nothing when none was), and commit.

        Returns ``(n, the events)`` (to publish; stored too unless the store has no audit
        trail). Stores may do it in one statement.
        """
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def start_execution(
        self,
        execution: Execution,
        checkpoint: Checkpoint,
        new_blobs: Mapping[str, str],
        claim: Claim | None = None,
    ) -> None:
        """Store a new execution with its first checkpoint and the values it introduces, then
        commit. With ``claim`` the new execution is claimed by it (its lease starts now).

        All or nothing, like ``executions.add`` + ``checkpoints.add`` + :meth:`commit` (with
        anything else this unit of work has pending), which stores may do in one round trip.

        Raises:
            ExecutionError: The execution id is in use; nothing is written.
        """
        ...

    def save_node(
        self,
        checkpoint: Checkpoint,
        new_blobs: Mapping[str, str],
        execution: Execution,
        claim: Claim | None = None,
        *,
        release: bool = False,
    ) -> None:
        """Store a node's checkpoint and its new values and update the execution, then commit.

        A compare-and-set: the stored head must be ``checkpoint.parent_id`` and the stored
        claim ``claim``'s own, free or expired; the write then holds the claim for ``claim``
        with a renewed lease (``claim`` None: leaves the execution unclaimed; ``release``:
        frees it -- the run ends with this node, paused or finished, in the same write).

        All or nothing, like ``executions.update`` + ``checkpoints.add`` + :meth:`commit`
        (with anything else this unit of work has pending), which stores may do in fewer
        round trips. Safe to call again with the same arguments after an ambiguous failure
        (a head that is already ``checkpoint.id`` is accepted).

        Raises:
            ExecutionConflict: The head moved (another runner advanced the execution); nothing
                is written, pending writes are rolled back.
            ExecutionClaimed: Another runner holds a live claim; nothing is written.
            NotFoundError: The execution does not exist; nothing is written.
        """
        ...

    def claim_execution(
        self, execution: Execution, claim: Claim, takeover_from: str | None = None
    ) -> None:
        """Claim the execution for ``claim`` and write its fields (status, ...), then commit.

        ``takeover_from`` names a live claim that may be replaced (one its own process
        abandoned).

        Raises:
            ExecutionClaimed: Another runner holds a live claim (nothing is written).
            ExecutionConflict: The stored head is not ``execution.head_checkpoint_id``.
            NotFoundError: The execution does not exist.
        """
        ...

    def release_execution(self, execution: Execution, claim: Claim) -> None:
        """Write the execution's fields (paused, completed, failed) and free the claim, then
        commit; refused (ExecutionConflict / ExecutionClaimed) if another runner took over."""
        ...

    def move_head(self, execution: Execution, expected_head: str | None) -> None:
        """Write the execution's fields (a new head) without a claim, then commit: refused
        unless the stored head is ``expected_head`` and no runner holds a live claim."""
        ...

    def renew_claim(self, execution_id: str, claim: Claim) -> bool:
        """Extend ``claim``'s lease from now; False if ``claim`` no longer holds the execution."""
        ...

    def drop_claim(self, execution_id: str, claim: Claim) -> None:
        """Free the execution if ``claim`` still holds it; nothing else changes."""
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """A new unit of work. ``read_only=True`` promises it only reads: a store may then
        take a lighter transaction (SQLite: deferred, so it never waits for a writer, still
        one consistent snapshot in WAL); writing in it is a misuse."""
        ...


T = TypeVar("T")


class Retry(Protocol):
    """Runs a whole unit of work again on transient store errors (a bounded number of times)."""

    def __call__(self, fn: Callable[[], T]) -> T: ...


def run_once(fn: Callable[[], T]) -> T:
    """The Retry of stores without transient errors (memory)."""
    return fn()
