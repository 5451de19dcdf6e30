"""Quarantine: stored subscribers and milestones that do not read, set aside with the reason (issue 13).

A value an older version wrote, or a hand edit, must not stop delivery, feeds or pages for
everyone else. Each part leaves such a thing out on its own (planning.screen_views and the
try around each item); the planner, which sees every subscriber and milestone on each pass,
also keeps this table, so that an entry appears (and is logged) once, shows in `tracker
deliveries` and in the metrics, and leaves when the value reads again. A message that cannot
be composed or rendered is set aside in the outbox itself (state `quarantined`): for good when
its own data is at fault, planned again when it was set aside with a milestone or subscriber
that reads again (outbox.replan).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlmodel import Session

from tracker.store.models import Delivery, Quarantine

log = logging.getLogger("tracker.store.quarantine")
WHAT = ("subscriber", "milestone", "delivery")  # the last are outbox rows in state 'quarantined'
Found = Mapping[tuple[str, str], str]  # (what, key) → reason


def keep_quarantine(
    session: Session, found: Found, now: datetime, releasable: Callable[[tuple[str, str]], bool] | None = None
) -> None:
    """Make the table hold exactly *found*: a new entry is logged once, a released one logged and removed.

    A planning of part of the outbox knows only part: it releases only the entries *releasable* says it looked at.
    """
    table = Quarantine.__table__  # type: ignore[attr-defined]
    stored = {(what, key): reason for what, key, reason in session.execute(select(table.c.what, table.c.key,
                                                                                  table.c.reason))}  # fmt: skip
    for (what, key), reason in found.items():
        if (what, key) not in stored:
            session.execute(insert(table).values(what=what, key=key, reason=reason, since=now))
        elif stored[(what, key)] != reason:
            session.execute(update(table).where(table.c.what == what, table.c.key == key).values(reason=reason))
        else:
            continue
        log.warning("quarantined %s %s (everyone else is served): %s", what, key, reason)
    released = sorted(key for key in stored.keys() - found.keys() if releasable is None or releasable(key))
    if released:
        session.execute(delete(table).where(tuple_(table.c.what, table.c.key).in_(released)))
        log.info("released from quarantine: %s", ", ".join(f"{what} {key}" for what, key in released))


def list_quarantine(session: Session) -> list[Quarantine]:
    """Every entry, oldest first."""
    table = Quarantine.__table__  # type: ignore[attr-defined]
    rows = session.execute(select(table).order_by(table.c.since, table.c.what, table.c.key))
    return [Quarantine(**row._mapping) for row in rows]


def count_quarantine(session: Session) -> dict[str, int]:
    """How many of each kind are set aside now: subscribers, milestones and outbox rows."""
    table = Quarantine.__table__  # type: ignore[attr-defined]
    counts = dict.fromkeys(WHAT, 0)
    for what, count in session.execute(select(table.c.what, func.count()).group_by(table.c.what)):
        counts[what] = count
    deliveries = Delivery.__table__  # type: ignore[attr-defined]
    # Not confirmations: one was asked for by one address, so its count would tell that address's fate.
    counted = (deliveries.c.state == "quarantined") & (deliveries.c.kind != "confirm")
    counts["delivery"] = session.execute(select(func.count()).where(counted)).scalar_one()
    return counts
