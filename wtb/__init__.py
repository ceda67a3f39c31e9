"""WTB from Python: run a batch spec, gate it against its pinned baseline.

```python
import wtb

run = wtb.run_batch("spec.yaml")                 # a Prefect flow run; waits for the end
print(run.batch_id, run.status, run.matrix.best)

result = wtb.regress("spec.yaml")                # vs the baseline pinned for the spec's name
if not result.passed:
    print(result.verdict.to_markdown())
```

Specs may be a :class:`~wtb_domain.batch.spec.BatchSpec`, a path to a YAML/JSON file (its
``cases_file`` is relative to it) or a dict (``cases_file`` relative to the working directory).
Pin a baseline with ``wtb baseline set NAME BATCH_ID`` or :func:`bless`.

Batches on a Ray cluster (``ray_address`` set) keep this process's Ray connection open, so the
next batch's tasks run in the same, already warm, worker processes; :func:`disconnect_ray`
ends it (and exiting the process does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService
from wtb_domain.batch.spec import BatchSpec, load_spec
from wtb_domain.comparison import ComparisonMatrix
from wtb_domain.errors import SpecError
from wtb_domain.ids import new_id
from wtb_domain.model import Baseline
from wtb_domain.regression import RegressionPolicy, Verdict
from wtb_domain.regression.service import RegressionService

SpecLike = BatchSpec | str | Path | dict[str, Any]

__all__ = [
    "BatchRun",
    "RegressionResult",
    "SpecLike",
    "bless",
    "disconnect_ray",
    "load",
    "regress",
    "run_batch",
]


@dataclass(frozen=True)
class BatchRun:
    """A finished batch: its id, final status, the flow's summary and the comparison matrix.

    Attributes:
        batch_id: The batch id (generated from the spec name unless the spec sets one).
        status: The batch's status (``completed``, ``completed_with_failures``, ``failed``,
            ``cancelled``), as stored.
        state: The Prefect flow run's final state name (``Completed``, ``Failed``, ...).
        summary: The flow's summary dict (done, failed, total, node_executions, errors, ...).
        matrix: The comparison matrix, or ``None`` when the batch stored no result.
    """

    batch_id: str
    status: str
    state: str
    summary: dict[str, Any]
    matrix: ComparisonMatrix | None

    @property
    def ok(self) -> bool:
        """The flow run completed (``fail_on_error`` and a failed batch make it Failed)."""
        return self.state == "Completed"


@dataclass(frozen=True)
class RegressionResult:
    """A batch run and its verdict against the pinned baseline.

    Attributes:
        batch: The new batch.
        baseline_id: The baseline batch it was judged against.
        verdict: The verdict (``status``: ``not_worse``, ``regressed`` or ``incomparable``).
        blessed: The new blessing when ``bless_on_pass`` pinned the batch, else ``None``.
    """

    batch: BatchRun
    baseline_id: str
    verdict: Verdict
    blessed: Baseline | None = None

    @property
    def status(self) -> str:
        return self.verdict.status

    @property
    def passed(self) -> bool:
        """True only when not worse (incomparable is a failure)."""
        return self.verdict.passed

    @property
    def exit_code(self) -> int:
        """0 not worse, 1 regressed, 2 incomparable (what ``wtb regress`` exits with)."""
        return self.verdict.exit_code


def load(spec: SpecLike, *, db: str | None = None) -> tuple[BatchSpec, Path]:
    """The spec and the directory its ``cases_file`` is relative to; ``db`` overrides its
    ``database_url``."""
    if isinstance(spec, BatchSpec):
        parsed, base_dir = spec, Path.cwd()
    elif isinstance(spec, dict):
        parsed, base_dir = BatchSpec.parse(spec), Path.cwd()
    elif isinstance(spec, str | Path):
        parsed, base_dir = load_spec(spec)
    else:
        raise SpecError(f"spec: expected a BatchSpec, a path or a dict, got {type(spec).__name__}")
    if db is not None:
        parsed = parsed.model_copy(update={"database_url": db})
    return parsed, base_dir


def _with_batch_id(spec: BatchSpec) -> BatchSpec:
    if spec.batch_id:
        return spec
    from flows.batch_test import slug

    return spec.model_copy(update={"batch_id": f"{slug(spec.name or 'batch')}-{new_id()[:12]}"})


def run_batch(spec: SpecLike, *, db: str | None = None) -> BatchRun:
    """Run every combination x case x repeat of ``spec`` as a Prefect flow; wait for it.

    Raises:
        SpecError: An invalid spec (before any flow run starts).
    """
    parsed, base_dir = load(spec, db=db)
    return _run(parsed, base_dir)


def _run(parsed: BatchSpec, base_dir: Path) -> BatchRun:
    from flows.batch_test import run_batch as run_flow

    parsed = _with_batch_id(parsed)
    batch_id = str(parsed.batch_id)
    summary = run_flow(parsed, base_dir)
    service = BatchService(sql_app(parsed.database_url))
    batch = service.status(batch_id)
    matrix = service.matrix(batch_id) if service.progress(batch_id).done else None
    return BatchRun(
        batch_id=batch_id,
        status=batch.status.value,
        state=str(summary.get("state")),
        summary=summary,
        matrix=matrix,
    )


def regress(
    spec: SpecLike,
    baseline: str | None = None,
    *,
    db: str | None = None,
    policy: RegressionPolicy | None = None,
    bless_on_pass: bool = False,
) -> RegressionResult:
    """Run ``spec`` as a new batch and judge it against a pinned baseline.

    Args:
        spec: The batch spec.
        baseline: A baseline name or a batch id; default: the baseline pinned for the spec's
            ``name``. Resolved before the batch runs (nothing pinned: nothing runs).
        db: Database URL (default: the spec's ``database_url``, ``WTB_DATABASE_URL``,
            ``./.wtb/wtb.db``).
        policy: Thresholds; default: the spec's ``regression:`` section.
        bless_on_pass: Pin the new batch as the baseline of the spec's name when it is not
            worse (opt-in; a regressed or incomparable batch is never pinned).

    Raises:
        SpecError, NotFoundError: No baseline pinned (the message says how to bless one), an
            unknown baseline, or an invalid spec.
    """
    parsed, base_dir = load(spec, db=db)
    service = RegressionService(sql_app(parsed.database_url))
    base = service.resolve_baseline(baseline, parsed.name)
    if bless_on_pass and not parsed.name:
        raise SpecError("name: bless_on_pass pins the baseline of the spec's name; name the spec")
    run = _run(parsed, base_dir)
    verdict = service.compare(run.batch_id, base, policy or parsed.regression)
    blessed = None
    if bless_on_pass and parsed.name:
        blessed = service.bless_on_pass(parsed.name, verdict, blessed_by="wtb.regress")
    return RegressionResult(run, base.id, verdict, blessed)


def bless(name: str, batch_id: str, note: str | None = None, *, db: str | None = None) -> Baseline:
    """Pin ``batch_id`` as the baseline of ``name`` (what ``wtb baseline set`` does)."""
    return RegressionService(sql_app(db)).bless(name, batch_id, note)


def disconnect_ray(timeout: float | None = None) -> bool:
    """End the Ray job this process keeps for batches on a cluster (its worker processes
    stop) and the Prefect server WTB started for it, once no batch uses them.

    Returns False when a batch still ran after ``timeout`` seconds (nothing was closed).
    """
    from flows.ray_session import disconnect

    return disconnect(timeout)
