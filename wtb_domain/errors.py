"""The WTB exception tree.

Every error WTB raises on purpose derives from :class:`WtbError`::

    WtbError
    ├── WorkflowError      a workflow graph is malformed or a workflow reference cannot be resolved
    ├── SpecError          a batch spec (or CLI argument) is invalid; names the field path
    ├── StateError         state is not JSON-serialisable; names the node and the key
    ├── NodeError          a node raised or timed out while running
    ├── ExecutionError     an operation does not fit the execution's status (resume a completed run)
    │   └── ExecutionExists  an execution with the requested id is stored already
    ├── NotFoundError      an execution, checkpoint or batch id does not exist
    ├── StoreError         the database failed or is unreachable after retries
    ├── RunError           a flow run crashed or ended without a result (infrastructure, not input)
    └── RecordingError     an LLM/tool call cannot be recorded or replayed (names node and request)

Messages say what was wrong and how to fix it.
"""

from __future__ import annotations


class WtbError(Exception):
    """Root of every error WTB raises on purpose."""


class WorkflowError(WtbError):
    """A workflow graph is malformed, or a workflow reference cannot be resolved."""


class SpecError(WtbError):
    """A batch spec or command-line value is invalid."""


class StateError(WtbError):
    """A state value cannot be stored as JSON."""


class NodeError(WtbError):
    """A node raised an exception or exceeded its timeout."""

    def __init__(self, node: str, error_type: str, message: str, traceback_text: str = "") -> None:
        super().__init__(f"node {node!r} failed: {error_type}: {message}")
        self.node = node
        self.error_type = error_type
        self.error_message = message
        self.traceback_text = traceback_text


class ExecutionError(WtbError):
    """The requested operation does not fit the execution's current status."""


class ExecutionExists(ExecutionError):
    """An execution with the requested id is stored already."""


class NotFoundError(WtbError):
    """An execution, checkpoint or batch id does not exist in the store."""


class StoreError(WtbError):
    """The store failed (database unreachable, retries exhausted)."""


class RunError(WtbError):
    """A flow run crashed, or ended without the summary it should return."""


class RecordingError(WtbError):
    """A recorded LLM or tool call cannot be recorded or replayed (a request never seen in
    replay mode, a response that is not JSON, an unknown mode)."""
