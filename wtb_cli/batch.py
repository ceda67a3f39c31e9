"""``wtb batch ...``, ``wtb matrix``, ``wtb parity``, ``wtb demo``: batch tests on Prefect."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from wtb_cli.calls_opts import (
    LlmModeOpt,
    LlmRecordingsOpt,
    LlmSourceOpt,
    NoCacheOpt,
    recordings_path,
)
from wtb_cli.common import app_for, check_database_url, console, one_line, user_errors
from wtb_domain import SpecError, demo
from wtb_domain.batch import reads
from wtb_domain.ids import new_id

if TYPE_CHECKING:  # the service, spec and planning modules load with the commands that run
    # a batch: `wtb batch status` and `wtb matrix` import only the read side
    from wtb_domain.batch.spec import BatchSpec
    from wtb_domain.comparison import ComparisonMatrix

batch_app = typer.Typer(no_args_is_help=True, help="Batch tests: variants x cases x repeats.")

DbOpt = Annotated[
    str | None,
    typer.Option("--db", envvar="WTB_DATABASE_URL", help="Database URL (default ./.wtb/wtb.db)."),
]
FORMATS = ("table", "markdown", "csv", "json")
DEMO_SPEC = Path(demo.__file__).resolve().parent / "batch.yaml"


def _quiet_prefect() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def _overrides(spec: BatchSpec, **values: Any) -> BatchSpec:
    update = {k: v for k, v in values.items() if v is not None}
    if not update:
        return spec
    from wtb_domain.batch.spec import BatchSpec

    return BatchSpec.parse({**spec.model_dump(), **update})


def with_call_options(
    spec: BatchSpec,
    mode: str | None,
    source_batch: str | None,
    no_cache: bool,
    recordings: Path | None = None,
) -> BatchSpec:
    """The spec with ``--llm-mode`` / ``--llm-source-batch`` / ``--llm-recordings`` /
    ``--no-cache`` applied."""
    if mode is None and source_batch is None and recordings is None and not no_cache:
        return spec
    llm = spec.llm.model_dump()
    if mode is not None:
        llm["mode"] = mode
    if source_batch is not None:
        llm["source_batch"] = source_batch
        llm["recordings"] = None
    if recordings is not None:
        llm["recordings"] = recordings_path(mode, source_batch, recordings)
        llm["source_batch"] = None
        if mode is None:
            llm["mode"] = "replay"
    cache = {**spec.cache.model_dump(), **({"enabled": False} if no_cache else {})}
    from wtb_domain.batch.spec import BatchSpec

    return BatchSpec.parse({**spec.model_dump(), "llm": llm, "cache": cache})


def check_format(fmt: str) -> None:
    """Refuse an unknown ``--format`` before any work is done.

    Raises:
        SpecError: Naming the option and the formats.
    """
    if fmt not in FORMATS:
        raise SpecError(f"--format: unknown format {fmt[:40]!r}; use one of {', '.join(FORMATS)}")


def show_matrix(matrix: ComparisonMatrix, fmt: str) -> None:
    check_format(fmt)
    # soft_wrap: a machine-readable line longer than the console (180 columns when piped) is
    # printed whole; wrapping it would split a CSV row or a Markdown table row in two.
    if fmt == "markdown":
        console.print(matrix.to_markdown(), markup=False, highlight=False, soft_wrap=True)
    elif fmt == "csv":
        console.print(matrix.to_csv(), markup=False, highlight=False, end="", soft_wrap=True)
    elif fmt == "json":
        console.print_json(matrix.to_json())  # print_json soft-wraps already
    else:
        _rich_matrix(matrix)


def _rich_matrix(matrix: ComparisonMatrix) -> None:
    from rich.table import Table  # loads with the table format only
    from rich.text import Text

    vs_base = {p.combination: p for p in matrix.vs_baseline}
    best = {p.combination: p for p in matrix.vs_best}
    first = matrix.stats[0].name if matrix.stats else ""
    axes = " / ".join(part.split("=")[0] for part in first.split(",")) or "combination"
    table = Table(title=f"comparison matrix: {escape(matrix.batch_id)}")
    headers = [
        "#",
        axes,
        "n",
        "fail",
        "mean",
        "95% CI",
        "pass",
        "p50 ms",
        "p95 ms",
        "cost",
        "vs best",
    ]
    if matrix.baseline:
        headers.append("vs baseline")
    for col in headers:
        table.add_column(Text(col), justify="left" if col == axes else "right", no_wrap=True)
    for s in matrix.stats:
        label = " / ".join(part.split("=", 1)[-1] for part in s.name.split(","))
        row = [
            str(s.rank),
            escape(label),
            str(s.n),
            str(s.n_failed),
            f"{s.mean_score:.3f}",
            f"[{s.ci_low:.2f}, {s.ci_high:.2f}]",
            f"{s.pass_rate:.0%}",
            f"{s.p50_ms:.1f}",
            f"{s.p95_ms:.1f}",
            f"{s.total_cost:.4f}",
            _verdict(best.get(s.name)),
        ]
        if matrix.baseline:
            row.append(_verdict(vs_base.get(s.name)))
        table.add_row(*row)
    console.print(table)
    if matrix.baseline:
        console.print(f"baseline: {escape(matrix.baseline)}", highlight=False)
    console.print(
        "vs best / vs baseline: paired sign-flip test over cases, Holm-adjusted p, "
        f"alpha {matrix.alpha}",
        highlight=False,
    )


def _verdict(p: Any) -> str:
    if p is None:
        return "-"
    color = {"worse": "red", "better": "green"}.get(p.verdict, "white")
    word = {"no difference": "same"}.get(p.verdict, p.verdict)
    return f"[{color}]{word} p={p.p_adjusted:.2f}[/{color}]"


def _run_with_progress(spec: BatchSpec, base_dir: Path | None, quiet: bool) -> dict[str, Any]:
    from rich.progress import (  # the bar loads with `wtb batch run`, not the read commands
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from flows.batch_runner import BatchTestRunner

    runner = BatchTestRunner(spec.database_url)
    batch_id = runner.run_batch_test(spec, base_dir)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=quiet) as bar:
        task = bar.add_task(f"batch {escape(batch_id)}", total=None, failed=0)
        while True:
            alive = runner.running(batch_id)
            progress = runner.get_progress(batch_id)
            if progress is not None:
                bar.update(
                    task, total=progress.total, completed=progress.done, failed=progress.failed
                )
            if not alive:
                break
            time.sleep(0.5)
    return runner.wait(batch_id)


def summary_line(batch_id: str, summary: dict[str, Any], uses_cache: bool) -> str:
    """The last line of ``wtb batch run``; the cache count only when the batch uses a cache
    (a "0 from the cache" of a batch without one would suggest a cache that missed)."""
    line = (
        f"batch {batch_id}: {summary.get('status')} - {summary.get('done')} of "
        f"{summary.get('total')} results, {summary.get('failed')} failed, "
        f"{summary.get('node_executions')} node runs"
    )
    if uses_cache:
        line += f" ({summary.get('cache_hits', 0)} from the cache)"
    return line


def run_spec(
    spec: BatchSpec, base_dir: Path | None, fmt: str, quiet: bool = False
) -> dict[str, Any]:
    from wtb_domain.batch.plan import resolve

    # workflow, variants, evaluators: a SpecError here, before Prefect starts
    uses_cache = resolve(spec).uses_cache
    _quiet_prefect()
    if spec.batch_id is None:
        spec = spec.model_copy(update={"batch_id": f"batch-{new_id()[:20]}"})
    summary = _run_with_progress(spec, base_dir, quiet)
    if summary.get("done"):
        show_matrix(reads.batch_matrix(app_for(spec.database_url), str(spec.batch_id)), fmt)
    console.print(escape(summary_line(str(spec.batch_id), summary, uses_cache)), highlight=False)
    for error in summary.get("errors") or []:
        console.print(f"[red]task error:[/red] {one_line(error)}", highlight=False)
    return summary


@batch_app.command("run")
@user_errors
def batch_run(
    spec_file: Annotated[Path, typer.Argument(help="Batch spec (YAML or JSON).")],
    batch_id: Annotated[str | None, typer.Option(help="Id to use (rerun it to resume).")] = None,
    runner: Annotated[str | None, typer.Option(help="threadpool or ray.")] = None,
    workers: Annotated[int | None, typer.Option(help="ThreadPool workers.")] = None,
    no_prefix_sharing: Annotated[bool, typer.Option(help="Run every leaf alone.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table|markdown|csv|json")] = "table",
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    llm_mode: LlmModeOpt = None,
    llm_source_batch: LlmSourceOpt = None,
    llm_recordings: LlmRecordingsOpt = None,
    no_cache: NoCacheOpt = False,
    db: DbOpt = None,
) -> None:
    """Run a batch spec as a Prefect flow and print the comparison matrix."""
    check_format(fmt)
    check_database_url(db)
    from wtb_domain.batch.spec import load_spec

    spec, base_dir = load_spec(spec_file)
    spec = _overrides(
        spec,
        batch_id=batch_id,
        runner=runner,
        max_workers=workers,
        database_url=db,
        prefix_sharing=False if no_prefix_sharing else None,
    )
    spec = with_call_options(spec, llm_mode, llm_source_batch, no_cache, llm_recordings)
    check_database_url(spec.database_url, "database_url")
    summary = run_spec(spec, base_dir, fmt, quiet)
    if summary.get("state") != "Completed":
        raise typer.Exit(1)


@batch_app.command("status")
@user_errors
def batch_status(batch_id: str, db: DbOpt = None) -> None:
    """Show a batch's status and progress."""
    app = app_for(db)
    batch = reads.batch_status(app, batch_id)
    p = reads.batch_progress(app, batch_id)
    console.print(
        escape(
            f"batch {batch.id} ({batch.workflow_ref}): {batch.status.value}"
            f"{' (cancel requested)' if batch.cancel_requested else ''}\n"
            f"  {p.done} of {p.total} results, {p.failed} failed, {p.pending} pending"
        ),
        highlight=False,
    )


