"""What a node sees of a run: its ``ctx``, the run mode, the latency metric and the stored
error of a failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from wtb_domain.errors import NodeError, RecordingError
from wtb_domain.recording.recorder import Recorder
from wtb_domain.redaction import mask_text

LATENCY_METRIC = "latency_ms"
"""Sum of node run times along the checkpoint lineage, kept in every execution's metrics."""


def error_of(exc: BaseException) -> tuple[str, str]:
    """The error type and message stored for a failure; a secret the message may carry (a
    database URL's password, an API key) is masked before anything is written."""
    if isinstance(exc, NodeError):
        return exc.error_type, mask_text(exc.error_message)
    return type(exc).__name__, mask_text(str(exc))


class Mode(Enum):
    RUN = "run"
    STEP = "step"


@dataclass
class RunContext:
    """The ``ctx`` a node receives: its variant, parameters and a metric recorder."""

    node: str
    variant: str
    params: Mapping[str, Any]
    execution_id: str
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    calls: Recorder | None = field(default=None, repr=False)
    """Recorded LLM/tool calls of this node run (see :mod:`wtb_domain.recording`)."""

    def record(self, name: str, value: float) -> None:
        """Add ``value`` to the metric ``name`` for this node run."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"metric {name!r} must be a number, got {type(value).__name__}")
        self.metrics[name] = self.metrics.get(name, 0.0) + float(value)

    def _recorder(self) -> Recorder:
        if self.calls is None:
            raise RecordingError(f"node {self.node!r}: ctx has no call recorder (not run by WTB)")
        return self.calls

    def llm(self, call: Callable[..., Any], **request: Any) -> Any:
        """``call(**request)``, recorded or replayed per the run's LLM mode; JSON back."""
        return self._recorder().llm(call, **request)

    async def allm(self, call: Callable[..., Awaitable[Any]], **request: Any) -> Any:
        """The async :meth:`llm` (``await call(**request)``)."""
        return await self._recorder().allm(call, **request)

    def tool(self, name: str, fn: Callable[..., Any], args: Mapping[str, Any]) -> Any:
        """``fn(**args)``, recorded or replayed (not run) per the run's mode; JSON back."""
        return self._recorder().tool(name, fn, args)

    async def atool(
        self, name: str, fn: Callable[..., Awaitable[Any]], args: Mapping[str, Any]
    ) -> Any:
        return await self._recorder().atool(name, fn, args)
