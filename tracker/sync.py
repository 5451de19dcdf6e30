"""Sync timeline specs into the store: diff desired against stored, then apply with events.

`plan_sync` is a dry run (read only); `apply_plan` writes rows and events in the
caller's transaction, so a sync either happens whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlmodel import Session

from tracker.dates import Absolute, LocalPoint, format_offset, parse_expr
from tracker.models import CompletionRecord, Event, Milestone, Timeline
from tracker.resolve import Completion, DateRule, Key, ResolvedDates, resolve_dates
from tracker.schedules import MilestoneSpec, Problem, TimelineSpec

DATE_FIELDS = ("due_at", "starts_at", "ends_at")
# Bookkeeping, updated without an event or a new revision: the resolved dates are what
# members see, so a rewritten expression that lands on the same date is not news.
SILENT_FIELDS = ("position", "line", "due_expr", "starts_expr", "ends_expr")


@dataclass(frozen=True)
class MilestoneData:
    """A milestone row as sync wants it; compared field by field with the stored one."""

    timeline_id: str
    key: str
    title: str
    kind: str
    all_day: bool
    zone: str
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

    @property
    def main_at(self) -> datetime | None:
        return self.due_at or self.starts_at

    def columns(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in MILESTONE_COLUMNS}
        values["reminders"] = list(self.reminders)
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

    def columns(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["audiences"] = list(self.audiences)
        values["reminders"] = None if self.reminders is None else list(self.reminders)
        return values


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


def rules_from_specs(specs: Sequence[TimelineSpec]) -> dict[Key, DateRule]:
    return {
        (tl.id, m.id): DateRule(
            (tl.id, m.id), tl.timezone, m.due, m.starts, m.ends, m.repeat, tl.path, m.lines, m.opens_after
        )
        for tl in specs
        for m in tl.milestones
    }


def file_completions(specs: Sequence[TimelineSpec]) -> dict[Key, Completion]:
    found = {}
    for tl in specs:
        for m in tl.milestones:
            if m.done is not None:
                point = LocalPoint(m.done.day, m.done.clock, tl.timezone, "start")  # a date: from its start
                found[(tl.id, m.id)] = Completion(point.at(), m.done.day if m.done.clock is None else None)
    return found


def plan_sync(
    session: Session, specs: Sequence[TimelineSpec], default_reminders: Sequence[str]
) -> tuple[SyncPlan | None, list[Problem]]:
    """Compute what syncing *specs* would change; None and problems when they do not resolve."""
    stored = load_stored(session)
    from_files = file_completions(specs)
    completions = {key: c for key, (c, source) in stored.completions.items() if source != "file"}
    completions.update(from_files)
    dates, problems = resolve_dates(rules_from_specs(specs), completions)
    if problems:
        return None, sorted(problems)
    timelines = {tl.id: timeline_data(tl) for tl in specs}
    desired = {
        (tl.id, m.id): milestone_data(tl, m, position, dates[(tl.id, m.id)], default_reminders)
        for tl in specs
        for position, m in enumerate(tl.milestones)
    }
    changes = diff_milestones(desired, stored) + diff_completions(from_files, stored, desired)
    return SyncPlan(changes, timelines, desired, from_files, stored), []


def timeline_data(tl: TimelineSpec) -> TimelineData:
    reminders = None if tl.reminders is None else tuple(format_offset(o) for o in tl.reminders)
    return TimelineData(
        tl.id, tl.title, tl.timezone, tl.kind, tl.path, tl.summary, tl.source, tl.url, tl.audiences, reminders
    )


def effective_reminders(tl: TimelineSpec, m: MilestoneSpec, defaults: Sequence[str]) -> tuple[str, ...]:
    """Milestone offsets override the timeline's, which override the settings; spans opt in."""
    if m.reminders is not None:
        return tuple(format_offset(o) for o in m.reminders)
    if m.is_span:
        return ()
    if tl.reminders is not None:
        return tuple(format_offset(o) for o in tl.reminders)
    return tuple(defaults)


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
    )


