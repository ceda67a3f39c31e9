"""Bounded retries with exponential backoff and jitter for transient database errors.

A PostgreSQL restart, failover or a dropped connection makes the statement in flight fail with
an ``OperationalError`` (SQLAlchemy marks it ``connection_invalidated``) and new connections
fail with "connection refused" until the server is back. :func:`with_retries` reruns a whole
unit of work (open, write, commit) a bounded number of times, then raises a
:class:`~wtb_domain.errors.StoreError` that says the batch can be resumed.

Only transient errors are retried (:func:`is_transient`): lost or refused connections, the
server shutting down or starting up, too many connections. Integrity, data, programming and
other errors are raised at once: retrying them cannot help and could hide a bug.

Apply it around a whole transaction, never around a single statement of a transaction that
already failed: PostgreSQL rolls back the transaction of a lost connection, so the retry must
redo every write of it. The function must therefore be safe to run twice (the first commit may
have reached the server even though its acknowledgement did not reach us): ``add_many`` of
batch results skips leaves already stored, and checkpoints need ``ON CONFLICT (id) DO
NOTHING`` for the same reason.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy import exc as sa_exc

from wtb_domain.errors import StoreError

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 5
DEFAULT_BASE_DELAY = 0.2
DEFAULT_MAX_DELAY = 5.0
RESUME_HINT = "the batch can be resumed with the same batch_id"

# SQLSTATEs worth retrying: connection exceptions (class 08), the server shutting down, crashed
# or starting up (57P01-57P03), too many connections (53300). Serialisation failures and
# deadlocks (40001/40P01) are not connection problems and are left to the caller.
TRANSIENT_SQLSTATES = frozenset(
    {"08000", "08001", "08003", "08004", "08006", "08007", "57P01", "57P02", "57P03", "53300"}
)
NEVER_RETRIED: tuple[type[BaseException], ...] = (
    sa_exc.IntegrityError,
    sa_exc.DataError,
    sa_exc.ProgrammingError,
    sa_exc.NotSupportedError,
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised ``from`` (``StoreError`` wraps the DBAPIError).

    Only explicit causes count: an unrelated error raised while handling a database error
    (an implicit ``__context__``) is not a database error.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)  # psycopg 3
    if state is None:
        state = getattr(exc, "pgcode", None)  # psycopg 2
    return state if isinstance(state, str) else None


def _driver_transient(orig: BaseException) -> bool:
    """A driver-level exception (``DBAPIError.orig``): psycopg's lost/refused connections."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    if not isinstance(orig, psycopg.OperationalError):
        return False
    state = _sqlstate(orig)
    # No SQLSTATE: the server never answered (refused, reset, closed unexpectedly).
    return state is None or state in TRANSIENT_SQLSTATES


def is_transient(exc: BaseException) -> bool:
    """True for errors that a new connection may not have (see the module docstring)."""
    for cause in _causes(exc):
        if isinstance(cause, NEVER_RETRIED):
            return False
        if isinstance(cause, sa_exc.DBAPIError):
            if cause.connection_invalidated:
                return True
            if isinstance(cause, sa_exc.OperationalError) and cause.orig is not None:
                return _driver_transient(cause.orig)
            return False
        if _driver_transient(cause):
            return True
    return False


def backoff_delay(
    attempt: int,
    base_delay: float = DEFAULT_BASE_DELAY,
    max_delay: float = DEFAULT_MAX_DELAY,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): "equal jitter" backoff.

    ``min(max_delay, base_delay * 2 ** (attempt - 1))``, half of it fixed and half uniformly
    random, so many workers that lost the server together do not reconnect in lockstep.
    """
    ceiling = min(max_delay, base_delay * 2.0 ** (attempt - 1))
    jitter: float = (rng or random).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


def _describe(exc: BaseException) -> str:
    for cause in _causes(exc):
        if isinstance(cause, sa_exc.DBAPIError) and cause.orig is not None:
            return f"{type(cause.orig).__name__}: {str(cause.orig).strip()}"
    return f"{type(exc).__name__}: {str(exc).strip()}"


def with_retries(
    fn: Callable[[], T],
    attempts: int = DEFAULT_ATTEMPTS,
    base_delay: float = DEFAULT_BASE_DELAY,
    max_delay: float = DEFAULT_MAX_DELAY,
    *,
    hint: str = RESUME_HINT,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call ``fn`` (a whole unit of work) until it succeeds, retrying transient errors.

    Args:
        fn: Opens a unit of work, writes and commits; must be safe to run again.
        attempts: Calls at most (>= 1).
        base_delay: Backoff before the second attempt, doubling each time (seconds).
        max_delay: Cap of the backoff (seconds).
        hint: What the user can do, appended to the final error.
        sleep: The sleep function (tests pass a fake).
        rng: Random source of the jitter.
        on_retry: Called as ``on_retry(attempt, error, delay)`` before each backoff.

    Returns:
        What ``fn`` returned.

    Raises:
        StoreError: ``fn`` still failed transiently after ``attempts`` calls ("database
            unreachable after N attempts: ...; <hint>").
        Exception: Any non-transient error of ``fn``, at once and unchanged.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise StoreError(
                    f"database unreachable after {attempts} attempts: {_describe(exc)}; {hint}"
                ) from exc
            delay = backoff_delay(attempt, base_delay, max_delay, rng)
            log.warning(
                "transient database error (attempt %d of %d), retrying in %.2f s: %s",
                attempt,
                attempts,
                delay,
                _describe(exc),
            )
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
