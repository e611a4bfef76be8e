"""Column types every domain model shares.

`UTCDateTime` exists because SQLite has no time zone type: SQLAlchemy's `DateTime(timezone=True)` gives
back naive datetimes there and aware ones on PostgreSQL, so code comparing a stored time with `now(UTC)`
worked on the test stack and raised TypeError on `make run`'s SQLite. One type, used by every model,
makes both backends store UTC and always hand back timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out, on SQLite and PostgreSQL alike.

    A naive datetime handed in is taken as UTC (what every writer here means); an aware one is converted.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UTCDateTime takes a datetime, got {type(value).__name__}")
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite stores the text it is given: keep it naive UTC so comparisons in SQL stay lexical
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
