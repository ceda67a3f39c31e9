"""What a caller of the adapter passes (no LangGraph import here)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wtb_domain.errors import WorkflowError

INSTALL_HINT = 'pip install -e ".[langgraph]"'


@dataclass(frozen=True)
class VariantSpec:
    """One variant of a LangGraph node: another callable (a LangGraph node function or a
    Runnable; ``None`` keeps the node's own) and/or parameters, given to the node as
    ``config["configurable"]``. ``default=True`` makes it the node's default variant (in
    place of the node's own callable, which is then variant ``default`` only if listed)."""

    fn: Callable[..., Any] | Any | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    default: bool = False


def require_langgraph() -> None:
    """Raise WorkflowError with the install command if the langgraph extra is missing."""
    for module in ("langgraph", "langchain_core"):
        if importlib.util.find_spec(module) is None:
            raise WorkflowError(
                f"the LangGraph adapter needs the {module!r} package, which is not installed; "
                f"install the extra: {INSTALL_HINT}"
            )
