"""WTB domain: workflows with node variants, a checkpoint after every node, time travel.

This package has no Prefect dependency; ``tasks/`` and ``flows/`` call into it.
"""

from wtb_domain.bootstrap import App, memory_app, sql_app
from wtb_domain.controller import ExecutionController
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
from wtb_domain.model import AuditEntry, Checkpoint, Execution, Severity, Source, Status
from wtb_domain.state import StateDiff
from wtb_domain.workflow import END, GraphBuilder, NodeContext, Workflow, load_workflow

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
