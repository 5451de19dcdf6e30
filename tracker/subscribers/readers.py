"""Stored subscribers read as what they follow: audiences, timelines, offsets, zone, digest."""

from __future__ import annotations

from dataclasses import dataclass

from tracker.text import describe_text
from tracker.timelines.dates import DateError, get_zone
from tracker.timelines.screening import read_names, readable_offsets


@dataclass(frozen=True)
class Reader:
    """A confirmed subscriber, as planning needs them."""

    id: int
    audiences: tuple[str, ...]
    timelines: tuple[str, ...] | None  # None: every timeline
    reminders: tuple[str, ...] | None  # None: each milestone's own offsets
    timezone: str = "UTC"
    digest: str = "off"


def read_reader(
    id_: int, audiences: object, timelines: object, reminders: object, timezone: object, digest: object
) -> tuple[Reader | None, str]:
    """A stored subscriber as planning needs them, and what in it did not read ('' if nothing).

    Unreadable offsets are left out (all of them: the milestones' own are used); an unreadable
    zone becomes UTC. Unreadable audiences or timelines leave no reader: nobody can tell what
    they asked to follow, and guessing could send mail they never wanted.
    """
    try:
        followed = read_names(audiences) or (), read_names(timelines)
    except ValueError as exc:
        return None, describe_text(f"audiences or timelines: {exc}")
    problems = []
    offsets: tuple[str, ...] | None = None
    if reminders is not None:
        offsets, wrong = readable_offsets(reminders)
        if wrong and not offsets:  # none left: the milestones' own, not a silence nobody chose
            offsets, wrong = None, f"{wrong}: the milestones' own offsets are used instead"
        elif wrong:
            wrong = f"{wrong}: left out"
        if wrong:
            problems.append(wrong)
    zone = timezone if isinstance(timezone, str) else "UTC"
    try:
        get_zone(zone)
    except DateError as exc:
        problems.append(str(exc))
        zone = "UTC"
    reader = Reader(id_, followed[0], followed[1], offsets, zone, digest if isinstance(digest, str) else "off")
    return reader, describe_text("; ".join(problems))
