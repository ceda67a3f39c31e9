"""Prefect flows: batch tests and regression runs."""
