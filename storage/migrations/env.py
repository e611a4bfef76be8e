"""Alembic environment: runs migrations on the URL that storage.metadata passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from storage.metadata import Base, make_engine
from storage.tables import load_all

load_all()
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    engine = make_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # several bridges may start at once: one migrates, the others wait
            connection.execute(text("SELECT pg_advisory_lock(727001)"))
            connection.commit()
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_unlock(727001)"))
            connection.commit()
    engine.dispose()


run_migrations_online()
