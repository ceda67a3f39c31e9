"""``--llm-mode``, ``--llm-source-batch`` and ``--no-cache``: run labels from the command line."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from wtb_domain.errors import RecordingError, SpecError
from wtb_domain.recording.cache import cache_label
from wtb_domain.recording.model import CACHE_LABEL, LLM_LABEL, llm_label

LlmModeOpt = Annotated[
    str | None,
    typer.Option(
        "--llm-mode",
        help="LLM/tool calls: live, record (default), replay or replay-or-live.",
    ),
]
LlmSourceOpt = Annotated[
    str | None,
    typer.Option("--llm-source-batch", help="Replay only what this batch recorded."),
]
NoCacheOpt = Annotated[
    bool, typer.Option("--no-cache", help="Do not use or fill the node result cache.")
]


def call_labels(mode: str | None, source_batch: str | None, no_cache: bool) -> dict[str, Any]:
    """The labels these options set (empty: keep what the run has)."""
    labels: dict[str, Any] = {}
    if mode is not None or source_batch is not None:
        try:
            labels[LLM_LABEL] = llm_label(mode or "replay", source_batch)
        except RecordingError as exc:
            raise SpecError(str(exc).replace("llm.mode", "--llm-mode")) from None
    if no_cache:
        labels[CACHE_LABEL] = cache_label(enabled=False)
    return labels