@batch_app.command("cancel")
@user_errors
def batch_cancel(batch_id: str, db: DbOpt = None) -> None:
    """Ask a running batch to stop after the executions in progress."""
    from wtb_domain.batch.service import BatchService

    running = BatchService(app_for(db)).cancel(batch_id)
    console.print(
        escape(f"cancel requested for {batch_id}" + ("" if running else " (not running)")),
        highlight=False,
    )


def matrix_command(
    batch_id: str,
    baseline: Annotated[str | None, typer.Option(help="Baseline combination name.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table|markdown|csv|json")] = "table",
    db: DbOpt = None,
) -> None:
    """Show the comparison matrix of a batch."""
    check_format(fmt)
    show_matrix(reads.batch_matrix(app_for(db), batch_id, baseline), fmt)


def parity_command(
    spec_file: Annotated[Path, typer.Argument(help="Batch spec (YAML or JSON).")],
    ray: Annotated[bool, typer.Option(help="Also run on Ray.")] = True,
    db: DbOpt = None,
) -> None:
    """Run a spec on ThreadPool (with and without prefix sharing) and on Ray; compare."""
    check_database_url(db)
    from wtb_domain.batch.spec import load_spec

    spec, base_dir = load_spec(spec_file)
    spec = _overrides(spec, database_url=db)
    check_database_url(spec.database_url, "database_url")
    stem = f"parity-{new_id()[:12]}"
    variants: dict[str, dict[str, Any]] = {
        "threadpool": {"runner": "threadpool"},
        "threadpool-unshared": {"runner": "threadpool", "prefix_sharing": False},
    }
    if ray:
        variants["ray"] = {"runner": "ray"}
    from wtb_domain.batch.service import BatchService

    service = BatchService(app_for(spec.database_url))
    results = {}
    for label, changes in variants.items():
        run = spec.model_copy(update={**changes, "batch_id": f"{stem}-{label}"})
        console.print(f"running {escape(label)} ...")
        run_spec(run, base_dir, "table", quiet=True)
        with service.app.uow() as uow:
            results[label] = uow.results.for_batch(str(run.batch_id))
    failed = False
    for label in list(variants)[1:]:
        from wtb_domain.batch.parity import compare_results

        report = compare_results("threadpool", results["threadpool"], label, results[label])
        if report.ok:
            console.print(
                f"[green]parity ok[/green]: threadpool == {escape(label)} "
                f"({report.compared} results)"
            )
            continue
        failed = True
        console.print(f"[red]parity FAILED[/red]: threadpool vs {escape(label)}")
        for line in report.missing[:20]:
            console.print(f"  missing: {escape(str(line))}", highlight=False)
        for d in report.differences[:20]:
            console.print(
                escape(f"  {d.key}: {d.field}: {d.left!r} != {d.right!r}"), highlight=False
            )
    if failed:
        raise typer.Exit(1)


