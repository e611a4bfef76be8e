"""What `flowbridge up` hands its children: the Prefect server's database in particular, which decides
whether the stack serves concurrent load (PostgreSQL) or runs with no service at all (SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowbridge.settings import Settings
from flowbridge.stack import EmbeddedStack


def test_prefect_server_defaults_to_sqlite_under_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWBRIDGE_PREFECT_DATABASE_URL", raising=False)
    env = EmbeddedStack(Settings(data_dir=tmp_path)).environment()
    expected = f"sqlite+aiosqlite:///{tmp_path / 'prefect' / 'prefect.db'}"
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"] == expected
    assert env["PREFECT_HOME"] == str(tmp_path / "prefect")


def test_a_plain_postgresql_url_gets_prefects_async_driver(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="sqlite:///meta.db",
        prefect_database_url="postgresql://u@db:5432/prefect",
    )
    env = EmbeddedStack(settings).environment()
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"] == "postgresql+asyncpg://u@db:5432/prefect"
    explicit = Settings(data_dir=tmp_path, prefect_database_url="postgresql+asyncpg://u@db/prefect")
    assert explicit.effective_prefect_database_url == "postgresql+asyncpg://u@db/prefect"
    # the metadata DB's sync driver, copied over by mistake, is swapped for the one Prefect needs
    copied = Settings(data_dir=tmp_path, prefect_database_url="postgresql+psycopg://u:p@db/prefect")
    assert copied.effective_prefect_database_url == "postgresql+asyncpg://u:p@db/prefect"
    # the metadata DB is a different setting and is left alone
    assert env["FLOWBRIDGE_DATABASE_URL"] == "sqlite:///meta.db"
