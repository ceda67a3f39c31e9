"""The batch spec's ``llm:`` and ``cache:`` fields, and the execution labels they become.

::

    llm: {mode: replay, source_batch: nightly-0412}   # live | record (default) | replay |
                                                      # replay-or-live; prices: {model: {...}}
    llm: {mode: replay, recordings: rec.json}         # replay from an exported file (relative
                                                      # to the spec file)
    cache: {nodes: [retrieve], share_repeats: false}  # or cache: false (off for the batch)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from wtb_domain.recording.cache import cache_label
from wtb_domain.recording.file import load_recordings
from wtb_domain.recording.model import CACHE_LABEL, LLM_LABEL, llm_label
from wtb_domain.recording.prices import check_prices

Mode = Literal["live", "record", "replay", "replay-or-live"]


class LlmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Mode = "record"
    source_batch: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)
    recordings: str | None = Field(None, min_length=1, max_length=4096)

    @field_validator("prices", mode="before")
    @classmethod
    def _prices(cls, value: Any) -> Any:
        return check_prices(value, "llm.prices") if value is not None else {}

    @model_validator(mode="after")
    def _recordings_mode(self) -> LlmSpec:
        if self.recordings is None:
            return self
        if self.mode not in ("replay", "replay-or-live"):
            raise ValueError(
                f"llm.recordings needs mode replay or replay-or-live, not {self.mode!r}"
            )
        if self.source_batch is not None:
            raise ValueError("llm.recordings and llm.source_batch exclude each other; keep one")
        return self


def resolve_recordings(llm: LlmSpec, base_dir: Path) -> LlmSpec:
    """``llm`` with ``recordings`` made absolute (relative to ``base_dir``) and the file
    checked now, before any run (SpecError naming the file and the field)."""
    if llm.recordings is None:
        return llm
    path = Path(llm.recordings)
    if not path.is_absolute():
        path = base_dir / path
    load_recordings(path)
    return llm.model_copy(update={"recordings": str(path)})


class CacheSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool = True
    nodes: list[str] = Field(default_factory=list)
    share_repeats: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _from_bool(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value


def run_labels(llm: LlmSpec, cache: CacheSpec) -> dict[str, Any]:
    """The execution labels of a batch's runs."""
    return {
        LLM_LABEL: llm_label(llm.mode, llm.source_batch, llm.prices, llm.recordings),
        CACHE_LABEL: cache_label(cache.enabled, cache.nodes, cache.share_repeats),
    }
