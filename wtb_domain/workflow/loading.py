"""Loading a workflow from a reference ``package.module:attr``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from wtb_domain.errors import WorkflowError
from wtb_domain.refs import import_ref, one_line
from wtb_domain.workflow.builder import GraphBuilder
from wtb_domain.workflow.model import Workflow


def load_workflow(ref: str) -> Workflow:
    """Resolve ``package.module:attr`` to a Workflow (attr may be a Workflow or a factory).

    A factory is a Python function taking no arguments; other callables (builtins such as
    ``sys:exit``, classes) are refused without being called. Every failure is a one-line
    WorkflowError.
    """
    obj = import_ref(ref, "workflow reference", "wtb_domain.demo.qa:workflow")
    if isinstance(obj, GraphBuilder):
        obj = _build(ref, obj)
    elif inspect.isfunction(obj):
        obj = _call_factory(ref, obj)
    if not isinstance(obj, Workflow):
        raise WorkflowError(
            f"workflow reference {ref!r} points to a {type(obj).__name__}, not a Workflow "
            "(or a GraphBuilder, or a Python function with no arguments returning one)"
        )
    obj.ref = ref
    return obj


def _build(ref: str, builder: GraphBuilder) -> Workflow:
    try:
        return builder.build()
    except WorkflowError as exc:
        raise WorkflowError(f"workflow reference {ref!r}: {exc}") from None


def _call_factory(ref: str, factory: Callable[..., Any]) -> Any:
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise WorkflowError(
            f"workflow reference {ref!r} points to a function that needs arguments; "
            "point it to a Workflow or a function with no arguments returning one"
        ) from None
    try:
        obj = factory()
    except WorkflowError as exc:
        raise WorkflowError(f"workflow reference {ref!r}: {exc}") from None
    except Exception as exc:
        raise WorkflowError(
            f"workflow reference {ref!r}: calling {factory.__qualname__}() failed "
            f"({type(exc).__name__}: {one_line(exc)})"
        ) from None
    if isinstance(obj, GraphBuilder):
        obj = _build(ref, obj)
    return obj
