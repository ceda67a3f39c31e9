"""Engine settings read from the environment: clear errors for bad values."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wtb_cli.main import app as cli
from wtb_domain import StoreError, sql_app
from wtb_domain.adapters.sql.database import (
    PREPARED_ENV,
    Database,
    prepared_statement_hint,
    prepared_statements_from_env,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, False), ("", False), ("off", False), ("0", False), ("ON", True), ("1", True)],
)
def test_prepared_statements_setting(
    raw: str | None, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if raw is None:
        monkeypatch.delenv(PREPARED_ENV, raising=False)
    else:
        monkeypatch.setenv(PREPARED_ENV, raw)
    assert prepared_statements_from_env() is expected


def test_a_bad_prepared_statements_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PREPARED_ENV, "sometimes")
    with pytest.raises(StoreError, match=f"{PREPARED_ENV} must be on or off, got 'sometimes'"):
        prepared_statements_from_env()


def test_only_prepared_statement_errors_get_the_pooler_hint() -> None:
    assert PREPARED_ENV in prepared_statement_hint("26000")
    assert PREPARED_ENV in prepared_statement_hint("42P05")
    assert prepared_statement_hint("40001") == prepared_statement_hint(None) == ""


def test_a_database_from_a_newer_wtb_is_one_clear_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/newer.db"
    Database(url).dispose()  # migrated to the shipped head
    with sqlite3.connect(tmp_path / "newer.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    with pytest.raises(StoreError, match=r"0099_from_the_future.*newer WTB") as caught:
        sql_app(url)
    assert "\n" not in str(caught.value)

    out = CliRunner().invoke(cli, ["matrix", "any", "--db", url])
    assert out.exit_code == 1
    assert "newer WTB" in out.output and "Traceback" not in out.output
