"""The metadata engine follows the settings of the moment: a process that re-points its settings (tests,
CLI sub-commands) must write to the new database, not the one it saw first."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text


def test_engine_follows_a_changed_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowbridge.settings import get_settings
    from storage import metadata

    written = {}
    for name in ("first", "second"):
        url = f"sqlite:///{tmp_path / name}.db"
        monkeypatch.setenv("FLOWBRIDGE_DATABASE_URL", url)
        get_settings.cache_clear()
        with metadata.session_scope() as session:
            session.execute(text("CREATE TABLE marker (name TEXT)"))
            session.execute(text("INSERT INTO marker VALUES (:name)"), {"name": name})
        written[name] = str(metadata.get_engine().url)
    get_settings.cache_clear()

    assert written["first"].endswith("first.db")
    assert written["second"].endswith("second.db")
    for name in ("first", "second"):
        with metadata.session_scope(f"sqlite:///{tmp_path / name}.db") as session:
            assert session.execute(text("SELECT name FROM marker")).scalars().all() == [name]
