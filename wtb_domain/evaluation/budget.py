"""Time budgets: how one evaluator call is kept from hanging a batch.

Every evaluator has a budget (``timeout_s``; :data:`DEFAULT_TIMEOUT_S`, or
:data:`DEFAULT_REGEX_TIMEOUT_S` for ``regex``). It is enforced in one of two ways:

* **Built-in evaluators** (``runs_user_code = False``) run inline. Their work is bounded by the
  size of the output, except regular expressions, which are matched with the ``regex``
  package's own ``timeout=`` (the matcher stops itself). A call that still overran its budget
  is discarded.
* **User code** (``custom``, ``llm_judge`` and any evaluator object that does not declare
  ``runs_user_code = False``) runs in a daemon thread that the caller waits for at most the
  budget. Python cannot kill a thread, so a hung call is *abandoned*: the caller gets
  :class:`EvaluatorTimeout` at once and goes on. While an abandoned call of the same function is
  still running, further calls of it fail at once (:class:`EvaluatorBusy`) instead of piling up
  hung threads; once it returns, the function is called normally again. Daemon threads never
  keep the process from exiting.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_REGEX_TIMEOUT_S = 1.0
MAX_TIMEOUT_S = 3600.0


class EvaluatorTimeout(Exception):
    """An evaluator call ran past its budget."""

    def __init__(self, budget_s: float) -> None:
        super().__init__(f"timed out after {seconds(budget_s)} s")
        self.budget_s = budget_s


class EvaluatorBusy(Exception):
    """An earlier call of the same user function timed out and is still running."""

    def __init__(self, budget_s: float) -> None:
        super().__init__(
            f"not called: an earlier call timed out after {seconds(budget_s)} s and is still "
            "running"
        )
        self.budget_s = budget_s


def seconds(value: float) -> str:
    """``1.0`` -> ``"1.0"``, ``0.25`` -> ``"0.25"``: a budget as it reads in messages."""
    return f"{value:.1f}" if round(value, 1) == value else f"{value:g}"


_lock = threading.Lock()
# id(user callable) -> (the callable, kept alive so its id is not reused; its abandoned threads)
_abandoned: dict[int, tuple[object, list[threading.Thread]]] = {}


def _still_running(key: object) -> bool:
    with _lock:
        entry = _abandoned.get(id(key))
        if entry is None:
            return False
        alive = [t for t in entry[1] if t.is_alive()]
        if alive:
            _abandoned[id(key)] = (key, alive)
            return True
        del _abandoned[id(key)]
        return False


def _abandon(key: object, thread: threading.Thread) -> None:
    with _lock:
        _, threads = _abandoned.get(id(key), (key, []))
        _abandoned[id(key)] = (key, [*threads, thread])


def call_inline(call: Callable[[], Any], budget_s: float) -> Any:
    """Run a bounded call in this thread; a result that came later than the budget is dropped.

    Raises:
        EvaluatorTimeout: The call took longer than ``budget_s`` (or raised ``TimeoutError``,
            as the ``regex`` matcher does when its own timeout fires).
    """
    start = time.monotonic()
    try:
        value = call()
    except TimeoutError:
        raise EvaluatorTimeout(budget_s) from None
    if time.monotonic() - start > budget_s:
        raise EvaluatorTimeout(budget_s)
    return value


def call_isolated(call: Callable[[], Any], budget_s: float, key: object) -> Any:
    """Run user code in a daemon thread and wait for it at most ``budget_s`` seconds.

    Args:
        call: The call to make (no arguments).
        budget_s: Seconds to wait.
        key: What identifies the user code (its function), for :class:`EvaluatorBusy`.

    Returns:
        What ``call`` returned; an exception it raised is raised here.

    Raises:
        EvaluatorTimeout: The call did not return in time; its thread is abandoned.
        EvaluatorBusy: An abandoned call of ``key`` is still running; ``call`` is not made.
    """
    if _still_running(key):
        raise EvaluatorBusy(budget_s)
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = context.run(call)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name="wtb-evaluator", daemon=True)
    thread.start()
    thread.join(budget_s)
    if thread.is_alive():
        _abandon(key, thread)
        raise EvaluatorTimeout(budget_s)
    if "error" in box:
        raise box["error"]
    return box["value"]
