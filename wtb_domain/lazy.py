"""PEP 562 lazy exports: a package's public names load from their modules on first use.

A package ``__init__`` keeps its ``__all__`` (and, for type checkers, the imports under
``TYPE_CHECKING``) and hands the name -> module table to :func:`lazy_exports`, so importing the
package costs nothing until a name is used: ``wtb matrix`` and ``wtb batch status`` then load
only the modules they read with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``names`` live in those modules."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        setattr(import_module(package), name, value)  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(import_module(package)), *names})

    return __getattr__, __dir__
