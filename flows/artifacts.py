"""Prefect artifacts of a batch: the comparison matrix as markdown and as a table."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from wtb_domain.batch.service import BatchService


def slug(text: str) -> str:
    """An artifact key: lowercase letters, digits and dashes (Prefect's rule)."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:60] or "batch"


def publish_matrix(service: BatchService, batch_id: str) -> list[str]:
    """Attach the batch's matrix to the current flow run; returns the artifact keys."""
    matrix = service.matrix(batch_id)
    key = slug(f"wtb-{batch_id}")
    create_markdown_artifact(matrix.to_markdown(), key=f"{key}-matrix", description="WTB matrix")
    create_table_artifact(
        [
            {
                "rank": s.rank,
                "combination": s.name,
                "n": s.n,
                "mean": round(s.mean_score, 4),
                "pass_rate": round(s.pass_rate, 4),
                "p50_ms": round(s.p50_ms, 2),
                "p95_ms": round(s.p95_ms, 2),
                "cost": round(s.total_cost, 6),
            }
            for s in matrix.stats
        ],
        key=f"{key}-table",
        description="WTB comparison per combination",
    )
    return [f"{key}-matrix", f"{key}-table"]
