"""Recorded calls and recordings files never hold a secret in clear: not an API key in a
header or a parameter, not an ``sk-...`` key pasted into a prompt, not one the model echoed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from tests.recording import leaky
from tests.recording.test_batch_replay import run_batch
from wtb_cli.main import app as cli
from wtb_domain import sql_app
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.recording.file import export_batch, parse_recordings

WF = "tests.recording.leaky:workflow"


def test_no_secret_reaches_the_database_or_the_recordings_file(tmp_path: Path) -> None:
    db_file = tmp_path / "wtb.db"
    url = f"sqlite:///{db_file}"
    app = sql_app(url)
    spec = BatchSpec.parse(
        {"workflow": WF, "batch_id": "leaky-1", "cases": [{"id": "c1", "input": {"q": "one"}}]}
    )
    summary, results, _ = run_batch(app, spec)
    assert summary.failed == 0 and summary.done == 1, [r.error for r in results]
    with app.uow() as uow:
        assert len(uow.calls.for_batch("leaky-1")) == 2  # the llm call and the tool call

    out = tmp_path / "rec.json"
    result = CliRunner().invoke(
        cli, ["recordings", "export", "leaky-1", "--out", str(out), "--db", url]
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    dump = "\n".join(sqlite3.connect(db_file).iterdump())
    for secret in leaky.SECRETS:
        assert secret not in text, secret
        assert secret not in dump, secret
    # What is kept: the call is still recognisable and replayable from the file.
    doc = json.loads(text)
    llm = next(c for c in doc["calls"] if c["kind"] == "llm")
    assert "(my key is ***)" in llm["request"]["messages"][0]["content"]
    assert llm["request"]["metadata"] == {"user_api_key": "***", "trace": "plain"}
    assert llm["response"]["usage"]["prompt_tokens"] == 7  # counts are not secrets
    assert llm["response"]["choices"][0]["message"]["content"] == "use ***"
    parse_recordings(text, "rec.json")  # request keys match their (redacted) requests


def test_an_export_redacts_bodies_stored_in_clear(tmp_path: Path) -> None:
    """Bodies recorded before the text rule existed are redacted on the way to the file."""
    app = sql_app(f"sqlite:///{tmp_path / 'wtb.db'}")
    spec = BatchSpec.parse(
        {"workflow": WF, "batch_id": "leaky-2", "cases": [{"id": "c1", "input": {"q": "two"}}]}
    )
    run_batch(app, spec)
    with app.uow() as uow:
        records = uow.calls.for_batch("leaky-2")
        llm = next(r for r in records if r.kind == "llm")
        clear = json.dumps(leaky.fake_llm(model="fake-small"), sort_keys=True)
        uow.connection.exec_driver_sql(
            "UPDATE wtb_call_bodies SET data = ? WHERE hash = ?", (clear, llm.response_hash)
        )
        uow.commit()
    with app.uow() as uow:
        doc = export_batch(uow, "leaky-2")
    assert leaky.ECHOED_KEY not in json.dumps(doc)
