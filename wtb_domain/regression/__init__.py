"""Regression verdicts against pinned baselines (plain Python; the flows call the service)."""

from wtb_domain.regression.model import (
    CombinationSummary,
    Judgement,
    Verdict,
    WorstCase,
    incomparable,
)
from wtb_domain.regression.policy import DropRule, GrowthRule, RegressionPolicy
from wtb_domain.regression.verdict import judge

__all__ = [
    "CombinationSummary",
    "DropRule",
    "GrowthRule",
    "Judgement",
    "RegressionPolicy",
    "Verdict",
    "WorstCase",
    "incomparable",
    "judge",
]
