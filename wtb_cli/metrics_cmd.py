"""``wtb metrics serve``: Prometheus ``/metrics`` for a long-running process."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from wtb_cli.common import console, user_errors
from wtb_domain.errors import SpecError

metrics_app = typer.Typer(no_args_is_help=True, help="Prometheus metrics.")


@metrics_app.command("serve")
@user_errors
def serve_command(
    port: Annotated[int, typer.Option("--port", help="TCP port of /metrics.")] = 9464,
    addr: Annotated[str, typer.Option("--addr", help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Serve /metrics until interrupted (Ctrl-C). Batch workers push to a Pushgateway instead
    (WTB_PUSHGATEWAY_URL)."""
    if not 0 < port < 65536:
        raise SpecError(f"--port: expected a TCP port between 1 and 65535, got {port}")
    from wtb_domain.metrics import serve  # the client loads with the command using it

    server = serve(port, addr)  # the process's wtb_* families, at zero from the first scrape
    console.print(f"serving http://{addr}:{port}/metrics (Ctrl-C stops)", highlight=False)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
