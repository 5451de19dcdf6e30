"""What a sync would change: desired milestones from the files against the stored ones.

Pure: specs and the stored state in, a plan of changes out. `tracker.timelines.sync` reads the
store and writes the plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from tracker.timelines.dates import Absolute, LocalPoint, Offset, Relative, format_offset, parse_stored_expr
from tracker.timelines.files import FileProblem, MilestoneSpec, TimelineSpec, Titles, errors_in
from tracker.timelines.resolve import Completion, DateRule, Key, ResolvedDates, resolve_dates, rules_from_specs
from tracker.timelines.workdays import DEFAULT_CALENDAR, Roll, WorkCalendar

DATE_FIELDS = ("due_at", "starts_at", "ends_at")
# Bookkeeping, updated without an event or a new revision: the resolved dates are what
# members see, so a rewritten expression that lands on the same date is not news.
# `roll` is how a date came about: a move of the date itself is the news. `rolled_from` is
# shown with the date ("moved from Saturday…"), so a new reason alone is an update (a new
# revision, feeds and pages refreshed) but no move: no `changed` email (docs/decisions.md).
SILENT_FIELDS = ("position", "line", "due_expr", "starts_expr", "ends_expr", "roll", "rolled_from")


@dataclass(frozen=True)
class MilestoneData:
    """A milestone row as sync wants it; compared field by field with the stored one."""

    timeline_id: str
    key: str
    title: str
    kind: str
    all_day: bool
    zone: str
    titles: Titles = ()  # a translation is part of the title: editing one is an update like any title edit
    position: int = 0
    line: int = 0
    summary: str = ""
    owner: str | None = None
    url: str = ""
    location: str = ""
    due_expr: str | None = None
    starts_expr: str | None = None
    ends_expr: str | None = None
    due_at: datetime | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    repeat: str | None = None
    status: str = "active"
    opens_after: str | None = None
    reminders: tuple[str, ...] = ()
    overdue: tuple[str, ...] | None = None  # escalation offsets of a late step; None: TRACKER_OVERDUE
    roll: Roll | None = None  # kept to resolve the dates again when a completion moves them
    rolled_from: date | None = None  # shown with the milestone: "moved from Saturday 23 August, a non-working day"

    @property
    def main_at(self) -> datetime | None:
        return self.due_at or self.starts_at

    def columns(self) -> dict[str, Any]:
        values = dict(self.__dict__)  # the fields in order: a cold sync asks this of every milestone
        values["reminders"] = list(self.reminders)
        values["overdue"] = None if self.overdue is None else list(self.overdue)
        values["titles"] = titles_column(self.titles)
        return values


MILESTONE_COLUMNS = tuple(f.name for f in fields(MilestoneData))


@dataclass(frozen=True)
class TimelineData:
    id: str
    title: str
    timezone: str
    kind: str
    path: str
    summary: str = ""
    source: str = ""
    url: str = ""
    audiences: tuple[str, ...] = ()
    reminders: tuple[str, ...] | None = None
    titles: Titles = ()
    calendar: WorkCalendar = DEFAULT_CALENDAR

    def columns(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["calendar"] = self.calendar.describe()
        values["audiences"] = list(self.audiences)
        values["reminders"] = None if self.reminders is None else list(self.reminders)
        values["titles"] = titles_column(self.titles)
        return values


def titles_column(titles: Titles) -> dict[str, str] | None:
    """Return translations as the store keeps them: a mapping, None when there are none."""
    return dict(titles) or None


def titles_from_column(value: Mapping[str, str] | None) -> Titles:
    """Return stored translations in the order the loader gives them, so unchanged ones compare equal."""
    return tuple(sorted((value or {}).items()))


@dataclass(frozen=True)
class Change:
    """One effect of a sync, as shown by `tracker plan` and recorded as an event."""

    kind: str  # added rescheduled cancelled restored updated removed completed reopened
    timeline_id: str
    milestone_key: str | None
    title: str
    old_at: datetime | None = None
    new_at: datetime | None = None
    all_day: bool = False
    zone: str = "UTC"
    fields: tuple[str, ...] = ()
    who: str = ""  # completions: who recorded it ("cli:USER", "api", "file")
    note: str = ""  # completions: the note given with it
    rolled_from: date | None = None  # the date as written, when `roll` moved it off a non-working day


@dataclass
class Stored:
    timelines: dict[str, TimelineData]
    removed_timelines: set[str]
    milestones: dict[Key, tuple[int, int, MilestoneData]]  # id, revision, data
    completions: dict[Key, tuple[Completion, str]]  # completion, source


@dataclass
class SyncPlan:
    changes: list[Change]
    timelines: dict[str, TimelineData]
    milestones: dict[Key, MilestoneData]
    file_completions: dict[Key, Completion]
    stored: Stored

    @classmethod
    def nothing(cls) -> SyncPlan:
        """The plan of a sync whose inputs have not changed since the last one."""
        return cls([], {}, {}, {}, Stored({}, set(), {}, {}))

    @property
    def is_empty(self) -> bool:
        return not self.changes and not self.silent_updates() and not self.timeline_updates()

    def silent_updates(self) -> list[Key]:
        return [
            key
            for key, data in self.milestones.items()
            if key in self.stored.milestones and self.stored.milestones[key][2] != data
        ]

    def timeline_updates(self) -> list[str]:
        stored = self.stored
        return [
            t for t, data in self.timelines.items() if stored.timelines.get(t) != data or t in stored.removed_timelines
        ]


def file_completions(specs: Sequence[TimelineSpec]) -> dict[Key, Completion]:
    found = {}
    for tl in specs:
        for m in tl.milestones:
            if m.done is not None:
                point = LocalPoint(m.done.day, m.done.clock, tl.timezone, "start")  # a date: from its start
                found[(tl.id, m.id)] = Completion(point.at(), m.done.day if m.done.clock is None else None)
    return found


def plan_changes(
    specs: Sequence[TimelineSpec], stored: Stored, default_reminders: Sequence[str]
) -> tuple[SyncPlan | None, list[FileProblem]]:
    """Compute what syncing *specs* onto *stored* would change; None and problems when they do not resolve."""
    from_files = file_completions(specs)
    completions = {key: c for key, (c, source) in stored.completions.items() if source != "file"}
    completions.update(from_files)
    dates, problems = resolve_dates(rules_from_specs(specs), completions)
    if errors_in(problems):
        return None, sorted(problems)
    timelines = {tl.id: timeline_data(tl) for tl in specs}
    desired = {
        (tl.id, m.id): milestone_data(tl, m, position, dates[(tl.id, m.id)], default_reminders)
        for tl in specs
        for position, m in enumerate(tl.milestones)
    }
    changes = diff_milestones(desired, stored) + diff_completions(from_files, stored, desired)
    changes += diff_timelines(timelines, stored, desired, changes)
    return SyncPlan(changes, timelines, desired, from_files, stored), sorted(problems)


TIMELINE_SHOWN = ("title", "titles", "summary", "source", "url", "kind", "audiences")


def diff_timelines(
    timelines: Mapping[str, TimelineData], stored: Stored, desired: Mapping[Key, MilestoneData], changes: list[Change]
) -> list[Change]:
    """A timeline's title or source shows in each of its items: their revisions must rise too."""
    edited: dict[str, tuple[str, ...]] = {}
    for timeline_id, new in timelines.items():
        old = stored.timelines.get(timeline_id)
        names = tuple(f"timeline {n}" for n in TIMELINE_SHOWN if old is not None and getattr(old, n) != getattr(new, n))
        if names:
            edited[timeline_id] = names
    touched = {(c.timeline_id, c.milestone_key) for c in changes}
    return [
        change("updated", data, fields=edited[key[0]])
        for key, data in desired.items()
        if key[0] in edited and key not in touched and key in stored.milestones
    ]


