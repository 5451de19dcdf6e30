"""Sync timeline specs into the store: read what is stored, plan the diff, apply it with events.

`plan_sync` is a dry run (read only); `apply_plan` writes rows and events in the
caller's transaction, so a sync either happens whole or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlmodel import Session

from tracker.store.bulk import insert_rows
from tracker.store.models import CompletionRecord, Event, Milestone, Timeline
from tracker.timelines.diff import (
    MILESTONE_COLUMNS,
    Change,
    MilestoneData,
    Stored,
    SyncPlan,
    TimelineData,
    plan_changes,
    titles_from_column,
)
from tracker.timelines.files import FileProblem, TimelineSpec
from tracker.timelines.resolve import Completion, Key
from tracker.timelines.workdays import calendar_from_column


def plan_sync(
    session: Session, specs: Sequence[TimelineSpec], default_reminders: Sequence[str]
) -> tuple[SyncPlan | None, list[FileProblem]]:
    """Compute what syncing *specs* would change; None and problems when they do not resolve."""
    return plan_changes(specs, load_stored(session), default_reminders)


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
        values["overdue"] = None if values["overdue"] is None else tuple(values["overdue"])
        values["titles"] = titles_from_column(values["titles"])
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
        titles_from_column(row["titles"]), calendar_from_column(row["calendar"]),
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
        insert_rows(session, table, new)
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
    new = [new_milestone_row(data, now) for key, data in plan.milestones.items() if key not in stored]
    if new:
        insert_rows(session, table, new)
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


def new_milestone_row(data: MilestoneData, now: datetime) -> dict[str, Any]:
    values = data.columns()
    values["revision"] = 0
    values["updated_at"] = now
    return values


def write_file_completions(session: Session, plan: SyncPlan, now: datetime) -> None:
    table = CompletionRecord.__table__  # type: ignore[attr-defined]
    stored = plan.stored.completions
    new = []
    for key, completion in plan.file_completions.items():
        old = stored.get(key)
        if old is not None and old[0] == completion:
            continue  # the file agrees with what is recorded (a `tracker done` keeps its note and link)
        if old is not None:  # the file's date wins; a note and link given to `tracker done` stay
            where = (table.c.timeline_id == key[0]) & (table.c.milestone_key == key[1]) & (table.c.occurrence == "")
            values = {"done_at": completion.done_at, "done_day": completion.day, "source": "file", "recorded_at": now}
            session.execute(update(table).where(where).values(values))
            continue
        new.append(completion_columns(key, completion, "file", now))
    for key, (_, source) in stored.items():
        if source == "file" and key not in plan.file_completions:
            delete_completion(session, key)
    if new:
        insert_rows(session, table, new)


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


def new_change_set() -> str:
    """Return a fresh change-set id: what one sync, one completion or one API call changes together."""
    return uuid.uuid4().hex


def write_events(
    session: Session,
    changes: Iterable[Change],
    plan: SyncPlan | None,
    now: datetime,
    change_set: str | None = None,
    actor: str = "sync",
) -> None:
    """Write one event per change, all of one change set (a new one unless given): members hear of it once.

    *actor* is who made the change ('sync', 'cli:USER', 'console:EMAIL', 'api'): the audit log's who."""
    change_set = change_set or new_change_set()
    rows = []
    for c in changes:
        revision = None
        if plan is not None and c.milestone_key is not None:
            stored = plan.stored.milestones.get((c.timeline_id, c.milestone_key))
            revision = 0 if stored is None else stored[1] + 1
        detail = {"title": c.title, "zone": c.zone, "all_day": c.all_day}
        if c.fields:
            detail["fields"] = list(c.fields)
        if c.who or c.note:  # a completion, amendment or reopening: who did it and why
            detail.update(who=c.who, note=c.note)
        rows.append(
            {"at": now, "kind": c.kind, "timeline_id": c.timeline_id, "milestone_key": c.milestone_key,
             "revision": revision, "old_at": c.old_at, "new_at": c.new_at, "detail": detail,
             "change_set": change_set, "actor": actor}
        )  # fmt: skip
    if rows:
        insert_rows(session, Event.__table__, rows)  # type: ignore[attr-defined]
