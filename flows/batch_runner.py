"""BatchTestRunner: the seed's IBatchTestRunner roles over the Prefect batch flow.

``run_batch_test`` starts the flow in a background thread and returns the batch id at once;
status, progress and cancel read and write the store, so they also work from another process
(``wtb batch status/cancel``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.errors import NotFoundError
from wtb_domain.ids import new_id
from wtb_domain.model import BatchProgress, BatchStatus


class BatchTestRunner:
    """Runs batch specs as Prefect flows, one background thread per running batch."""

    def __init__(self, database_url: str | None = None) -> None:
        self._database_url = database_url
        self._threads: dict[str, threading.Thread] = {}
        self._outcomes: dict[str, dict[str, Any]] = {}

    def _service(self, spec: BatchSpec | None = None) -> BatchService:
        url = spec.database_url if spec and spec.database_url else self._database_url
        return BatchService(sql_app(url))

    def run_batch_test(self, spec: BatchSpec, base_dir: Path | None = None) -> str:
        """Start the batch flow; returns the batch id (generated when the spec has none)."""
        from flows.batch_test import run_batch

        batch_id = spec.batch_id or f"batch-{new_id()[:20]}"
        spec = spec.model_copy(
            update={"batch_id": batch_id, "database_url": spec.database_url or self._database_url}
        )

        def work() -> None:
            try:
                self._outcomes[batch_id] = run_batch(spec, base_dir)
            except BaseException as exc:  # kept for wait(); the thread must not die silently
                self._outcomes[batch_id] = {"state": "Crashed", "exception": exc}

        thread = threading.Thread(target=work, name=f"wtb-batch-{batch_id}", daemon=True)
        self._threads[batch_id] = thread
        thread.start()
        return batch_id

    def wait(self, batch_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the batch's flow ends; re-raises what crashed it."""
        thread = self._threads[batch_id]
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"batch {batch_id} still running after {timeout} s")
        outcome = self._outcomes[batch_id]
        if "exception" in outcome:
            raise outcome["exception"]
        return outcome

    def running(self, batch_id: str) -> bool:
        thread = self._threads.get(batch_id)
        return bool(thread and thread.is_alive())

    def get_status(self, batch_id: str) -> BatchStatus:
        return self._service().status(batch_id).status

    def get_progress(self, batch_id: str) -> BatchProgress | None:
        """Results so far, or None before the flow has registered the batch."""
        try:
            return self._service().progress(batch_id)
        except NotFoundError:
            return None

    def cancel(self, batch_id: str) -> bool:
        return self._service().cancel(batch_id)

    def shutdown(self, timeout: float | None = 30) -> None:
        """Cancel running batches, wait for their flows to end, and close the Ray job kept
        for them (``flows.ray_session``; until then the job's warm workers serve every
        batch this process runs on the same cluster)."""
        from flows.ray_session import disconnect

        for batch_id, thread in self._threads.items():
            if thread.is_alive():
                self.cancel(batch_id)
        for thread in self._threads.values():
            thread.join(timeout)
        disconnect(timeout)
