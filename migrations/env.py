"""Alembic environment: runs on a connection passed in by WTB, or on the configured URL."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, text

from wtb_domain.adapters.sql.database import default_database_url
from wtb_domain.adapters.sql.tables import METADATA

config = context.config
target_metadata = METADATA
MIGRATION_LOCK_ID = 7_311_962_001


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
    """Skip PostgreSQL-only indexes (``pgx_*``) when comparing on other databases."""
    if type_ == "index" and name and name.startswith("pgx_"):
        return bool(context.get_context().dialect.name == "postgresql")
    return True


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Serialise concurrent first-use migrations from many workers.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or default_database_url()
    engine = create_engine(url)
    with engine.begin() as conn:
        run_on(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `wtb db upgrade`")
run_migrations_online()
