"""``wtb baseline set/show`` (pinned baselines) and ``wtb regress`` (the CI gate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wtb_cli.common import app_for, console, err_console, user_errors
from wtb_domain import SpecError

if TYPE_CHECKING:
    from wtb_domain.regression.service import RegressionService

baseline_app = typer.Typer(
    no_args_is_help=True, help="Pinned regression baselines: bless a batch, show the history."
)

DbOpt = Annotated[
    str | None,
    typer.Option("--db", envvar="WTB_DATABASE_URL", help="Database URL (default ./.wtb/wtb.db)."),
]
SHOW_FORMATS = ("table", "json")


def _service(db: str | None) -> RegressionService:
    """The regression service (its pydantic models load with the command that uses them)."""
    from wtb_domain.regression.service import RegressionService

    return RegressionService(app_for(db))


@baseline_app.command("set")
@user_errors
def baseline_set(
    name: Annotated[str, typer.Argument(help="Baseline name (usually the spec's name).")],
    batch_id: Annotated[str, typer.Argument(help="A finished batch to pin.")],
    note: Annotated[str | None, typer.Option(help="Why this batch is the baseline.")] = None,
    db: DbOpt = None,
) -> None:
    """Pin BATCH_ID as the baseline of NAME (kept in its history; the newest one counts)."""
    blessed = _service(db).bless(name, batch_id, note)
    console.print(
        f"baseline {blessed.name}: {blessed.batch_test_id} "
        f"(blessed {blessed.blessed_at:%Y-%m-%d %H:%M:%S} UTC)",
        highlight=False,
    )


@baseline_app.command("show")
@user_errors
def baseline_show(
    name: Annotated[str, typer.Argument(help="Baseline name.")],
    fmt: Annotated[str, typer.Option("--format", help="table|json")] = "table",
    db: DbOpt = None,
) -> None:
    """Show the current baseline of NAME and its history of blessings."""
    if fmt not in SHOW_FORMATS:
        raise SpecError(f"--format: use one of {', '.join(SHOW_FORMATS)}")
    service = _service(db)
    history = service.history(name)
    if fmt == "json":
        data = {
            "name": name,
            "current": history[0].batch_test_id if history else None,
            "history": [
                {
                    "batch_id": b.batch_test_id,
                    "blessed_at": b.blessed_at.isoformat(),
                    "blessed_by": b.blessed_by,
                    "note": b.note,
                }
                for b in history
            ],
        }
        console.print_json(json.dumps(data))
        return
    if not history:
        console.print(
            f"no baseline pinned for {name!r}; pin one with `wtb baseline set {name} BATCH_ID`",
            highlight=False,
        )
        return
    console.print(f"baseline {name}: {history[0].batch_test_id}", highlight=False)
    from rich.table import Table  # loads with this table, not with every command

    table = Table(title=f"blessings of {name}")
    for col in ("when (UTC)", "batch", "by", "note"):
        table.add_column(col, no_wrap=col != "note")
    for b in history:
        table.add_row(
            f"{b.blessed_at:%Y-%m-%d %H:%M:%S}", b.batch_test_id, b.blessed_by or "-", b.note or ""
        )
    console.print(table)


def regress_command(
    spec_file: Annotated[Path, typer.Argument(help="Batch spec (YAML or JSON).")],
    baseline: Annotated[
        str | None,
        typer.Option(help="Baseline name or batch id (default: the spec's name)."),
    ] = None,
    summary_md: Annotated[
        Path | None, typer.Option("--summary-md", help="Write the verdict as markdown here.")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Write a JUnit XML report here.")
    ] = None,
    bless_on_pass: Annotated[
        bool, typer.Option(help="Pin the new batch as the baseline when it is not worse.")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Run SPEC as a new batch and judge it against its pinned baseline.

    Exit 0: not worse; 1: regressed; 2: a user error or incomparable with the baseline.
    """
    import wtb
    from wtb_cli.batch import _quiet_prefect

    _quiet_prefect()
    result = wtb.regress(spec_file, baseline, db=db, bless_on_pass=bless_on_pass)
    verdict = result.verdict
    markdown = verdict.to_markdown()
    if summary_md is not None:
        summary_md.write_text(markdown)
    if junit is not None:
        junit.write_text(verdict.to_junit())
    console.print(markdown, markup=False, highlight=False)
    run = result.batch
    console.print(
        f"batch {run.batch_id}: {run.status} ({run.summary.get('done')} of "
        f"{run.summary.get('total')} results, {run.summary.get('failed')} failed)",
        highlight=False,
    )
    line = f"verdict: {verdict.status} vs baseline {result.baseline_id}: {verdict.reason}"
    (console if verdict.passed else err_console).print(line, highlight=False, markup=False)
    if result.blessed is not None:
        console.print(f"blessed {run.batch_id} as baseline {result.blessed.name}")
    raise typer.Exit(verdict.exit_code)
