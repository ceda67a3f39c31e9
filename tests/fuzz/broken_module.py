"""A module that fails on import, for the workflow-reference tests."""

raise ImportError("this module is broken on purpose")