def timeline_data(tl: TimelineSpec) -> TimelineData:
    reminders = None if tl.reminders is None else format_offsets(tl.reminders)
    return TimelineData(
        tl.id, tl.title, tl.timezone, tl.kind, tl.path, tl.summary, tl.source, tl.url, tl.audiences, reminders,
        tl.titles, tl.calendar,
    )  # fmt: skip


def effective_reminders(tl: TimelineSpec, m: MilestoneSpec, defaults: Sequence[str]) -> tuple[str, ...]:
    """Milestone offsets override the timeline's, which override the settings; spans opt in."""
    if m.reminders is not None:
        return format_offsets(m.reminders)
    if m.is_span:
        return ()
    if tl.reminders is not None:
        return format_offsets(tl.reminders)
    return tuple(defaults)


def effective_overdue(tl: TimelineSpec, m: MilestoneSpec) -> tuple[str, ...] | None:
    """Milestone offsets override the timeline's; None leaves it to TRACKER_OVERDUE, read when planning."""
    own = m.overdue if m.overdue is not None else tl.overdue
    return None if own is None or m.is_span else format_offsets(own)  # a span is never late


@lru_cache(maxsize=4096)  # a few reminder lists serve every milestone
def format_offsets(offsets: tuple[Offset, ...]) -> tuple[str, ...]:
    return tuple(format_offset(o) for o in offsets)


def milestone_data(
    tl: TimelineSpec, m: MilestoneSpec, position: int, dates: ResolvedDates, defaults: Sequence[str]
) -> MilestoneData:
    return MilestoneData(
        timeline_id=tl.id,
        key=m.id,
        title=m.title,
        kind="span" if m.is_span else "deadline",
        all_day=dates.main.all_day,
        zone=tl.timezone,
        titles=m.titles,
        position=position,
        line=m.line,
        summary=m.summary,
        owner=m.owner,
        url=m.url,
        location=m.location,
        due_expr=expr_text(m.due),
        starts_expr=expr_text(m.starts),
        ends_expr=expr_text(m.ends),
        due_at=dates.due.at() if dates.due else None,
        starts_at=dates.starts.at() if dates.starts else None,
        ends_at=dates.ends.at() if dates.ends else None,
        repeat=m.repeat,
        status=m.status,
        opens_after=m.opens_after,
        reminders=effective_reminders(tl, m, defaults),
        overdue=effective_overdue(tl, m),
        roll=m.roll,
        rolled_from=dates.rolled_from,
    )


