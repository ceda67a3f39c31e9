"""Thin Prefect tasks: each is one call into :mod:`wtb_domain`."""
