"""The execution engine: runs nodes from an execution's head, writing a checkpoint after each.

- :mod:`.context`: what a node sees (``RunContext``, ``Mode``, ``LATENCY_METRIC``, ``error_of``);
- :mod:`.core`: ``Engine`` — claim an execution and drive it node by node;
- :mod:`.step`: one node's run and checkpoint write, and whether the run stops after it;
- :mod:`.outcomes`: the retried write with its events; pause, finish and fail.
"""

from __future__ import annotations

from wtb_domain.engine.context import LATENCY_METRIC, Mode, RunContext, error_of
from wtb_domain.engine.core import Engine

__all__ = ["LATENCY_METRIC", "Engine", "Mode", "RunContext", "error_of"]
