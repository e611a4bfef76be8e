"""The metadata database: SQLAlchemy 2 engine and sessions, migrated by Alembic.

SQLite by default (one file under the data folder), PostgreSQL by URL. Bridge and workers open it by the
same URL; it holds what is not a job (projects, datasets, dataflows) and the map from legacy ids to
Prefect flow runs. Job state itself lives in Prefect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

# Both drivers load with this module: SQLAlchemy would import one lazily, inside a process's first query,
# which in a flow-run process is inside the run (0.03-0.1 s here) instead of with the other imports.
import psycopg  # noqa: F401
import sqlalchemy.dialects.postgresql.psycopg
import sqlalchemy.dialects.sqlite.pysqlite  # noqa: F401
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


class Base(DeclarativeBase):
    """Declarative base of every table; each service's models live in storage/<service>/models.py."""


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use the psycopg 3 driver we install."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url`, else for the current settings' database. The cache is keyed on the resolved
    URL, so a process whose settings change (tests, `flowbridge` sub-commands) never keeps writing to the
    database it first saw."""
    return _engine(_resolve(url))


def _resolve(url: str | None) -> str:
    from flowbridge.settings import get_settings

    return url or get_settings().effective_database_url


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    return make_engine(url)


@lru_cache(maxsize=8)
def _sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    session = _sessionmaker(_resolve(url))()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | None = None) -> Config:
    from flowbridge.settings import get_settings

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option(
        "sqlalchemy.url", normalize_url(url or get_settings().effective_database_url).replace("%", "%%")
    )
    return config


def migrate(url: str | None = None) -> None:
    """Bring the schema to every head (each domain keeps its own migration branch)."""
    command.upgrade(alembic_config(url), "heads")
