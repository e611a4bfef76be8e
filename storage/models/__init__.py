"""Tables of the metadata DB, one module per domain; `load_all` registers them on Base.metadata."""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
