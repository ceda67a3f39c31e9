"""WTB domain: workflows with node variants, a checkpoint after every node, time travel.

This package has no Prefect dependency; ``tasks/`` and ``flows/`` call into it.

The public names load on first use (PEP 562), so a command that only reads the store
(``wtb matrix``, ``wtb batch status``) does not import the engine, the workflow models or the
in-memory adapters: ``from wtb_domain import sql_app`` imports only the composition root.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wtb_domain.errors import (
    ExecutionError,
    ExecutionExists,
    NodeError,
    NotFoundError,
    RunError,
    SpecError,
    StateError,
    StoreError,
    WorkflowError,
    WtbError,
)
from wtb_domain.lazy import lazy_exports

if TYPE_CHECKING:
    from wtb_domain.bootstrap import App, memory_app, sql_app
    from wtb_domain.controller import ExecutionController
    from wtb_domain.model import AuditEntry, Checkpoint, Execution, Severity, Source, Status
    from wtb_domain.state import StateDiff
    from wtb_domain.workflow import END, GraphBuilder, NodeContext, Workflow, load_workflow

_LAZY = {
    "App": "wtb_domain.bootstrap",
    "memory_app": "wtb_domain.bootstrap",
    "sql_app": "wtb_domain.bootstrap",
    "ExecutionController": "wtb_domain.controller",
    "AuditEntry": "wtb_domain.model",
    "Checkpoint": "wtb_domain.model",
    "Execution": "wtb_domain.model",
    "Severity": "wtb_domain.model",
    "Source": "wtb_domain.model",
    "Status": "wtb_domain.model",
    "StateDiff": "wtb_domain.state",
    "END": "wtb_domain.workflow",
    "GraphBuilder": "wtb_domain.workflow",
    "NodeContext": "wtb_domain.workflow",
    "Workflow": "wtb_domain.workflow",
    "load_workflow": "wtb_domain.workflow",
}

if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all __getattr__
    __getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "END",
    "App",
    "AuditEntry",
    "Checkpoint",
    "Execution",
    "ExecutionController",
    "ExecutionError",
    "ExecutionExists",
    "GraphBuilder",
    "NodeContext",
    "NodeError",
    "NotFoundError",
    "RunError",
    "Severity",
    "Source",
    "SpecError",
    "StateDiff",
    "StateError",
    "Status",
    "StoreError",
    "Workflow",
    "WorkflowError",
    "WtbError",
    "load_workflow",
    "memory_app",
    "sql_app",
]
