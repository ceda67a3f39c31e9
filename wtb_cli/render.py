"""Rich rendering of executions, histories, checkpoints and diffs."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from wtb_cli.common import console
from wtb_domain import Checkpoint, Execution, StateDiff

STYLE = {"completed": "green", "failed": "red", "paused": "yellow", "running": "cyan"}


def short(value: Any, width: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def execution(e: Execution, state: dict[str, Any] | None = None) -> None:
    color = STYLE.get(e.status.value, "white")
    console.print(f"execution [bold]{e.id}[/bold]  [{color}]{e.status.value}[/{color}]")
    if e.paused_at:
        console.print(f"  at: {e.paused_at}")
    console.print(f"  head checkpoint: {e.head_checkpoint_id}")
    if e.variants:
        console.print(f"  variants: {e.variants}")
    if e.parent_execution_id:
        console.print(f"  forked from: {e.parent_execution_id} @ {e.forked_from_checkpoint_id}")
    if e.metrics:
        console.print(f"  metrics: {e.metrics}")
    if e.error_type:
        console.print(f"  [red]error: {e.error_type}: {e.error_message}[/red]", highlight=False)
    if state is not None:
        for key, value in state.items():
            console.print(f"  state.{key} = {short(value)}", highlight=False)


def history(checkpoints: list[Checkpoint], head: str | None) -> None:
    table = Table(title="checkpoints (oldest first)")
    for col in ("id", "step", "node", "variant", "source", "parent", "writes", "ms"):
        table.add_column(col)
    for cp in checkpoints:
        marker = " *" if cp.id == head else ""
        table.add_row(
            cp.id + marker,
            str(cp.step),
            cp.node or "",
            cp.variant or "",
            cp.source.value,
            (cp.parent_id or "")[:12],
            ",".join(cp.metadata.get("writes", cp.metadata.get("patched", []))),
            str(cp.metadata.get("duration_ms", "")),
        )
    console.print(table)
    console.print("* = head")


def checkpoint(cp: Checkpoint) -> None:
    console.print(f"checkpoint [bold]{cp.id}[/bold] of execution {cp.execution_id}")
    console.print(f"  step {cp.step}, node {cp.node}, variant {cp.variant}, source {cp.source}")
    console.print(f"  parent {cp.parent_id}, created {cp.created_at.isoformat()}")
    console.print(f"  metadata {json.dumps(cp.metadata)}", highlight=False)
    console.print_json(json.dumps(cp.state, ensure_ascii=False))


def diff(d: StateDiff) -> None:
    if d.empty:
        console.print("no difference")
        return
    for key, value in d.added.items():
        console.print(f"[green]+ {key}[/green] = {short(value)}", highlight=False)
    for key, value in d.removed.items():
        console.print(f"[red]- {key}[/red] = {short(value)}", highlight=False)
    for key, (before, after) in d.changed.items():
        console.print(
            f"[yellow]~ {key}[/yellow]: {short(before)} -> {short(after)}", highlight=False
        )
