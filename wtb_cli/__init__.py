"""The ``wtb`` command line (typer + rich)."""
