"""When bounces suspend an address: TRACKER_BOUNCE_SUSPEND, e.g. "1 hard or 5 soft in 30 days".

The format: `H hard or S soft in D days` (H, S at least 1, D from 1 to 365), or either half
alone (`2 hard in 30 days`, `5 soft in 14 days`): the address is suspended once it has that
many hard, or that many soft, bounces received within the last D days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

POLICY = re.compile(
    r"\s*(?:(?P<hard>\d{1,4})\s+hard)?\s*(?:or\s+)?(?:(?P<soft>\d{1,4})\s+soft)?\s+in\s+(?P<days>\d{1,3})\s+days?\s*",
    re.IGNORECASE,
)
EXAMPLE = "1 hard or 5 soft in 30 days"


@dataclass(frozen=True)
class SuspendPolicy:
    """How many hard or soft bounces within `window` suspend an address (None: that kind never does)."""

    hard: int | None = 1
    soft: int | None = 5
    window: timedelta = timedelta(days=30)

    def reached(self, hard: int, soft: int) -> bool:
        """Tell whether *hard* and *soft* bounces within the window suspend the address."""
        return (self.hard is not None and hard >= self.hard) or (self.soft is not None and soft >= self.soft)


def parse_suspend_policy(text: str) -> SuspendPolicy:
    """Read `H hard or S soft in D days`; raise ValueError naming the setting and the format."""
    found = POLICY.fullmatch(text) if len(text) <= 100 else None
    hard = int(found["hard"]) if found and found["hard"] else None
    soft = int(found["soft"]) if found and found["soft"] else None
    days = int(found["days"]) if found else 0
    if found is None or (hard is None and soft is None) or 0 in (hard, soft) or not 1 <= days <= 365:
        raise ValueError(
            f"TRACKER_BOUNCE_SUSPEND must read like {EXAMPLE!r} (or one half: '2 hard in 30 days'; "
            f"counts of at least 1, 1 to 365 days), not {text[:100]!r}"
        )
    if hard is not None and soft is not None and " or " not in f" {text.lower()} ":
        raise ValueError(f"TRACKER_BOUNCE_SUSPEND: join the two counts with 'or', as in {EXAMPLE!r}")
    return SuspendPolicy(hard, soft, timedelta(days=days))