@lru_cache(maxsize=65536)  # expressions are frozen and repeat across milestones
def expr_text(expr: object) -> str | None:
    """Return the canonical text of a date expression, parseable by parse_expr."""
    if expr is None:
        return None
    if isinstance(expr, Absolute):
        return expr.text()
    from tracker.dates import Relative

    assert isinstance(expr, Relative)
    ref = f"{expr.timeline}/{expr.milestone}" if expr.timeline else expr.milestone
    ref += f".{expr.anchor}" if expr.anchor else ""
    for offset in expr.offsets:
        sign = "-" if offset.days < 0 or offset.minutes < 0 else "+"
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
    if any(getattr(old, f) != getattr(new, f) for f in DATE_FIELDS):
        found.append(change("rescheduled", new, old_at=old.main_at, new_at=new.main_at))
    skip = {"status", *DATE_FIELDS, *SILENT_FIELDS}
    changed = tuple(f.name for f in fields(new) if f.name not in skip and getattr(old, f.name) != getattr(new, f.name))
    if changed:
        found.append(change("updated", new, fields=changed))
    return found


def change(kind: str, data: MilestoneData, **extra: Any) -> Change:
    return Change(kind, data.timeline_id, data.key, data.title, all_day=data.all_day, zone=data.zone, **extra)


def diff_completions(
    from_files: Mapping[Key, Completion], stored: Stored, desired: Mapping[Key, MilestoneData]
) -> list[Change]:
    changes = []
    for key, completion in from_files.items():
        old = stored.completions.get(key)
        if old is None or old[0] != completion:
            changes.append(change("completed", desired[key], new_at=completion.done_at))
    for key, (completion, source) in stored.completions.items():
        if source == "file" and key not in from_files and key in desired:
            changes.append(change("reopened", desired[key], old_at=completion.done_at))
    return changes


def load_stored(session: Session) -> Stored:
    """Read the store's current state with plain column queries (fast for large stores)."""
    timelines: dict[str, TimelineData] = {}
    removed: set[str] = set()
    for row in session.execute(select(Timeline.__table__)).mappings():  # type: ignore[attr-defined]
        timelines[row["id"]] = row_to_timeline(row)
        if row["removed_at"] is not None:
            removed.add(row["id"])
    milestones = {}
    names = MILESTONE_COLUMNS
    for row in session.execute(select(Milestone.__table__)).mappings():  # type: ignore[attr-defined]
        values = {name: row[name] for name in names}
        values["reminders"] = tuple(values["reminders"] or ())
        milestones[(row["timeline_id"], row["key"])] = (row["id"], row["revision"], MilestoneData(**values))
    completions = {}
    for row in session.execute(select(CompletionRecord.__table__)).mappings():  # type: ignore[attr-defined]
        if row["occurrence"] == "":
            completion = Completion(row["done_at"], row["done_day"])
            completions[(row["timeline_id"], row["milestone_key"])] = (completion, row["source"])
    return Stored(timelines, removed, milestones, completions)


def row_to_timeline(row: Any) -> TimelineData:
    reminders = row["reminders"]
    return TimelineData(
        row["id"], row["title"], row["timezone"], row["kind"], row["path"], row["summary"], row["source"],
        row["url"], tuple(row["audiences"] or ()), None if reminders is None else tuple(reminders),
    )  # fmt: skip


def apply_plan(session: Session, plan: SyncPlan, *, now: datetime) -> None:
    """Write *plan* into the store in the session's transaction, one event per change."""
    write_timelines(session, plan, now)
    write_milestones(session, plan, now)
    write_file_completions(session, plan, now)
    write_events(session, plan.changes, plan, now)


def write_timelines(session: Session, plan: SyncPlan, now: datetime) -> None:
    table = Timeline.__table__  # type: ignore[attr-defined]
    stored = plan.stored
    new = [{**d.columns(), "updated_at": now} for t, d in plan.timelines.items() if t not in stored.timelines]
    if new:
        session.execute(insert(table), new)
    for timeline_id in plan.timeline_updates():
        if timeline_id in stored.timelines:
            values = {**plan.timelines[timeline_id].columns(), "updated_at": now, "removed_at": None}
            session.execute(update(table).where(table.c.id == timeline_id).values(**values))
    gone = [t for t in stored.timelines if t not in plan.timelines and t not in stored.removed_timelines]
    if gone:
        session.execute(update(table).where(table.c.id.in_(gone)).values(removed_at=now, updated_at=now))


