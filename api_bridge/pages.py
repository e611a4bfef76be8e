"""Files the bridge serves as they are, from api_bridge/static (packaged with it, see pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

from storage.filesystems import safe_part

STATIC = Path(__file__).resolve().parent / "static"


def static_page(name: str) -> Path:
    """A file of api_bridge/static by its bare name (no folders: nothing outside it can be named)."""
    return STATIC / safe_part(name)
