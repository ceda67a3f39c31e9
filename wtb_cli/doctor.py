"""``wtb doctor``: cross-store integrity checks, and the repairs that are safe."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from wtb_cli.common import check_database_url, console
from wtb_domain import SpecError

if TYPE_CHECKING:
    from wtb_domain.integrity import Report

FORMATS = ("table", "json")


def doctor_command(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Rebuild stale rollups, re-queue the outbox, mark dead runs interrupted.",
        ),
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="table|json")] = "table",
    db: Annotated[
        str | None,
        typer.Option(
            "--db", envvar="WTB_DATABASE_URL", help="Database URL (default ./.wtb/wtb.db)."
        ),
    ] = None,
) -> None:
    """Check checkpoint chains, results, rollups, the outbox and stuck runs.

    Exit 0 when nothing is left to fix (clean, or every problem repaired), 1 otherwise.
    """
    if fmt not in FORMATS:
        raise SpecError(f"--format: unknown format {fmt[:40]!r}; use one of {', '.join(FORMATS)}")
    check_database_url(db)
    from wtb_domain.adapters.sql.database import database_for
    from wtb_domain.adapters.sql.integrity import SqlIntegrityView
    from wtb_domain.bootstrap import sql_app
    from wtb_domain.integrity import IntegrityChecker, default_checks
    from wtb_domain.integrity.checks import OUTBOX_GRACE_S

    app = sql_app(db)
    database = app.database or database_for(db)  # sql_app always has one
    # Re-queue: the outbox relay publishes what stayed unpublished past the grace period.
    checks = default_checks(outbox_relay=lambda: app.relay.run_once(OUTBOX_GRACE_S))
    report = IntegrityChecker(checks).run(SqlIntegrityView(database.engine), repair=repair)
    if fmt == "json":
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        render(report, database.safe_url)
    raise typer.Exit(report.exit_code)


def render(report: Report, where: str) -> None:
    from rich.table import Table  # loads with this table, not with every command

    table = Table(title=f"wtb doctor: {escape(where)}")
    for column in ("check", "found", "repaired", "remaining", "examples / note"):
        table.add_column(column, overflow="fold")
    for f in report.findings:
        if f.skipped:
            status = "[dim]skipped[/dim]"
        elif f.ok:
            status = "[green]ok[/green]"
        else:
            status = "[red]problems[/red]"
        text = "; ".join([*f.samples[:3], *([f.note] if f.note else [])])
        table.add_row(
            f"{escape(f.title)} {status}",
            "-" if f.skipped else str(f.count),
            str(f.repaired) if f.repairable and report.repair else "-",
            "-" if f.skipped else str(f.remaining),
            escape(text),
        )
    console.print(table)
    summary = report.to_dict()
    verdict = "[green]clean[/green]" if report.clean else "[red]problems remain[/red]"
    console.print(
        f"{summary['problems']} problems found, {summary['repaired']} repaired, "
        f"{summary['remaining']} remaining: {verdict}",
        highlight=False,
    )
