"""Engine creation (once per process and URL), SQLite pragmas, and migrations on first use."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from wtb_domain.adapters.sql.sqlite_gate import (
    GatedConnection,
    begin_gate_only,
    begin_immediate,
    gate_for,
)
from wtb_domain.errors import StoreError

DEFAULT_DIR = ".wtb"
SQLITE_BUSY_TIMEOUT_MS = 30_000
DEFAULT_POOL_SIZE = 10
PG_CONNECT_TIMEOUT_S = 10


def pool_size_from_env() -> int:
    """``WTB_DB_POOL_SIZE``: connections kept per process and URL (as many again as overflow).

    Size it to the concurrent executions of one process, and keep
    ``processes x 2 x pool_size`` below the server's ``max_connections`` (or use PgBouncer).
    """
    raw = os.environ.get("WTB_DB_POOL_SIZE", "").strip()
    if not raw:
        return DEFAULT_POOL_SIZE
    if not raw.isdigit() or int(raw) < 1:
        raise StoreError(f"WTB_DB_POOL_SIZE must be a positive integer, got {raw!r}")
    return int(raw)


PREPARED_ENV = "WTB_PG_PREPARED_STATEMENTS"
PREPARED_STATEMENT_SQLSTATES = frozenset({"26000", "42P05"})  # does not exist / already exists


def prepared_statements_from_env() -> bool:
    """``WTB_PG_PREPARED_STATEMENTS=on``: let psycopg prepare repeated statements on the server.

    Off by default, so WTB works behind PgBouncer in transaction-pooling mode (a statement
    prepared on one server connection is unknown to the next). Turn it on for direct
    connections to PostgreSQL (or PgBouncer >= 1.21 with ``max_prepared_statements``): each
    node's write then skips the server's parse and plan (``bench/results.md``).
    """
    raw = os.environ.get(PREPARED_ENV, "").strip().lower()
    if raw in ("", "0", "off", "false", "no"):
        return False
    if raw in ("1", "on", "true", "yes"):
        return True
    raise StoreError(f"{PREPARED_ENV} must be on or off, got {raw!r}")


def prepared_statement_hint(sqlstate: str | None) -> str:
    """What to do about a prepared-statement error (a pooler mixing server connections)."""
    if sqlstate not in PREPARED_STATEMENT_SQLSTATES:
        return ""
    return (
        f" (is WTB_DATABASE_URL a PgBouncer in transaction-pooling mode? unset {PREPARED_ENV}"
        " there: server-side prepared statements need a session of their own)"
    )


def default_database_url() -> str:
    """``WTB_DATABASE_URL`` if set, else a SQLite file under ``./.wtb/``."""
    url = os.environ.get("WTB_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{Path(DEFAULT_DIR) / 'wtb.db'}"


def absolute_url(url: str | None) -> str:
    """The URL with a relative SQLite path made absolute (other processes, other cwd)."""
    parsed = make_url(url or default_database_url())
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=str(Path(parsed.database or "").resolve()))
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Autocommit at the driver so SQLAlchemy's "begin" event decides how transactions start.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


READ_ONLY = "wtb_read_only"
"""Execution option of a connection that only reads (a read-only unit of work)."""
AUTOCOMMIT_WRITE = "wtb_autocommit_write"
"""Execution option of a connection sending one write statement as its own transaction
(SQLite: the file's gate, no BEGIN; see ``adapters.sql.sqlite_writes``)."""


def _sqlite_begin(conn: Any) -> None:
    # A unit of work that writes takes the write lock up front: a deferred transaction that
    # later writes can fail with SQLITE_BUSY without waiting when another thread/process
    # writes at the same time; the process's threads queue for it on the file's gate first
    # (see adapters.sql.sqlite_gate). One that only reads takes a deferred transaction, and
    # no gate: in WAL it is one consistent snapshot from its first read, and it never waits
    # for a writer (a read nested inside a write unit of work would otherwise wait for the
    # busy timeout).
    options = conn.get_execution_options()
    if options.get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    elif options.get(AUTOCOMMIT_WRITE):
        begin_gate_only(conn, SQLITE_BUSY_TIMEOUT_MS / 1000)
    else:
        begin_immediate(conn, SQLITE_BUSY_TIMEOUT_MS / 1000)


class Database:
    """One SQLAlchemy engine for a URL. Create it once per process (see database_for)."""

    def __init__(
        self, url: str | None = None, *, pool_size: int | None = None, migrate: bool = True
    ):
        self.url = url or default_database_url()
        try:
            parsed = make_url(self.url)
        except ArgumentError as exc:
            raise StoreError(
                f"WTB_DATABASE_URL {self.url!r} is not a database URL ({exc}); "
                "use e.g. sqlite:///path/wtb.db or postgresql+psycopg://user@host/db"
            ) from None
        self.dialect = parsed.get_backend_name()
        self.engine = self._create_engine(parsed, pool_size or pool_size_from_env())
        if migrate:
            self.upgrade()

    def _create_engine(self, parsed: Any, pool_size: int) -> Engine:
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            sqlite_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "factory": GatedConnection}
            engine = create_engine(parsed, connect_args=sqlite_args)
            gate = gate_for(database)

            def on_connect(dbapi_conn: Any, record: Any) -> None:
                _sqlite_pragmas(dbapi_conn, record)
                if isinstance(dbapi_conn, GatedConnection):
                    dbapi_conn.wtb_gate = gate

            event.listen(engine, "connect", on_connect)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        # prepare_threshold=None: no server-side prepared statements, so PgBouncer in
        # transaction-pooling mode works (unless WTB_PG_PREPARED_STATEMENTS=on).
        # connect_timeout: an unreachable server fails fast (and is retried by
        # adapters.sql.retry) instead of hanging on the OS's TCP timeout.
        connect_args: dict[str, Any] = {}
        if parsed.get_driver_name() in ("psycopg", "psycopg2"):
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        if parsed.drivername.endswith("psycopg") and not prepared_statements_from_env():
            connect_args["prepare_threshold"] = None
        return create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args=connect_args,
        )

    def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to ``revision`` (a no-op when already there)."""
        if revision == "head" and self.at_head():
            return  # Alembic is not even imported
        from alembic.util import CommandError

        from wtb_domain.adapters.sql.migrate import upgrade

        try:
            upgrade(self.engine, revision)
        except OperationalError as exc:
            raise StoreError(f"cannot migrate database {self.safe_url}: {exc.orig}") from exc
        except CommandError as exc:
            if revision != "head":  # the caller's own revision: theirs to report
                raise
            # the database's revision is unknown here: written by a newer WTB
            raise StoreError(
                f"cannot migrate database {self.safe_url}: {exc}; it was probably created "
                "by a newer WTB: upgrade WTB (pip install -U) or use another database"
            ) from None

    def at_head(self) -> bool:
        """Whether the schema is at the shipped head: read from the migration files (no
        Alembic import) when they are plain, else asked of Alembic."""
        from wtb_domain.adapters.sql.heads import shipped_head

        try:
            with self.engine.connect() as conn:
                if not inspect(conn).has_table("alembic_version"):
                    return False
                current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except OperationalError as exc:
            raise StoreError(f"cannot reach database {self.safe_url}: {exc.orig}") from exc
        head = shipped_head()
        if head is None:
            from wtb_domain.adapters.sql.migrate import head_revision

            head = head_revision()
        return current == head

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


_lock = threading.Lock()
_databases: dict[str, Database] = {}


def database_for(url: str | None = None) -> Database:
    """The process-wide Database for ``url`` (created and migrated on first use)."""
    key = url or default_database_url()
    with _lock:
        db = _databases.get(key)
        if db is None:
            db = _databases[key] = Database(key)
        return db
