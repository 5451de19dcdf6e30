"""Where each step of a process stands at `now`: the one state model every surface shows.

Pure: the views and `now` are passed in. The model and its transitions are in
docs/architecture.md §6; pages, the CLI, the API, the widget and emails all word these
states, so a step is never "late" in one place and "upcoming" in another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tracker.timelines.dates import get_zone
from tracker.timelines.views import (
    UNREADABLE,
    CompletionView,
    MilestoneView,
    Occurrence,
    Problems,
    concerns,
    expand,
    find_occurrence,
    reference,
)

# Every state, in the order a list of steps shows them: what needs action first.
STATES = ("late", "due_today", "open", "waiting", "upcoming", "missed", "done", "cancelled")
LATE_DAYS = 30  # TRACKER_LATE_DAYS: after this long a step nobody completed is missed, not late


@dataclass(frozen=True)
class Standing:
    """The state of one occurrence, and its completion when it has one."""

    state: str
    completion: CompletionView | None = None
    done_at: datetime | None = None  # the completion's time, or the end of a span that took place


class Process:
    """The milestones of every timeline at one instant, read for the states of their steps."""

    def __init__(
        self,
        views: Iterable[MilestoneView],
        *,
        now: datetime,
        late_days: int = LATE_DAYS,
        ahead: timedelta = timedelta(days=400),
    ) -> None:
        """*ahead*: how far past now the states of steps are asked for (planning: its horizon)."""
        self.now = now
        self.late_days = late_days
        self.late_after = timedelta(days=late_days)
        self.ahead = ahead
        self.views = list(views)
        self.timelines: dict[str, list[MilestoneView]] = {}
        self.by_key: dict[tuple[str, str], MilestoneView] = {}
        for view in self.views:
            self.timelines.setdefault(view.timeline_id, []).append(view)
            self.by_key[(view.timeline_id, view.key)] = view
        # Steps an active step waits for: late, they stay late (and chased) for TRACKER_LATE_DAYS
        # whatever else of the timeline moves on, since the process cannot go on without them.
        self.awaited = {self.step_key(v) for v in self.views if v.opens_after and v.status == "active"}
        self._reached: dict[str, datetime | None] = {}
        self._moments: dict[str, list[datetime]] = {}
        self._waiting: dict[tuple[str, str, str], bool] = {}

    def standing(self, item: Occurrence) -> Standing:
        """Return where *item* stands now."""
        view, now = item.milestone, self.now
        if view.status != "active":
            return Standing("cancelled")
        completion = view.completions.get(item.occurrence)
        if completion is not None:
            return Standing("done", completion, completion.done_at)
        if item.ends_at is not None and item.ends_at <= now:
            return Standing("done", None, item.ends_at)  # a window or meeting that is over took place
        if self.is_waiting(item):
            return Standing("missed" if self.moved_on(item) else "waiting")
        if item.due_at is not None and item.due_at <= now:
            return Standing("missed" if self.moved_on(item) else "late")
        if item.starts_at is not None and item.starts_at <= now:
            return Standing("open")
        if item.due_at is not None and same_day(item.due_at, now, view.zone):
            return Standing("due_today")
        # A deadline whose earlier step is done may be worked on now; a window or meeting opens at its start.
        return Standing("open" if view.opens_after and item.due_at is not None else "upcoming")

    def state(self, item: Occurrence) -> str:
        return self.standing(item).state

    def current_state(self, view: MilestoneView) -> str:
        """The state of *view*'s current occurrence: a late one, else the next, else the last one."""
        try:
            late = [item for item in expand(view, self.now - self.late_after, self.now) if self.state(item) == "late"]
            ahead = late or expand(view, self.now, self.now + timedelta(days=400))
            if ahead:
                return self.state(ahead[0])
            past = [] if view.repeat else expand(view, view.main_at, view.main_at)
        except UNREADABLE:
            return "cancelled" if view.status != "active" else "upcoming"
        return self.state(past[-1]) if past else ("cancelled" if view.status != "active" else "done")

    def step_before(self, view: MilestoneView) -> MilestoneView | None:
        """Return the step *view* opens after, if it names one that exists."""
        return self.by_key.get(self.step_key(view)) if view.opens_after else None

    @staticmethod
    def step_key(view: MilestoneView) -> tuple[str, str]:
        timeline, _, key = (view.opens_after or "").rpartition("/")
        return (timeline or view.timeline_id, key)

    def is_waiting(self, item: Occurrence) -> bool:
        """Whether the step *item* opens after is not done yet (a removed or cancelled one holds nothing)."""
        key = (item.milestone.timeline_id, item.milestone.key, item.occurrence)
        if key not in self._waiting:
            self._waiting[key] = self.waits(item)
        return self._waiting[key]

    def waits(self, item: Occurrence) -> bool:
        before = self.step_before(item.milestone)
        if before is None or before.status != "active":
            return False
        if before.repeat is None:
            return "" not in before.completions
        # A repeating step: the occurrence of it last due at or before this one.
        try:
            earlier = expand(before, item.at - timedelta(days=400), item.at)
        except UNREADABLE:  # a step that does not read holds nothing back
            return False
        key = earlier[-1].occurrence if earlier else ""
        return key not in before.completions

    def moved_on(self, item: Occurrence) -> bool:
        """Whether a late step is missed: long past, or a later step of its timeline is done or past."""
        if self.now - item.at > self.late_after:
            return True
        if (item.milestone.timeline_id, item.milestone.key) in self.awaited:
            return False
        reached = self.reached(item.milestone.timeline_id)
        return reached is not None and reached > item.at

    def missed_at(self, item: Occurrence) -> datetime:
        """When a step not done becomes missed: TRACKER_LATE_DAYS after it, or when a later step of its
        timeline begins, if sooner (now, if it is missed already)."""
        limit = item.at + self.late_after
        if self.moved_on(item):
            return min(limit, self.now)
        if (item.milestone.timeline_id, item.milestone.key) in self.awaited:
            return limit
        return min([limit, *(at for at in self.moments(item.milestone.timeline_id) if item.at < at < limit)])

    def moments(self, timeline_id: str) -> list[datetime]:
        """Instants the timeline's steps begin (those not waiting), from *late_after* ago to as far ahead
        as a step a state is asked of can be missed (*ahead* and *late_after* on)."""
        if timeline_id not in self._moments:
            found = []
            start, end = self.now - self.late_after, self.now + self.ahead + self.late_after
            for view in self.timelines.get(timeline_id, ()):
                try:
                    items = expand(view, start, end) if view.status == "active" else []
                except UNREADABLE:
                    continue
                found += [item.at for item in items if not self.is_waiting(item)]
            self._moments[timeline_id] = sorted(found)
        return self._moments[timeline_id]

    def reached(self, timeline_id: str) -> datetime | None:
        """The latest instant the timeline has reached: a step past, or a step done (even early)."""
        if timeline_id not in self._reached:
            found: list[datetime] = []
            for view in self.timelines.get(timeline_id, ()):
                try:
                    found += self.reached_by(view) if view.status == "active" else []
                except UNREADABLE:  # a step that does not read moves nothing on (its pages set it aside)
                    continue
            self._reached[timeline_id] = max(found, default=None)
        return self._reached[timeline_id]

    def late(
        self, *, timeline: str | None = None, audience: str | None = None, set_aside: Problems | None = None
    ) -> list[Occurrence]:
        """Steps past due and not done, not yet missed; the longest overdue first."""
        found = []
        for views in self.timelines.values():
            for view in views:
                if view.status != "active" or view.due_at is None or timeline not in (None, view.timeline_id):
                    continue
                if audience is not None and not concerns(view, audience):
                    continue
                try:
                    items = expand(view, self.now - self.late_after, self.now)
                except UNREADABLE as exc:
                    if set_aside is not None:
                        set_aside[reference(view)] = str(exc)
                    continue
                found += [item for item in items if self.state(item) == "late"]
        return sorted(found, key=lambda o: (o.at, o.milestone.timeline_id, o.milestone.key))

    def reached_by(self, view: MilestoneView) -> list[datetime]:
        """Instants of *view* that show its timeline has moved on: occurrences begun (not ones still
        waiting for an earlier step: they did not happen), and its latest completion."""
        begun = expand(view, self.now - self.late_after, self.now)
        found = [item.at for item in begun if item.at <= self.now and not self.is_waiting(item)]
        keys = [key for key in view.completions if key]
        if view.repeat is None and "" in view.completions:
            found.append(view.main_at)
        elif keys:
            latest = find_occurrence(view, max(keys))
            if latest is not None:
                found.append(latest.at)
        return found


def same_day(at: datetime, now: datetime, zone: str) -> bool:
    local = get_zone(zone)
    return at.astimezone(local).date() == now.astimezone(local).date()
