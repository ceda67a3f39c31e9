"""A unit of work that times its checkpoint writes (``wtb_checkpoint_write_seconds``).

It wraps any store's unit of work and forwards every member to it generically
(``__getattr__``): no port member is rewritten here, so one added to the port is delegated
as it is (mypy checks the wrapper against the port through ``__getattr__`` too). Only the
members named in :data:`TIMED_WRITES` (a checkpoint and the head move, one commit) are
wrapped in the metric's timer; ``tests/test_timed_uow.py`` checks every port member is
either delegated untouched or timed, and that each timed name is a port method.
"""

from __future__ import annotations

import functools
import inspect
from types import TracebackType
from typing import Any, Self

from wtb_domain.metrics import PrometheusMetrics
from wtb_domain.ports import UnitOfWork, UnitOfWorkFactory

TIMED_WRITES = frozenset({"start_execution", "save_node"})
"""Port methods that write a checkpoint: observed in ``wtb_checkpoint_write_seconds``."""


class TimedUnitOfWork:
    """``inner`` with its checkpoint writes timed; every other member is ``inner``'s own
    (port members and what a store offers beyond the port, e.g. SQL's ``connection``)."""

    def __init__(self, inner: UnitOfWork, metrics: PrometheusMetrics) -> None:
        self._inner, self._metrics = inner, metrics

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        member = getattr(self._inner, name)
        if name in TIMED_WRITES:
            member = functools.partial(self._metrics.timed_write, member)
        if inspect.ismethod(member) or isinstance(member, functools.partial):
            # A method stays what it is for the unit of work's life: looked up once (the
            # engine calls several per node). Properties are read from ``inner`` each time.
            self.__dict__[name] = member
        return member

    # Special methods are looked up on the type, never through __getattr__.
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


def timed(factory: UnitOfWorkFactory, metrics: PrometheusMetrics) -> UnitOfWorkFactory:
    """``factory`` whose units of work time their checkpoint writes."""

    def uow(*, read_only: bool = False) -> UnitOfWork:
        return TimedUnitOfWork(factory(read_only=read_only), metrics)

    return uow
