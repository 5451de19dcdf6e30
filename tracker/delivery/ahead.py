"""What time alone brings into the plan between two passes, with nothing changed (issue 18).

Pure: no store, no clock. What a milestone sends depends on its subscribers only through which
of them it concerns and which offsets they chose; the time a message goes depends on the
milestone, the offset and the process around it. So one *probe* reader who follows every
milestone with every offset anyone uses stands for them all: a milestone whose probe plan at
*now* holds a message the plan at *before* did not (a reminder come inside the horizon, a new
occurrence, a window no longer held, a step now late) is planned again for everyone; the others
are left alone. What merely leaves the plan with time (a deadline passed, a step missed) the
dispatcher skips by its deadline (outbox.skip_stale): no re-planning needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from tracker.delivery.planning import Escalation, Wanted, plan_digests, plan_each
from tracker.subscribers.readers import Reader
from tracker.timelines.dates import parse_offset
from tracker.timelines.views import UNREADABLE, MilestoneView, expand

MilestoneKey = tuple[str, str]


def probe_reader(views: Iterable[MilestoneView], chosen: Iterable[Sequence[str]]) -> Reader:
    """One reader with every offset in use: the milestones' own and each subscriber's *chosen* ones."""
    offsets = {offset for view in views for offset in view.reminders}
    for reminders in chosen:
        offsets.update(offset for offset in reminders if readable_offset(offset))
    return Reader(0, (), None, tuple(sorted(offsets)))


def readable_offset(text: str) -> bool:
    """Whether *text* reads as an offset (a subscriber's that does not is quarantined, not planned)."""
    try:
        parse_offset(text)
    except UNREADABLE:
        return False
    return True


def coming_in(
    views: list[MilestoneView],
    probe: Reader,
    *,
    before: datetime,
    now: datetime,
    horizon: timedelta,
    reminder_hour: int,
    escalation: Escalation | None,
) -> tuple[set[MilestoneKey], set[MilestoneKey]]:
    """Milestones whose reminders, and whose late notices, a pass at *now* plans that one at *before* did not."""
    found: list[set[MilestoneKey]] = []
    for what, only in zip(("reminders", "late"), may_come_in(views, probe, before, now, horizon, escalation),
                          strict=True):  # fmt: skip
        then = plan_probe(views, probe, what, before, horizon, reminder_hour, escalation, only)
        later = plan_probe(views, probe, what, now, horizon, reminder_hour, escalation, only)
        found.append({(item.timeline_id, item.milestone_key) for item in later - then})
    return found[0], found[1]


def plan_probe(
    views: list[MilestoneView], probe: Reader, what: str, now: datetime, horizon: timedelta, reminder_hour: int,
    escalation: Escalation | None, only: set[MilestoneKey] | None = None,
) -> set[Wanted]:  # fmt: skip
    # A milestone that does not read plans nothing here; the pass that found it so quarantined it.
    return set(plan_each(views, [], (what,), now, horizon, reminder_hour, escalation, {}, only=only, probe=probe))


SLACK = timedelta(days=2)  # a day offset goes at the reminder hour of a local day: a day and a zone's hours either way


def may_come_in(
    views: list[MilestoneView], probe: Reader, before: datetime, now: datetime, horizon: timedelta,
    escalation: Escalation | None,
) -> tuple[set[MilestoneKey], set[MilestoneKey]]:  # fmt: skip
    """The milestones whose reminders, and whose late notices, may have come inside the horizon since *before*:
    the others are not planned at all (at 20,000 milestones, planning each twice was most of a quiet pass).

    With nothing changed, time brings a message into the plan only by its send time passing into the
    horizon, between *before* + horizon and *now* + horizon (what waits for a step depends on its
    completions, not on the time; a step is missed sooner as time goes, never later). A reminder goes
    at most its offset before its occurrence, and not after it; an `overdue` notice at most its offset
    after its occurrence, and not before it. A `delayed` notice follows the step a window waits for:
    a window that waits for one is always looked at, as is a milestone whose dates do not read.
    """
    escalation = escalation or Escalation()
    reminder_reach = longest(probe.reminders or ())
    lower = before + horizon
    reminders: set[MilestoneKey] = set()
    late: set[MilestoneKey] = set()
    for view in views:
        key = (view.timeline_id, view.key)
        if view.status != "active":
            continue
        if meets(view, lower, now + horizon + reminder_reach + SLACK):
            reminders.add(key)
        overdue_reach = longest(view.overdue if view.overdue is not None else escalation.overdue)
        if view.opens_after is not None or meets(view, lower - overdue_reach - SLACK, now + horizon):
            late.add(key)
    return reminders, late


def longest(offsets: Iterable[str]) -> timedelta:
    """At least the longest reach of these offsets (working days counted generously: holidays between)."""
    reach = timedelta(0)
    for text in offsets:
        try:
            offset = parse_offset(text)
        except UNREADABLE:
            continue  # planned by nobody: a milestone's is quarantined, a subscriber's left out
        reach = max(reach, abs(offset.exact()) + timedelta(days=3 * abs(offset.workdays)))
    return reach


def meets(view: MilestoneView, start: datetime, end: datetime) -> bool:
    """Whether an occurrence of *view* (its time or its span) meets [start, end]; one that does not read may."""
    try:
        return bool(expand(view, start, end))
    except UNREADABLE:
        return True


def digest_zones(zones: Iterable[str], *, before: datetime, now: datetime, horizon: timedelta,
                 reminder_hour: int) -> set[str]:  # fmt: skip
    """The zones whose weekly digest a pass at *now* plans and one at *before* did not (a new week)."""
    found = set()
    for zone in zones:
        probe = [Reader(0, (), None, None, zone, "weekly")]
        try:
            later = plan_digests(probe, now=now, horizon=horizon, reminder_hour=reminder_hour)
            then = plan_digests(probe, now=before, horizon=horizon, reminder_hour=reminder_hour)
        except UNREADABLE:  # its subscribers do not read: quarantined, planned nothing
            continue
        if set(later) - set(then):
            found.add(zone)
    return found
