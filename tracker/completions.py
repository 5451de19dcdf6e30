"""Record that a milestone is done, then re-resolve the dates that count from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import insert
from sqlmodel import Session

from tracker.dates import suggest
from tracker.diff import Change, Stored, SyncPlan, change, diff_milestones, rules_from_rows, with_dates
from tracker.models import CompletionRecord
from tracker.planning import MilestoneView, nearest_occurrence
from tracker.resolve import Completion, Key, resolve_dates
from tracker.sync import completion_columns, delete_completion, load_stored, write_events, write_milestones


class CompletionError(ValueError):
    """The milestone to complete does not exist (the message says what does)."""


@dataclass(frozen=True)
class DoneRequest:
    reference: str  # "timeline/milestone"
    done_at: datetime
    day: date | None = None  # when the completion was given as a plain date
    note: str = ""
    link: str = ""
    source: str = "cli"


def find_milestone(stored: Stored, reference: str) -> Key:
    """Return the key of `timeline/milestone`, or raise CompletionError with a hint."""
    timeline, _, milestone = reference.partition("/")
    live = {key for key, (_, _, data) in stored.milestones.items() if data.status != "removed"}
    if not milestone:
        raise CompletionError(f"write TIMELINE/MILESTONE, e.g. hlpf-2017-contribution/revised-draft, not {reference!r}")
    if (timeline, milestone) in live:
        return (timeline, milestone)
    timelines = {key[0] for key in live}
    if timeline not in timelines:
        raise CompletionError(f"no timeline {timeline!r}{suggest(timeline, timelines)}")
    names = [key[1] for key in live if key[0] == timeline]
    raise CompletionError(f"no milestone {milestone!r} in {timeline!r}{suggest(milestone, names)}")


def record_done(session: Session, request: DoneRequest, view: MilestoneView | None, *, now: datetime) -> list[Change]:
    """Store the completion and reschedule `.done` dependents; return what changed."""
    stored = load_stored(session)
    key = find_milestone(stored, request.reference)
    occurrence = nearest_occurrence(view, request.done_at) if view is not None else ""
    delete_completion(session, key, occurrence)
    values = completion_columns(key, Completion(request.done_at, request.day), request.source, now,
                                note=request.note, link=request.link)  # fmt: skip
    session.execute(insert(CompletionRecord.__table__).values({**values, "occurrence": occurrence}))  # type: ignore[attr-defined]
    completed = change("completed", stored.milestones[key][2], new_at=request.done_at)
    if occurrence:
        return finish(session, stored, [completed], now)
    completions = {k: c for k, (c, _) in stored.completions.items()}
    completions[key] = Completion(request.done_at, request.day)
    return finish(session, stored, [completed], now, completions)


def finish(
    session: Session,
    stored: Stored,
    changes: list[Change],
    now: datetime,
    completions: dict[Key, Completion] | None = None,
) -> list[Change]:
    """Re-resolve every live milestone with *completions* and write the cascade."""
    live = {key: data for key, (_, _, data) in stored.milestones.items() if data.status != "removed"}
    desired = dict(live)
    if completions is not None:
        paths = {t: data.path for t, data in stored.timelines.items()}
        dates, problems = resolve_dates(rules_from_rows(live.values(), paths), completions)
        if not problems:  # the store only holds rules that resolved once; on doubt keep old dates
            desired = {key: with_dates(data, dates[key]) for key, data in live.items()}
    plan = SyncPlan(changes + diff_milestones(desired, stored), stored.timelines, desired, {}, stored)
    write_milestones(session, plan, now)
    write_events(session, plan.changes, plan, now)
    return plan.changes
