"""SQLAlchemy 2 adapters (SQLite and PostgreSQL): tables, repositories, unit of work."""

from wtb_domain.adapters.sql.database import Database, default_database_url
from wtb_domain.adapters.sql.uow import SqlUnitOfWork

__all__ = ["Database", "SqlUnitOfWork", "default_database_url"]
