"""Rich rendering of executions, histories, checkpoints and diffs.

Every piece of user text (ids, states, labels, variants, error messages) is escaped with
``rich.markup.escape`` or passed as a ``Text``: ``[/bold]`` in an input prints as itself.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from wtb_cli.common import console

if TYPE_CHECKING:  # the models load with the commands that read them, not with the CLI
    from wtb_domain import Checkpoint, Execution, StateDiff

STYLE = {"completed": "green", "failed": "red", "paused": "yellow", "running": "cyan"}


def short(value: Any, width: int = 80) -> str:
    """Compact JSON of a value, cut to ``width`` characters (not escaped)."""
    from wtb_domain.langgraph.codec import readable

    text = json.dumps(readable(value), ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _e(value: Any) -> str:
    return escape(str(value))


def execution(e: Execution, state: dict[str, Any] | None = None) -> None:
    color = STYLE.get(e.status.value, "white")
    console.print(
        f"execution [bold]{_e(e.id)}[/bold]  [{color}]{_e(e.status.value)}[/{color}]",
        highlight=False,
    )
    if e.paused_at:
        console.print(f"  at: {_e(e.paused_at)}", highlight=False)
    console.print(f"  head checkpoint: {_e(e.head_checkpoint_id)}", highlight=False)
    if e.variants:
        console.print(f"  variants: {_e(e.variants)}", highlight=False)
    if e.parent_execution_id:
        console.print(
            f"  forked from: {_e(e.parent_execution_id)} @ {_e(e.forked_from_checkpoint_id)}",
            highlight=False,
        )
    if e.metrics:
        console.print(f"  metrics: {_e(e.metrics)}", highlight=False)
    if e.error_type:
        console.print(
            f"  [red]error: {_e(e.error_type)}: {_e(e.error_message)}[/red]", highlight=False
        )
    if state is not None:
        for key, value in state.items():
            console.print(f"  state.{_e(key)} = {_e(short(value))}", highlight=False)


def history(checkpoints: list[Checkpoint], head: str | None) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="checkpoints (oldest first)")
    for col in ("id", "step", "node", "variant", "source", "parent", "writes", "ms"):
        table.add_column(col)
    for cp in checkpoints:
        marker = " *" if cp.id == head else ""
        writes = cp.metadata.get("writes", cp.metadata.get("patched", []))
        cells = (
            cp.id + marker,
            str(cp.step),
            cp.node or "",
            cp.variant or "",
            cp.source.value,
            (cp.parent_id or "")[:12],
            ",".join(str(w) for w in writes) if isinstance(writes, list) else str(writes),
            str(cp.metadata.get("duration_ms", "")),
        )
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)
    console.print("* = head")


def checkpoint(cp: Checkpoint) -> None:
    console.print(
        f"checkpoint [bold]{_e(cp.id)}[/bold] of execution {_e(cp.execution_id)}",
        highlight=False,
    )
    console.print(
        f"  step {cp.step}, node {_e(cp.node)}, variant {_e(cp.variant)}, source {_e(cp.source)}",
        highlight=False,
    )
    console.print(
        f"  parent {_e(cp.parent_id)}, created {cp.created_at.isoformat()}", highlight=False
    )
    console.print(f"  metadata {_e(json.dumps(cp.metadata, default=str))}", highlight=False)
    from wtb_domain.langgraph.codec import readable

    state = {k: readable(v) for k, v in (cp.state or {}).items()}
    console.print_json(json.dumps(state if cp.state is not None else None, ensure_ascii=False))


def diff(d: StateDiff) -> None:
    if d.empty:
        console.print("no difference")
        return
    for key, value in d.added.items():
        console.print(f"[green]+ {_e(key)}[/green] = {_e(short(value))}", highlight=False)
    for key, value in d.removed.items():
        console.print(f"[red]- {_e(key)}[/red] = {_e(short(value))}", highlight=False)
    for key, (before, after) in d.changed.items():
        console.print(
            f"[yellow]~ {_e(key)}[/yellow]: {_e(short(before))} -> {_e(short(after))}",
            highlight=False,
        )
