"""The timed unit of work delegates every member of the UnitOfWork port to the store's own
and times exactly the checkpoint writes; a member added to the port is delegated with no
change to ``wtb_domain/adapters/timed.py`` (and must be classified here: timed or not)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from wtb_domain.adapters.timed import TIMED_WRITES, TimedUnitOfWork, timed
from wtb_domain.ports import UnitOfWork

PORT_MEMBERS = sorted(n for n in vars(UnitOfWork) if not n.startswith("_"))
PROPERTIES = [n for n in PORT_MEMBERS if isinstance(vars(UnitOfWork)[n], property)]
METHODS = [n for n in PORT_MEMBERS if n not in PROPERTIES]


class Spy:
    """A store's unit of work that answers every member and remembers each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.members: dict[str, Callable[..., Any]] = {}
        self.entered = self.exited = 0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self.members:

            def call(*args: Any, **kwargs: Any) -> Any:
                self.calls.append((name, args, kwargs))
                return ("returned by", name)

            self.members[name] = call
        return self.members[name]

    def __enter__(self) -> Spy:
        self.entered += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.exited += 1


class CountingMetrics:
    def __init__(self) -> None:
        self.writes = 0

    def timed_write(self, write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return write(*args, **kwargs)


def test_the_port_has_the_members_this_test_knows() -> None:
    assert {"executions", "checkpoints", "calls", "node_cache"} <= set(PROPERTIES)
    assert {"commit", "rollback", "save_node", "start_execution", "record"} <= set(METHODS)
    assert set(TIMED_WRITES) <= set(METHODS)  # a renamed write cannot silently lose its timing


@pytest.mark.parametrize("name", PROPERTIES)
def test_every_port_property_is_the_stores_own(name: str) -> None:
    spy = Spy()
    wrapped = TimedUnitOfWork(spy, CountingMetrics())  # type: ignore[arg-type]
    assert getattr(wrapped, name) is getattr(spy, name)


@pytest.mark.parametrize("name", METHODS)
def test_every_port_method_is_delegated_and_only_checkpoint_writes_are_timed(name: str) -> None:
    spy, metrics = Spy(), CountingMetrics()
    wrapped = TimedUnitOfWork(spy, metrics)  # type: ignore[arg-type]
    params = list(inspect.signature(vars(UnitOfWork)[name]).parameters.values())[1:]
    args = tuple(object() for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)
    kwargs = {p.name: object() for p in params if p.kind is p.KEYWORD_ONLY}
    assert getattr(wrapped, name)(*args, **kwargs) == ("returned by", name)
    assert spy.calls == [(name, args, kwargs)]
    assert metrics.writes == (1 if name in TIMED_WRITES else 0)


def test_the_context_manager_enters_and_exits_the_store_and_yields_the_wrapper() -> None:
    spy = Spy()
    wrapped = TimedUnitOfWork(spy, CountingMetrics())  # type: ignore[arg-type]
    with wrapped as uow:
        assert uow is wrapped
    assert (spy.entered, spy.exited) == (1, 1)
    with pytest.raises(AttributeError):
        _ = wrapped._private  # private names are not forwarded


def test_the_factory_passes_read_only_and_wraps_each_unit_of_work() -> None:
    seen: list[bool] = []

    def factory(*, read_only: bool = False) -> UnitOfWork:
        seen.append(read_only)
        return Spy()  # type: ignore[return-value]

    make = timed(factory, CountingMetrics())  # type: ignore[arg-type]
    assert isinstance(make(read_only=True), TimedUnitOfWork)
    assert isinstance(make(), TimedUnitOfWork)
    assert seen == [True, False]
