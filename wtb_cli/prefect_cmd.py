"""``wtb prefect up|down|status``: a local Prefect server, work pool, deployments and worker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from wtb_cli import prefect_stack
from wtb_cli.common import console, user_errors

prefect_app = typer.Typer(
    no_args_is_help=True, help="A local Prefect stack: server + UI, work pool, deployments, worker."
)

HomeOpt = Annotated[
    Path,
    typer.Option("--home", help="PREFECT_HOME of the local stack (its database, logs, PIDs)."),
]
DEFAULT_HOME = Path(".wtb/prefect")


@prefect_app.command("up")
@user_errors
def up(
    port: Annotated[int, typer.Option(help="Port of the local server (127.0.0.1).")] = 4200,
    pool: Annotated[str, typer.Option(help="Process work pool to create and serve.")] = "wtb",
    api_url: Annotated[
        str | None,
        typer.Option(help="Use this existing server (e.g. http://host:4200/api) instead."),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", envvar="WTB_DATABASE_URL", help="WTB database of the worker's runs."),
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Start a server (or use --api-url), create the pool, deploy prefect.yaml, start a worker."""
    stack = prefect_stack.up(home, port=port, pool=pool, api_url=api_url, database_url=db)
    console.print(f"Prefect UI: {escape(stack.ui_url)}", highlight=False)
    console.print(
        f"API: {escape(stack.api_url)}  (export PREFECT_API_URL={escape(stack.api_url)} to "
        "trigger runs from Python or `prefect deployment run`)",
        highlight=False,
    )
    console.print(
        f"deployments: wtb-batch-from-file/demo-batch, wtb-regression/nightly-regression; "
        f"worker on pool {escape(stack.pool)} (pid {stack.worker_pid}); logs in "
        f"{escape(stack.home)}",
        highlight=False,
    )


@prefect_app.command("down")
@user_errors
def down(home: HomeOpt = DEFAULT_HOME) -> None:
    """Stop the worker and the server that `wtb prefect up` started (by PID)."""
    stack = prefect_stack.down(home)
    if stack is None:
        console.print(f"no stack recorded in {escape(str(home))}", highlight=False)
        return
    console.print(
        f"stopped worker {stack.worker_pid} and server {stack.server_pid or '(external)'}",
        highlight=False,
    )
