"""Adapters implementing :mod:`wtb_domain.ports`: in-memory and SQLAlchemy."""
