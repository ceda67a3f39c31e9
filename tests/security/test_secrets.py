"""Secrets planted in every input are found nowhere WTB or Prefect stores or prints.

Planted: the password of a PostgreSQL role (in the spec's ``database_url`` and ``--db``),
a literal env var under a secret-looking name, a Prefect Secret block and a worker env var
referenced from ``env_vars``, and a secret-looking param. Searched: every row of every WTB
table (PostgreSQL and SQLite), every row of the Prefect harness's database (flow-run
parameters, task runs, logs, artifacts, states), the artifacts read back with Prefect's
client, the captured log output, and the output of ``wtb batch run`` in its own process.
The runs still work: the node sees every env var value and the param (it records digests).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from flows.batch_test import run_batch
from tests.security.workflows import WORKFLOW, digest
from wtb_domain import sql_app
from wtb_domain.batch.spec import BatchSpec
from wtb_domain.model import BatchResult

TOKEN = secrets.token_hex(6)
PG_PASSWORD = f"pgPw{TOKEN}Zq"
LITERAL = f"sk-literal-{TOKEN}"
BLOCK_VALUE = f"block-value-{TOKEN}"
ENV_VALUE = f"env-value-{TOKEN}"
PARAM = f"param-{TOKEN}"
PLANTED = {
    "database password": PG_PASSWORD,
    "env_vars literal": LITERAL,
    "Secret block value": BLOCK_VALUE,
    "worker env value": ENV_VALUE,
    "secret param": PARAM,
}
ENV_BLOCK = f"wtb-sec-env-{TOKEN}"
DB_BLOCK = f"wtb-sec-db-{TOKEN}"
ENV_SOURCE = "WTB_SEC_ENV_SOURCE"
# Prefect keeps block documents (what the user saved in a Secret block) encrypted in its
# ``block_document`` table; that table is where the user chose to store those two values.
BLOCK_TABLES = {"block_document"}


def vault_spec(url: str, batch_id: str, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "workflow": WORKFLOW,
        "batch_id": batch_id,
        "variants": {"call": ["plain", {"variant": "keyed", "params": {"api_key": PARAM}}]},
        # on "plain": environments name workflow variants, and "keyed" with params is the
        # ad-hoc variant "keyed(api_key=***)"
        "environments": {
            "call": {
                "plain": {
                    "env_vars": {
                        "WTB_SEC_LITERAL_KEY": LITERAL,
                        "WTB_SEC_FROM_BLOCK": {"secret": ENV_BLOCK},
                        "WTB_SEC_FROM_ENV": {"env": ENV_SOURCE},
                    }
                }
            }
        },
        "cases": [
            {"id": "c1", "input": {"q": "one"}, "expected": {"answer": "one"}},
            {"id": "c2", "input": {"q": "two"}, "expected": {"answer": "two"}},
        ],
        "evaluators": [{"type": "exact_match"}],
        "max_workers": 2,
        "database_url": url,
        "database_password_secret": DB_BLOCK,
    }
    data.update(fields)
    return data


def leaks(text: str) -> list[str]:
    return [what for what, value in PLANTED.items() if value in text]


# --- stores to search ----------------------------------------------------------------------------


def pg_dump(admin_url: str, database: str) -> dict[str, str]:
    import psycopg
    from psycopg import sql

    url = make_url(admin_url).set(database=database).render_as_string(hide_password=False)
    out: dict[str, str] = {}
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
        tables = [
            r[0]
            for r in c.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        for table in tables:
            rows = c.execute(
                sql.SQL("SELECT row_to_json(t)::text FROM {} t").format(sql.Identifier(table))
            ).fetchall()
            out[table] = "\n".join(r[0] for r in rows)
    assert {"wtb_batch_tests", "wtb_batch_cases", "wtb_executions"} <= set(out), sorted(out)
    return out


def sqlite_dump(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            out[table] = "\n".join(repr(r) for r in rows)
    return out


def prefect_db_dump() -> dict[str, str]:
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url
    assert url is not None
    raw = url.get_secret_value() if hasattr(url, "get_secret_value") else str(url)
    path = make_url(raw).database
    assert path and Path(path).is_file(), raw
    dump = sqlite_dump(path)
    assert {"flow_run", "task_run", "log", "artifact"} <= set(dump), sorted(dump)
    return dump


def find(dumps: dict[str, dict[str, str]], skip: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    found = []
    for where, tables in dumps.items():
        for table, text in tables.items():
            if table in skip:
                continue
            found.extend(f"{what} in {where}.{table}" for what in leaks(text))
    return found


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secret_pg(pg_databases: Any, pg_admin_url: str) -> Iterator[tuple[str, str]]:
    """A throwaway database owned by a throwaway role with a password: (url, database)."""
    import psycopg
    from psycopg import sql

    url = pg_databases.create()
    database = str(make_url(url).database)
    role = f"wtb_sec_{TOKEN}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PG_PASSWORD)
            )
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database), sql.Identifier(role)
            )
        )
    on_db = make_url(pg_admin_url).set(database=database).render_as_string(hide_password=False)
    with psycopg.connect(on_db, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
    secret_url = (
        make_url(url).set(username=role, password=PG_PASSWORD).render_as_string(hide_password=False)
    )
    yield secret_url, database
    pg_databases.drop(url)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def blocks(prefect_harness: None) -> None:
    from prefect.blocks.system import Secret

    Secret(value=BLOCK_VALUE).save(ENV_BLOCK, overwrite=True)
    Secret(value=PG_PASSWORD).save(DB_BLOCK, overwrite=True)


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's environment: the referenced env var, but no database credential."""
    monkeypatch.setenv(ENV_SOURCE, ENV_VALUE)
    for name in ("WTB_DATABASE_URL", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)


