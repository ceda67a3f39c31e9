"""``wtb recordings export``: a batch's recorded calls as a JSON file to replay elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from wtb_cli.batch import DbOpt
from wtb_cli.common import app_for, console, user_errors

recordings_app = typer.Typer(no_args_is_help=True, help="Recorded LLM/tool calls as files.")


@recordings_app.command("export")
@user_errors
def export_command(
    batch_id: Annotated[str, typer.Argument(help="The batch whose recorded calls to export.")],
    out: Annotated[Path, typer.Option("--out", help="JSON file to write.")],
    db: DbOpt = None,
) -> None:
    """Write a batch's live-recorded calls to a file; replay it with ``--llm-recordings FILE``
    or ``llm: {mode: replay, recordings: FILE}``."""
    from wtb_domain.recording.file import check_out, export_batch, write_recordings

    check_out(out)
    with app_for(db).uow() as uow:
        doc = export_batch(uow, batch_id)
    write_recordings(doc, out)
    console.print(
        escape(f"exported {len(doc['calls'])} recorded calls of batch {batch_id} to {out}"),
        highlight=False,
    )
