"""Shared fixtures: the repository on sys.path, throwaway PostgreSQL databases, and one
Prefect test harness per session.

The environment is set at import, before Prefect or Ray read it: no analytics (no network
here), no Ray auth for local Ray, and the repository on PYTHONPATH so Ray workers and CLI
subprocesses can import the tests' helper workflows.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["RAY_AUTH_MODE"] = "disabled"
_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if str(REPO_ROOT) not in _paths:
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *_paths])


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for every test that runs a real flow (~10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
START_HINT = (
    "start it with pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)


def _host_port(url: str) -> str:
    """``host:port`` of a libpq URL, without credentials, for messages."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return "<unparsable WTB_TEST_PG_ADMIN_URL>"
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class PgDatabases:
    """Creates throwaway databases on one server and drops them (WITH (FORCE)) at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._created: list[str] = []

    def _admin(self):  # type: ignore[no-untyped-def]
        import psycopg

        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5)

    def create(self) -> str:
        """Create ``wtb_test_<hex>`` and return its SQLAlchemy URL (psycopg 3 driver)."""
        from psycopg import sql
        from sqlalchemy.engine import make_url

        name = f"wtb_test_{secrets.token_hex(6)}"
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.append(name)
        url = make_url(self.admin_url).set(drivername="postgresql+psycopg", database=name)
        return url.render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        from psycopg import sql
        from sqlalchemy.engine import make_url

        name = make_url(url).database
        assert name and name.startswith("wtb_test_"), name
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if name in self._created:
            self._created.remove(name)

    def drop_all(self) -> None:
        from sqlalchemy.engine import make_url

        base = make_url(self.admin_url).set(drivername="postgresql+psycopg")
        for name in list(self._created):
            self.drop(base.set(database=name).render_as_string(hide_password=False))


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The admin URL of a reachable server; skips (or fails under CI) when there is none."""
    url = os.environ.get("WTB_TEST_PG_ADMIN_URL", DEFAULT_PG_ADMIN_URL)
    try:
        import psycopg

        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        where = _host_port(url)
        reason = f"PostgreSQL not reachable at {where}: {type(exc).__name__}: {exc}; {START_HINT}"
        if _in_ci():
            pytest.fail(f"CI is set, so PostgreSQL tests must run. {reason}", pytrace=False)
        pytest.skip(reason)
    return url


@pytest.fixture(scope="session")
def pg_databases(pg_admin_url: str) -> Iterator[PgDatabases]:
    dbs = PgDatabases(pg_admin_url)
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture(scope="session")
def pg_url(pg_databases: PgDatabases) -> Iterator[str]:
    """One throwaway database for the session; tests isolate themselves by unique ids."""
    url = pg_databases.create()
    yield url
    pg_databases.drop(url)
