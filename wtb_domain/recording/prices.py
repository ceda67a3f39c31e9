"""Token usage from a response, and cost from a price table.

WTB ships no prices (they change, and differ per account): a batch spec gives them in
``llm.prices`` or ``WTB_LLM_PRICES`` names a JSON/YAML file of the same shape::

    {"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.60}}

A model missing from the table has no cost (``llm_cost_usd`` is not recorded for it).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wtb_domain.errors import SpecError

PRICES_ENV = "WTB_LLM_PRICES"
PRICE_FIELDS = ("input_per_1m", "output_per_1m")


def token_usage(response: Any) -> tuple[int, int]:
    """(prompt, completion) tokens of an OpenAI-style response (0 when it has no usage)."""
    usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return 0, 0

    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return count("prompt_tokens"), count("completion_tokens")


def check_prices(prices: Any, where: str) -> dict[str, dict[str, float]]:
    """A validated price table; SpecError naming the field otherwise."""
    if not isinstance(prices, Mapping):
        raise SpecError(f"{where}: must map model names to {{input_per_1m, output_per_1m}}")
    out: dict[str, dict[str, float]] = {}
    for model, entry in prices.items():
        if not isinstance(entry, Mapping) or set(entry) - set(PRICE_FIELDS) or not entry:
            raise SpecError(
                f"{where}.{model}: give input_per_1m and/or output_per_1m (USD per 1M tokens)"
            )
        row: dict[str, float] = {}
        for name, value in entry.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise SpecError(f"{where}.{model}.{name}: must be a number >= 0, got {value!r}")
            row[name] = float(value)
        out[str(model)] = row
    return out


def env_prices() -> dict[str, dict[str, float]]:
    """The price table of the file ``WTB_LLM_PRICES`` names (empty when unset)."""
    path = os.environ.get(PRICES_ENV)
    if not path:
        return {}
    try:
        stamp = Path(path).stat().st_mtime_ns
    except OSError:
        stamp = -1  # read_text below names the problem
    return _read_prices(path, stamp)


@functools.lru_cache(maxsize=8)
def _read_prices(path: str, stamp: int) -> dict[str, dict[str, float]]:
    """The file's table, read again only when it changes (``stamp``: its mtime)."""
    from wtb_domain.inputs import load_yaml, read_text

    text = read_text(Path(path), PRICES_ENV)
    return check_prices(load_yaml(text, str(path)), PRICES_ENV)


def cost_usd(
    prices: Mapping[str, Mapping[str, float]], model: str, tokens_in: int, tokens_out: int
) -> float | None:
    """The cost of one call, from ``prices`` then ``WTB_LLM_PRICES``; None if not priced."""
    entry = prices.get(model) or env_prices().get(model)
    if not entry:
        return None
    cost = tokens_in * entry.get("input_per_1m", 0.0) + tokens_out * entry.get("output_per_1m", 0.0)
    return round(cost / 1_000_000, 9)
