"""Workflow graphs: named nodes over a JSON state, edges, conditional edges, node variants and
reducers per state key.

A node is a callable ``(state, ctx) -> partial update`` (plain or ``async def``). The update (a
mapping of top-level keys) is merged into the state: a key replaces its value unless the
workflow declares a reducer for it (see :mod:`wtb_domain.reducers`). Nodes should treat
``state`` as read-only and return every key they change: the state they see is a read-only
view, and nested values are shared with the stored checkpoint.
"""

from wtb_domain.reducers import Reducer, ReducerSpec
from wtb_domain.workflow.builder import GraphBuilder
from wtb_domain.workflow.loading import load_workflow
from wtb_domain.workflow.model import (
    DEFAULT_MAX_STEPS,
    DEFAULT_VARIANT,
    END,
    ConditionalEdge,
    Node,
    NodeContext,
    NodeFn,
    NodeVariant,
    Router,
    State,
    Workflow,
)

__all__ = [
    "DEFAULT_MAX_STEPS",
    "DEFAULT_VARIANT",
    "END",
    "ConditionalEdge",
    "GraphBuilder",
    "Node",
    "NodeContext",
    "NodeFn",
    "NodeVariant",
    "Reducer",
    "ReducerSpec",
    "Router",
    "State",
    "Workflow",
    "load_workflow",
]
