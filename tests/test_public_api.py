"""The public surface of ``wtb_domain``: star-import works and Prefect stays out of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import wtb_domain

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_star_import_and_every_name_in_all_exists() -> None:
    namespace: dict[str, object] = {}
    exec("from wtb_domain import *", namespace)
    missing = [name for name in wtb_domain.__all__ if not hasattr(wtb_domain, name)]
    assert missing == []
    assert set(wtb_domain.__all__) <= set(namespace)
    assert len(wtb_domain.__all__) == len(set(wtb_domain.__all__))


def test_wtb_domain_does_not_import_prefect() -> None:
    code = (
        "import wtb_domain, sys; "
        "bad = sorted(m for m in sys.modules if m.startswith('prefect')); "
        "assert not bad, bad"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
