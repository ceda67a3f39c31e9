"""Time-ordered identifiers: lexicographic order is creation order."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """Return a 32-hex-character id whose string order follows creation time."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"
