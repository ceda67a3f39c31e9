"""RegressionPolicy: the thresholds a verdict applies, as the spec's ``regression:`` section.

```yaml
regression:
  score: {max_drop: 0.02}           # mean per-case score may drop this much (absolute)
  pass_rate: {max_drop: 0.05}       # per-case pass rate may drop this much (absolute)
  p95_ms: {max_increase_pct: 20}    # p95 latency may grow this much (relative) ...
  cost: {max_increase_pct: 10}      # ... and so may the mean cost per run
  alpha: 0.05                       # significance of the paired tests (Holm over the family)
```

A drop beyond the threshold is a regression only when the paired test over the shared cases
says it is real; latency and cost are judged by their relative change (``null`` turns a check
off). Errors name the field path, e.g. ``regression.score.max_drop``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class DropRule(BaseModel):
    """A score-like metric (0..1, higher is better) may drop by at most ``max_drop``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_drop: float = Field(0.0, ge=0, le=1, description="Largest tolerated drop (absolute)")


class GrowthRule(BaseModel):
    """A cost-like metric (lower is better) may grow by at most ``max_increase_pct`` percent.

    ``min_increase`` is an absolute floor below which a change never counts (a 0.4 ms p95
    growing to 0.6 ms is +50 % and nothing to fail a build over).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_increase_pct: float | None = Field(
        20.0, ge=0, description="Largest tolerated growth in percent; null: not checked"
    )
    min_increase: float = Field(0.0, ge=0, description="Absolute change always tolerated")


def _latency() -> GrowthRule:
    return GrowthRule(max_increase_pct=20.0, min_increase=5.0)


def _cost() -> GrowthRule:
    return GrowthRule(max_increase_pct=10.0, min_increase=0.0)


class RegressionPolicy(BaseModel):
    """When a batch is worse than its baseline (the spec's ``regression:`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    score: DropRule = Field(default_factory=DropRule)
    pass_rate: DropRule = Field(default_factory=DropRule)
    p95_ms: GrowthRule = Field(
        default_factory=_latency, description="min_increase is in milliseconds"
    )
    cost: GrowthRule = Field(default_factory=_cost, description="mean cost_usd per run")
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance of the paired tests")
    seed: int = Field(0, description="Seed of the Monte-Carlo permutation tests")
    worst_cases: int = Field(5, ge=0, le=100, description="Cases shown in the report")

    @field_validator("p95_ms", "cost", mode="before")
    @classmethod
    def _null_is_off(cls, value: Any) -> Any:
        """``p95_ms: null`` turns the check off (same as ``{max_increase_pct: null}``)."""
        return {"max_increase_pct": None} if value is None else value

    @classmethod
    def parse(cls, data: Any, prefix: str = "regression") -> RegressionPolicy:
        """Validate ``data``; a SpecError names the field path (``regression.score.max_drop``)."""
        if data is None:
            return cls()
        if isinstance(data, RegressionPolicy):
            return data
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            from wtb_domain.batch.spec import spec_error

            raise spec_error(exc, (prefix,)) from None