@lru_cache(maxsize=65536)  # expressions are frozen and repeat across milestones
def expr_text(expr: object) -> str | None:
    """Return the canonical text of a date expression, parseable by parse_stored_expr."""
    if expr is None:
        return None
    if isinstance(expr, Absolute):
        return expr.text()

    assert isinstance(expr, Relative)
    ref = f"{expr.timeline}/{expr.milestone}" if expr.timeline else expr.milestone
    ref += f".{expr.anchor}" if expr.anchor else ""
    for offset in expr.offsets:
        sign = "-" if offset.days < 0 or offset.minutes < 0 or offset.workdays < 0 else "+"
        ref += f" {sign} {format_offset(offset)}"
    return ref


def diff_milestones(desired: Mapping[Key, MilestoneData], stored: Stored) -> list[Change]:
    changes: list[Change] = []
    for key, new in desired.items():
        if key not in stored.milestones:
            changes.append(change("added", new, new_at=new.main_at))
            continue
        changes.extend(diff_one(stored.milestones[key][2], new))
    for key, (_, _, old) in stored.milestones.items():
        if key not in desired and old.status != "removed":
            changes.append(change("removed", old, old_at=old.main_at))
    return changes


def diff_one(old: MilestoneData, new: MilestoneData) -> list[Change]:
    found = []
    if old.status != new.status:
        kind = "cancelled" if new.status == "cancelled" else "restored"
        found.append(change(kind, new, old_at=old.main_at, new_at=new.main_at))
    moved = any(getattr(old, f) != getattr(new, f) for f in DATE_FIELDS)
    if moved:
        found.append(change("rescheduled", new, old_at=old.main_at, new_at=new.main_at))
    skip = {"status", *DATE_FIELDS, *SILENT_FIELDS}
    changed = tuple(f.name for f in fields(new) if f.name not in skip and getattr(old, f.name) != getattr(new, f.name))
    if not moved and old.rolled_from != new.rolled_from:  # a move says its own reason
        changed += ("rolled_from",)
    if changed:
        found.append(change("updated", new, fields=changed))
    return found


def change(kind: str, data: MilestoneData, **extra: Any) -> Change:
    return Change(
        kind, data.timeline_id, data.key, data.title, all_day=data.all_day, zone=data.zone,
        rolled_from=data.rolled_from, **extra,
    )  # fmt: skip


def diff_completions(
    from_files: Mapping[Key, Completion], stored: Stored, desired: Mapping[Key, MilestoneData]
) -> list[Change]:
    changes = []
    for key, completion in from_files.items():
        old = stored.completions.get(key)
        if old is None:
            changes.append(change("completed", desired[key], new_at=completion.done_at))
        elif old[0] != completion:
            # An amendment, not a second completion: the step opened already and nothing opens again.
            # The file wins over `tracker done` (docs/timelines.md, "Completions"); plan says so.
            replaces = () if old[1] == "file" else (f"the file's done: replaces the completion recorded by {old[1]}",)
            changes.append(change("amended", desired[key], old_at=old[0].done_at, new_at=completion.done_at,
                                  fields=replaces))  # fmt: skip
    for key, (completion, source) in stored.completions.items():
        if source == "file" and key not in from_files and key in desired:
            changes.append(change("reopened", desired[key], old_at=completion.done_at))
    return changes


def rules_from_rows(
    rows: Iterable[MilestoneData], paths: Mapping[str, str], calendars: Mapping[str, WorkCalendar]
) -> dict[Key, DateRule]:
    """Rebuild date rules from stored expressions (used when a completion re-resolves dates)."""
    rules = {}
    for data in rows:
        # Stored texts are ours, but may predate today's limits on what a file may say: read them as they are.
        exprs = {name: parse_stored_expr(text) if text else None for name, text in
                 (("due", data.due_expr), ("starts", data.starts_expr), ("ends", data.ends_expr))}  # fmt: skip
        key = (data.timeline_id, data.key)
        lines = {"id": data.line}
        calendar = calendars.get(data.timeline_id, DEFAULT_CALENDAR)
        rules[key] = DateRule(key, data.zone, exprs["due"], exprs["starts"], exprs["ends"], data.repeat,
                              paths.get(data.timeline_id, ""), lines, None, calendar, data.roll)  # fmt: skip
    return rules


def with_dates(data: MilestoneData, dates: ResolvedDates) -> MilestoneData:
    return replace(
        data,
        due_at=dates.due.at() if dates.due else None,
        starts_at=dates.starts.at() if dates.starts else None,
        ends_at=dates.ends.at() if dates.ends else None,
        rolled_from=dates.rolled_from,
    )