def write_milestones(session: Session, plan: SyncPlan, now: datetime) -> None:
    """Insert new rows, update changed ones (a new revision when an event says so), mark removed."""
    table = Milestone.__table__  # type: ignore[attr-defined]
    stored = plan.stored.milestones
    significant = {(c.timeline_id, c.milestone_key) for c in plan.changes if c.milestone_key is not None}
    new = [
        {**data.columns(), "revision": 0, "updated_at": now}
        for key, data in plan.milestones.items()
        if key not in stored
    ]
    if new:
        session.execute(insert(table), new)
    touched = set(plan.silent_updates()) | {key for key in significant if key in stored and key in plan.milestones}
    for key in sorted(touched):
        row_id, revision, _ = stored[key]
        values = plan.milestones[key].columns()
        if key in significant:
            values.update(revision=revision + 1, updated_at=now)
        session.execute(update(table).where(table.c.id == row_id).values(**values))
    for key, (row_id, revision, old) in stored.items():
        if key not in plan.milestones and old.status != "removed":
            values = {"status": "removed", "revision": revision + 1, "updated_at": now}
            session.execute(update(table).where(table.c.id == row_id).values(**values))


def write_file_completions(session: Session, plan: SyncPlan, now: datetime) -> None:
    table = CompletionRecord.__table__  # type: ignore[attr-defined]
    stored = plan.stored.completions
    new = []
    for key, completion in plan.file_completions.items():
        old = stored.get(key)
        if old is not None and old[0] == completion and old[1] == "file":
            continue
        if old is not None:
            delete_completion(session, key)
        new.append(completion_columns(key, completion, "file", now))
    for key, (_, source) in stored.items():
        if source == "file" and key not in plan.file_completions:
            delete_completion(session, key)
    if new:
        session.execute(insert(table), new)


def delete_completion(session: Session, key: Key, occurrence: str = "") -> None:
    table = CompletionRecord.__table__  # type: ignore[attr-defined]
    where = (table.c.timeline_id == key[0]) & (table.c.milestone_key == key[1]) & (table.c.occurrence == occurrence)
    session.execute(delete(table).where(where))


def completion_columns(key: Key, completion: Completion, source: str, now: datetime, **extra: str) -> dict[str, Any]:
    return {
        "timeline_id": key[0],
        "milestone_key": key[1],
        "occurrence": "",
        "done_at": completion.done_at,
        "done_day": completion.day,
        "source": source,
        "recorded_at": now,
        "note": extra.get("note", ""),
        "link": extra.get("link", ""),
    }


def write_events(session: Session, changes: Iterable[Change], plan: SyncPlan | None, now: datetime) -> None:
    rows = []
    for c in changes:
        revision = None
        if plan is not None and c.milestone_key is not None:
            stored = plan.stored.milestones.get((c.timeline_id, c.milestone_key))
            revision = 0 if stored is None else stored[1] + 1
        detail = {"title": c.title, "zone": c.zone, "all_day": c.all_day}
        if c.fields:
            detail["fields"] = list(c.fields)
        rows.append(
            {"at": now, "kind": c.kind, "timeline_id": c.timeline_id, "milestone_key": c.milestone_key,
             "revision": revision, "old_at": c.old_at, "new_at": c.new_at, "detail": detail}
        )  # fmt: skip
    if rows:
        session.execute(insert(Event.__table__), rows)  # type: ignore[attr-defined]


def rules_from_rows(rows: Iterable[MilestoneData], paths: Mapping[str, str]) -> dict[Key, DateRule]:
    """Rebuild date rules from stored expressions (used when a completion re-resolves dates)."""
    rules = {}
    for data in rows:
        exprs = {name: parse_expr(text) if text else None for name, text in
                 (("due", data.due_expr), ("starts", data.starts_expr), ("ends", data.ends_expr))}  # fmt: skip
        key = (data.timeline_id, data.key)
        lines = {"id": data.line}
        rules[key] = DateRule(key, data.zone, exprs["due"], exprs["starts"], exprs["ends"], data.repeat,
                              paths.get(data.timeline_id, ""), lines)  # fmt: skip
    return rules


def with_dates(data: MilestoneData, dates: ResolvedDates) -> MilestoneData:
    return replace(
        data,
        due_at=dates.due.at() if dates.due else None,
        starts_at=dates.starts.at() if dates.starts else None,
        ends_at=dates.ends.at() if dates.ends else None,
    )
