"""LangGraph integration (``pip install -e ".[langgraph]"``).

Importing this package does not import LangGraph; the names below load it on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WtbCheckpointSaver"]


def __getattr__(name: str) -> Any:
    if name == "WtbCheckpointSaver":
        from wtb_domain.langgraph.saver import WtbCheckpointSaver

        return WtbCheckpointSaver
    raise AttributeError(name)
