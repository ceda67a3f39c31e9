"""``--llm-mode``, ``--llm-source-batch``, ``--llm-recordings`` and ``--no-cache``: run labels
from the command line."""

from __future__ import annotations

from pathlib import Path
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
LlmRecordingsOpt = Annotated[
    Path | None,
    typer.Option(
        "--llm-recordings",
        help="Replay from this recordings file (wtb recordings export) instead of the store.",
    ),
]
NoCacheOpt = Annotated[
    bool, typer.Option("--no-cache", help="Do not use or fill the node result cache.")
]


def recordings_path(mode: str | None, source_batch: str | None, recordings: Path | None) -> str:
    """``--llm-recordings`` as an absolute path, checked (file and options) now."""
    from wtb_domain.recording.file import load_recordings

    if recordings is None:
        return ""
    if mode is not None and mode not in ("replay", "replay-or-live"):
        raise SpecError(
            f"--llm-recordings needs --llm-mode replay or replay-or-live, not {mode[:40]!r}"
        )
    if source_batch is not None:
        raise SpecError("--llm-recordings and --llm-source-batch exclude each other; keep one")
    path = recordings.resolve()
    load_recordings(path)
    return str(path)


def call_labels(
    mode: str | None,
    source_batch: str | None,
    no_cache: bool,
    recordings: Path | None = None,
) -> dict[str, Any]:
    """The labels these options set (empty: keep what the run has)."""
    labels: dict[str, Any] = {}
    file = recordings_path(mode, source_batch, recordings)
    if mode is not None or source_batch is not None or file:
        try:
            labels[LLM_LABEL] = llm_label(mode or "replay", source_batch, recordings=file or None)
        except RecordingError as exc:
            raise SpecError(str(exc).replace("llm.mode", "--llm-mode")) from None
    if no_cache:
        labels[CACHE_LABEL] = cache_label(enabled=False)
    return labels
