"""The batch spec's ``llm:`` and ``cache:`` fields, and the execution labels they become.

::

    llm: {mode: replay, source_batch: nightly-0412}   # live | record (default) | replay |
                                                      # replay-or-live; prices: {model: {...}}
    cache: {nodes: [retrieve], share_repeats: false}  # or cache: false (off for the batch)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from wtb_domain.recording.cache import cache_label
from wtb_domain.recording.model import CACHE_LABEL, LLM_LABEL, llm_label
from wtb_domain.recording.prices import check_prices

Mode = Literal["live", "record", "replay", "replay-or-live"]


class LlmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Mode = "record"
    source_batch: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)

    @field_validator("prices", mode="before")
    @classmethod
    def _prices(cls, value: Any) -> Any:
        return check_prices(value, "llm.prices") if value is not None else {}


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
        LLM_LABEL: llm_label(llm.mode, llm.source_batch, llm.prices),
        CACHE_LABEL: cache_label(cache.enabled, cache.nodes, cache.share_repeats),
    }
