"""Every table of the metadata DB: `load_all` imports each service's models so Base.metadata is complete."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "storage.jobs",
    "storage.offline.models",
    "storage.gasflux.models",
    "storage.mrms.models",
    "storage.dataflow.models",
)


def load_all() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)
