"""The clock, read at the edges only: pure code takes `now` as an argument, the edges a `Clock`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]  # returns an aware UTC datetime; tests pass a fixed or stepping one


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)