def results_of(url: str, batch_id: str) -> list[BatchResult]:
    with sql_app(url, audit=False).uow() as uow:
        return uow.results.for_batch(batch_id)


def check_node_saw_the_secrets(url: str, batch_id: str, env_applied: bool) -> None:
    app = sql_app(url, audit=False)
    results = results_of(url, batch_id)
    assert len(results) == 4, results
    for r in results:
        state = app.controller.state(r.execution_id)
        assert r.success, r.error
        keyed = r.variant_config["call"] != "plain"
        assert state["param_digest"] == (digest(PARAM) if keyed else None), r.combination_name
        if env_applied:
            wanted = (
                {
                    "WTB_SEC_LITERAL_KEY": digest(LITERAL),
                    "WTB_SEC_FROM_BLOCK": digest(BLOCK_VALUE),
                    "WTB_SEC_FROM_ENV": digest(ENV_VALUE),
                }
                if not keyed
                else dict.fromkeys(state["env_digests"])
            )
            assert state["env_digests"] == wanted, r.combination_name


# --- the test --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.postgres
@pytest.mark.usefixtures("blocks", "worker_env")
def test_planted_secrets_are_stored_and_shown_nowhere(
    secret_pg: tuple[str, str],
    pg_admin_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pg_url, pg_database = secret_pg
    caplog.set_level("DEBUG")

    # 1. Ray on PostgreSQL: the Ray workers get the database password from the Secret block
    ray_run = run_batch(BatchSpec.parse(vault_spec(pg_url, "sec-ray", runner="ray", ray="testing")))
    assert ray_run["state"] == "Completed", ray_run
    assert (ray_run["done"], ray_run["failed"]) == (4, 0), ray_run
    check_node_saw_the_secrets(pg_url, "sec-ray", env_applied=True)

    # 2. ThreadPool on SQLite
    sqlite_path = tmp_path / "wtb.db"
    sqlite_url = f"sqlite:///{sqlite_path}"
    # (without environments: the threadpool runner refuses them, see test_spec)
    tp_run = run_batch(BatchSpec.parse(vault_spec(sqlite_url, "sec-tp", environments={})))
    assert tp_run["state"] == "Completed", tp_run
    check_node_saw_the_secrets(sqlite_url, "sec-tp", env_applied=False)

    # 3. ``wtb batch run`` in its own process, the password given with --db
    spec_file = tmp_path / "spec.yaml"
    data = vault_spec(pg_url, "sec-cli", environments={})
    del data["database_url"]
    spec_file.write_text(yaml.safe_dump(data))
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
    }
    cli = subprocess.run(
        [
            sys.executable,
            "-c",
            "from wtb_cli.main import app; app()",
            "batch",
            "run",
            str(spec_file),
            "--db",
            pg_url,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, (cli.stdout[-2000:], cli.stderr[-2000:])
    assert "sec-cli: completed" in cli.stdout, cli.stdout[-2000:]
    check_node_saw_the_secrets(pg_url, "sec-cli", env_applied=False)

    # the flow runs' parameters: ids and the masked URL, nothing else
    prefect = prefect_db_dump()
    params = [json.loads(p[0]) for p in _flow_run_parameters()]
    ours = [p for p in params if str(p.get("batch_id", "")).startswith("sec-")]
    assert {p["batch_id"] for p in ours} == {"sec-ray", "sec-tp", "sec-cli"}, ours
    for p in ours:
        assert set(p) == {"batch_id", "spec_hash", "database", "publish_artifacts"}, p
    pg_params = next(p for p in ours if p["batch_id"] == "sec-ray")["database"]
    assert ":***@" in pg_params["url"] and pg_params["password_secret"] == DB_BLOCK

    artifacts = _artifacts_text()
    assert "sec-ray" in artifacts and "keyed" in artifacts  # the matrix artifacts were read

    found = find(
        {
            "postgres": pg_dump(pg_admin_url, pg_database),
            "sqlite": sqlite_dump(str(sqlite_path)),
            "prefect": prefect,
        },
        skip=BLOCK_TABLES,
    )
    found += [f"{what} in artifacts" for what in leaks(artifacts)]
    found += [f"{what} in the log output" for what in leaks(caplog.text)]
    found += [f"{what} in CLI stdout" for what in leaks(cli.stdout)]
    found += [f"{what} in CLI stderr" for what in leaks(cli.stderr)]
    assert found == [], found
    # the stored spec keeps the references and marks the redacted literals
    with sql_app(pg_url, audit=False).uow() as uow:
        stored = uow.batches.get("sec-ray").spec
    env_vars = stored["environments"]["call"]["plain"]["env_vars"]
    assert env_vars == {
        "WTB_SEC_LITERAL_KEY": "***",
        "WTB_SEC_FROM_BLOCK": {"secret": ENV_BLOCK},
        "WTB_SEC_FROM_ENV": {"env": ENV_SOURCE},
    }
    assert stored["variants"]["call"][1]["params"] == {"api_key": "***"}
    assert ":***@" in stored["database_url"]


def _flow_run_parameters() -> list[tuple[str]]:
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url
    raw = url.get_secret_value() if hasattr(url, "get_secret_value") else str(url)
    with sqlite3.connect(str(make_url(raw).database)) as conn:
        return conn.execute("SELECT parameters FROM flow_run").fetchall()


def _artifacts_text() -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(limit=200)
    return "\n".join(f"{a.key} {a.description} {a.data}" for a in found)


@pytest.mark.usefixtures("blocks")
def test_secret_blocks_resolve_and_a_missing_one_is_one_clear_line() -> None:
    from tasks.secrets import prefect_secret
    from wtb_domain.errors import WtbError

    assert prefect_secret(ENV_BLOCK) == BLOCK_VALUE
    with pytest.raises(WtbError) as info:
        prefect_secret(f"no-such-block-{TOKEN}")
    message = str(info.value)
    assert message.startswith(f"Prefect Secret block 'no-such-block-{TOKEN}' not found")
    assert "\n" not in message
