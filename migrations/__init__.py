"""Alembic migrations: the only way WTB's schema is created (SQLite and PostgreSQL)."""
