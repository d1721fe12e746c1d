"""Column helpers shared by the models."""
from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (every timestamp column stores UTC)."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """A stored timestamp as aware UTC (SQLite gives naive UTC back, PostgreSQL aware)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
