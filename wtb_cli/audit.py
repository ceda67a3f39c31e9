"""`wtb audit EXEC|BATCH`: the audit trail of an execution or a batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape

from wtb_cli.common import app_for, console
from wtb_domain.errors import NotFoundError, SpecError
from wtb_domain.model import AuditEntry, Severity
from wtb_domain.redaction import redact

DbOpt = Annotated[
    str | None,
    typer.Option("--db", envvar="WTB_DATABASE_URL", help="Database URL (default ./.wtb/wtb.db)."),
]
COLORS = {
    Severity.DEBUG: "dim",
    Severity.INFO: "white",
    Severity.SUCCESS: "green",
    Severity.WARNING: "yellow",
    Severity.ERROR: "red",
}
LEVELS = ", ".join(s.value for s in Severity)


def parse_severity(value: str | None) -> Severity | None:
    if value is None:
        return None
    try:
        return Severity(value.strip().upper())
    except ValueError:
        raise SpecError(f"--severity: {value!r} is not a level; use one of {LEVELS}") from None


def parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SpecError(
            f"--since: {value!r} is not an ISO 8601 time; use e.g. 2026-12-01T09:30:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "created_at": entry.created_at.isoformat(),
        "severity": entry.severity.value,
        "event_type": entry.event_type,
        "batch_id": entry.batch_id,
        "execution_id": entry.execution_id,
        "node": entry.node,
        "message": entry.message,
        "details": redact(entry.details),
        "event_id": entry.event_id,
    }


def audit_command(
    target: Annotated[str, typer.Argument(help="An execution id or a batch id.")],
    severity: Annotated[
        str | None, typer.Option(help=f"Show this level and above ({LEVELS}).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only entries at or after this ISO 8601 time.")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    limit: Annotated[int, typer.Option(min=1, help="The newest N entries.")] = 1000,
    db: DbOpt = None,
) -> None:
    """Show the audit trail of an execution or a batch (oldest first)."""
    if format not in ("table", "json"):
        raise SpecError(f"--format: {format!r} is not a format; use table or json")
    level, after = parse_severity(severity), parse_since(since)
    app = app_for(db)
    with app.uow() as uow:
        if uow.batches.find(target) is not None:
            entries = uow.audit.entries(
                None, limit, batch_id=target, min_severity=level, since=after
            )
        else:
            try:
                uow.executions.get(target)
            except NotFoundError:
                raise NotFoundError(
                    f"EXEC|BATCH: no execution or batch {target!r}; `wtb run` and "
                    "`wtb batch run` print the ids"
                ) from None
            entries = uow.audit.entries(target, limit, min_severity=level, since=after)
    if format == "json":
        typer.echo(json.dumps([entry_dict(e) for e in entries], indent=2, default=str))
        return
    from rich.table import Table  # loads with this table, not with every command

    table = Table(title=f"audit trail of {escape(target)}", title_justify="left")
    for column in ("time", "severity", "event", "execution", "node", "message"):
        table.add_column(column)
    for e in entries:
        color = COLORS[e.severity]
        table.add_row(
            e.created_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            f"[{color}]{e.severity.value}[/{color}]",
            escape(e.event_type),
            escape(e.execution_id or ""),
            escape(e.node or ""),
            escape(e.message),
        )
    console.print(table)
    if not entries:
        console.print("no entries match", highlight=False)