def demo_command(
    which: Annotated[
        str, typer.Argument(help="qa (the default) or agent (the LangGraph agent demo).")
    ] = "qa",
    fmt: Annotated[str, typer.Option("--format", help="table|markdown|csv|json")] = "table",
    no_prefix_sharing: Annotated[
        bool,
        typer.Option("--no-prefix-sharing", help="agent: run every prompt from the input."),
    ] = False,
    db: DbOpt = None,
) -> None:
    """Run a shipped demo batch: qa (27 variant combinations x 40 questions, on Prefect) or
    agent (a LangGraph agent, 3 prompts x 20 questions on recorded replies, in-process)."""
    check_format(fmt)
    check_database_url(db)
    if which == "agent":
        from wtb_cli.demo_agent import run_agent_demo

        run_agent_demo(fmt, db, prefix_sharing=not no_prefix_sharing)
        return
    if which != "qa":
        raise SpecError(f"demo: unknown demo {which[:40]!r}; use qa or agent")
    from wtb_domain.batch.spec import load_spec

    spec, base_dir = load_spec(DEMO_SPEC)
    spec = _overrides(spec, database_url=db)
    summary = run_spec(spec.model_copy(update={"batch_id": f"demo-{new_id()[:12]}"}), base_dir, fmt)
    if summary.get("state") != "Completed":
        raise typer.Exit(1)
