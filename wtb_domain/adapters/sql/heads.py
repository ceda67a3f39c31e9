"""The head revision of the shipped migrations, read from their files without Alembic.

Every process that opens a store checks that its schema is at the head before anything else
(:meth:`Database.at_head`). Asking Alembic means importing it (and Mako) and executing every
migration module: ~0.3 s of a ``wtb batch status`` that otherwise runs two small queries. The
migrations declare ``revision = "..."`` and ``down_revision = ...`` as plain literals, so the
head is the one revision no other file names as its parent. Anything this reader cannot be
sure of (a missing or computed assignment, several heads, a cycle) returns ``None`` and the
caller asks Alembic, whose answer is authoritative.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_ASSIGN = r"^{name}\s*(?::[^=\n]+)?=\s*(?P<value>[^\n#]+)"
_REVISION = re.compile(_ASSIGN.format(name="revision"), re.MULTILINE)
_DOWN = re.compile(_ASSIGN.format(name="down_revision"), re.MULTILINE)
_LITERAL = re.compile(r"""^(?:"([^"\\]+)"|'([^'\\]+)')$""")
_TUPLE_ITEM = re.compile(r"""\s*(?:"([^"\\]+)"|'([^'\\]+)')\s*""")


def versions_dir() -> Path:
    import migrations

    return Path(migrations.__file__).parent / "versions"


def _one(value: str) -> str | None:
    m = _LITERAL.match(value.strip())
    return (m.group(1) or m.group(2)) if m else None


def _parents(value: str) -> list[str] | None:
    """``None`` -> [], ``"a"`` -> [a], ``("a", "b")`` -> [a, b]; None if not a literal."""
    text = value.strip()
    if text == "None":
        return []
    single = _one(text)
    if single is not None:
        return [single]
    if text[:1] in "([" and text[-1:] in ")]":
        items = [i for i in text[1:-1].split(",") if i.strip()]
        out = []
        for item in items:
            m = _TUPLE_ITEM.fullmatch(item)
            if not m:
                return None
            out.append(m.group(1) or m.group(2))
        return out
    return None


def scan_head(directory: Path) -> str | None:
    """The single head of the migration files in ``directory``, or None when unsure."""
    parents: dict[str, list[str]] = {}
    for path in sorted(directory.glob("*.py")):
        if path.name == "__init__.py":
            continue
        source = path.read_text(encoding="utf-8")
        rev, down = _REVISION.findall(source), _DOWN.findall(source)
        if len(rev) != 1 or len(down) != 1:
            return None
        revision, downs = _one(rev[0]), _parents(down[0])
        if revision is None or downs is None or revision in parents:
            return None
        parents[revision] = downs
    if not parents:
        return None
    named = {p for ps in parents.values() for p in ps}
    if not named <= parents.keys():
        return None  # a parent that no file defines
    heads = [r for r in parents if r not in named]
    if len(heads) != 1:
        return None
    roots = [r for r, ps in parents.items() if not ps]
    return heads[0] if len(roots) == 1 else None


@cache
def shipped_head() -> str | None:
    """:func:`scan_head` of the shipped ``migrations/versions`` (once per process)."""
    try:
        return scan_head(versions_dir())
    except (OSError, UnicodeDecodeError, ImportError):
        return None
