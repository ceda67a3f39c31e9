"""``wtb demo agent``: offline, the matrix printed, results stored where --db says."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from wtb_cli.main import app
from wtb_domain import sql_app
from wtb_domain.batch.service import BatchService


def test_wtb_demo_agent_prints_the_matrix_of_the_three_prompts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wtb.db'}"
    result = CliRunner().invoke(app, ["demo", "agent", "--format", "json", "--db", url])
    assert result.exit_code == 0, result.output
    first_brace, last_brace = result.output.index("{"), result.output.rindex("}")
    matrix = json.loads(result.output[first_brace : last_brace + 1])
    means = {s["name"]: s["mean_score"] for s in matrix["stats"]}
    assert means["agent=grounded"] == 1.0
    assert abs(means["agent=memory"] - 0.4) < 1e-9
    assert 0 < means["agent=chatty"] < 0.4
    summary = re.search(
        r"batch (demo-agent-\w+): completed - 60 of 60 results, 0 failed, "
        r"220 node runs \(prefix sharing on\)",
        result.output,
    )
    assert summary, result.output
    stored = BatchService(sql_app(url, audit=False)).matrix(summary.group(1))
    assert {s.name: s.n for s in stored.stats} == {
        "agent=grounded": 20,
        "agent=memory": 20,
        "agent=chatty": 20,
    }


def test_without_prefix_sharing_it_runs_more_nodes_for_the_same_matrix(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wtb.db'}"
    result = CliRunner().invoke(app, ["demo", "agent", "--no-prefix-sharing", "--db", url])
    assert result.exit_code == 0, result.output
    assert "260 node runs (prefix sharing off)" in result.output
    assert "grounded" in result.output and "chatty" in result.output


def test_an_unknown_demo_is_a_one_line_error() -> None:
    result = CliRunner().invoke(app, ["demo", "agnet"])
    assert result.exit_code == 2
    assert "unknown demo 'agnet'; use qa or agent" in result.output
