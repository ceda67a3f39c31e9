"""Renderings of a verdict: markdown (a pull-request comment), JUnit XML (CI), a JSON dict."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

if TYPE_CHECKING:
    from wtb_domain.regression.model import Judgement, Verdict

MAX_CELL_CHARS = 160
ICONS = {"regressed": "❌ regressed", "improved": "✅ improved", "unchanged": "unchanged"}
TITLES = {
    "not_worse": "✅ not worse than the baseline",
    "regressed": "❌ REGRESSED against the baseline",
    "incomparable": "⚠️ INCOMPARABLE with the baseline (a failure, not a pass)",
}


def _safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return value


def verdict_dict(verdict: Verdict) -> dict[str, Any]:
    """JSON-safe (non-finite numbers become ``None``)."""
    data = {
        "batch_id": verdict.batch_id,
        "baseline_id": verdict.baseline_id,
        "status": verdict.status,
        "reason": verdict.reason,
        "judgements": [
            {**dataclasses.asdict(j), "delta": j.delta, "change_pct": j.change_pct}
            for j in verdict.judgements
        ],
        "combinations": [dataclasses.asdict(c) for c in verdict.combinations],
        "worst_cases": [dataclasses.asdict(w) for w in verdict.worst_cases],
        "only_current": list(verdict.only_current),
        "only_baseline": list(verdict.only_baseline),
        "policy": verdict.policy.model_dump(mode="json"),
    }
    safe: dict[str, Any] = _safe(data)
    return safe


def _number(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    if metric == "p95_ms":
        return f"{value:.1f}"
    if metric == "cost":
        return f"{value:.6f}"
    if metric == "pass_rate":
        return f"{value:.1%}"
    return f"{value:.3f}"


def _change(j: Judgement) -> str:
    if j.delta is None:
        return "-"
    if j.metric in ("p95_ms", "cost"):
        pct = j.change_pct
        return "-" if pct is None else ("+inf%" if math.isinf(pct) else f"{pct:+.1f}%")
    if j.metric == "pass_rate":
        return f"{j.delta * 100:+.1f} pp"
    return f"{j.delta:+.3f}"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 1] + "…"
    return text.replace("|", "\\|").replace("\n", " ")


def verdict_markdown(verdict: Verdict) -> str:
    lines = [
        f"## WTB regression: {TITLES[verdict.status]}",
        "",
        f"Batch `{verdict.batch_id}` vs baseline `{verdict.baseline_id}`: {verdict.reason}",
        "",
    ]
    if verdict.judgements:
        lines += [
            "| combination | metric | baseline | current | change | p (Holm) | threshold "
            "| verdict |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for j in verdict.judgements:
            lines.append(
                f"| {_cell(j.combination)} | {j.metric} | {_number(j.baseline, j.metric)} "
                f"| {_number(j.current, j.metric)} | {_change(j)} | {_p(j.p_adjusted)} "
                f"| {j.threshold} | {ICONS.get(j.outcome, j.outcome)} |"
            )
        lines.append("")
    lines += _repeats(verdict)
    for label, names in (
        ("Not in the baseline (not judged)", verdict.only_current),
        ("In the baseline only (not run by this batch)", verdict.only_baseline),
    ):
        if names:
            lines += [f"{label}: " + ", ".join(f"`{n}`" for n in names), ""]
    if verdict.worst_cases:
        lines += [
            "### Worst cases",
            "",
            "| combination | case | baseline score | current score | input | baseline output "
            "| current output |",
            "|---|---|---|---|---|---|---|",
        ]
        for w in verdict.worst_cases:
            lines.append(
                f"| {_cell(w.combination)} | {_cell(w.case_id)} | {w.baseline_score:.3f} "
                f"| {w.current_score:.3f} | {_cell(w.input or '-')} "
                f"| {_cell(w.baseline_output or '-')} | {_cell(w.current_output or '-')} |"
            )
        lines.append("")
    return "\n".join(lines)


def _repeats(verdict: Verdict) -> list[str]:
    rows = [c for c in verdict.combinations]
    if not rows:
        return []
    lines = [
        "| combination | shared cases | pass^k base → now | pass@k base → now | flaky now |",
        "|---|---|---|---|---|",
    ]
    for c in rows:
        flaky = ", ".join(c.flaky_current[:5]) + ("…" if len(c.flaky_current) > 5 else "")
        lines.append(
            f"| {_cell(c.combination)} | {c.shared_cases} "
            f"| {c.pass_all_baseline:.0%} → {c.pass_all_current:.0%} "
            f"| {c.pass_any_baseline:.0%} → {c.pass_any_current:.0%} | {_cell(flaky or '-')} |"
        )
    return [*lines, ""]


def verdict_junit(verdict: Verdict) -> str:
    """One testcase per combination x metric; regressions are failures, not measured skipped.

    An incomparable verdict is one failed testcase saying why.
    """
    suite = ET.Element(
        "testsuite",
        name=f"wtb-regression {verdict.batch_id} vs {verdict.baseline_id}",
        tests="0",
        failures="0",
        errors="0",
        skipped="0",
    )
    failures = skipped = 0
    if verdict.status == "incomparable":
        case = ET.SubElement(suite, "testcase", classname="wtb.regression", name="comparable")
        ET.SubElement(
            case, "failure", message=verdict.reason, type="incomparable"
        ).text = verdict.reason
        failures = 1
    for j in verdict.judgements:
        case = ET.SubElement(
            suite, "testcase", classname=f"wtb.regression.{j.combination}", name=j.metric
        )
        detail = (
            f"{j.metric}: baseline {_number(j.baseline, j.metric)}, current "
            f"{_number(j.current, j.metric)} ({_change(j)}), p (Holm) {_p(j.p_adjusted)}, "
            f"{j.n_cases} shared cases; threshold {j.threshold}"
        )
        if j.outcome == "regressed":
            failures += 1
            ET.SubElement(
                case, "failure", message=f"regressed: {detail}", type="regression"
            ).text = detail
        elif j.outcome == "not_measured":
            skipped += 1
            ET.SubElement(case, "skipped", message=f"not measured: {detail}")
        else:
            ET.SubElement(case, "system-out").text = f"{j.outcome}: {detail}"
    tests = len(verdict.judgements) + (verdict.status == "incomparable")
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    root = ET.Element("testsuites", name="wtb-regression")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
