"""Column helpers shared by the models."""
from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (every timestamp column stores UTC)."""
    return datetime.now(UTC)
