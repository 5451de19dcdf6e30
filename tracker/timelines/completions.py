"""Record that a milestone is done, then re-resolve the dates that count from it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import insert
from sqlmodel import Session, select

from tracker.store.models import CompletionRecord
from tracker.text import find_refused
from tracker.timelines.dates import suggest
from tracker.timelines.diff import Change, Stored, SyncPlan, change, diff_milestones, rules_from_rows, with_dates
from tracker.timelines.files import errors_in
from tracker.timelines.resolve import Completion, Key, resolve_dates
from tracker.timelines.sync import completion_columns, delete_completion, load_stored, write_events, write_milestones
from tracker.timelines.views import MilestoneView, nearest_occurrence


class CompletionError(ValueError):
    """The milestone to complete does not exist (the message says what does)."""


class AlreadyDoneError(CompletionError):
    """The step is done already: a second completion would silently replace the first (amend it instead)."""

    def __init__(self, reference: str, record: CompletionRecord) -> None:
        super().__init__(f"{reference} is already done")
        self.reference = reference
        # Plain values: the row is gone with its session by the time a caller words the refusal.
        self.done_at, self.day, self.note, self.link = record.done_at, record.done_day, record.note, record.link


class NothingToReopenError(CompletionError):
    """The step has no completion to withdraw, or its completion is written in its file."""


class CompletionInputError(CompletionError):
    """A completion's time, note or link that cannot be recorded; *field* names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


# A completion is a fact: it happened, so not later than now (a day's slack for a date written in
# a zone ahead). Dates counted from it ('draft.done + 14d', up to 100 years either way) then stay
# within the years a timeline may use, so one completion cannot make every later sync fail.
EARLIEST_DONE = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
LONGEST_NOTE = 2000


@dataclass(frozen=True)
class DoneRequest:
    reference: str  # "timeline/milestone"
    done_at: datetime
    day: date | None = None  # when the completion was given as a plain date
    note: str = ""
    link: str = ""
    source: str = "cli"
    amend: bool = False  # change a recorded completion instead of refusing a second one
    keep: frozenset[str] = frozenset()  # amending: "at", "note", "link" not given, kept as recorded
    who: str = ""  # "cli:USER" or "api": written on the event


@dataclass(frozen=True)
class ReopenRequest:
    reference: str  # "timeline/milestone"
    note: str = ""  # why, written on the event and quoted in a correction
    occurrence: str | None = None  # a repeating step: the occurrence (its local date); None: the latest done
    who: str = ""


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
    check_request(request, now)
    stored = load_stored(session)
    key = find_milestone(stored, request.reference)
    occurrence = nearest_occurrence(view, request.done_at) if view is not None else ""
    request = with_recorded(request, recorded_completion(session, key, occurrence))
    delete_completion(session, key, occurrence)
    values = completion_columns(key, Completion(request.done_at, request.day), request.source, now,
                                note=request.note, link=request.link)  # fmt: skip
    session.execute(insert(CompletionRecord.__table__).values({**values, "occurrence": occurrence}))  # type: ignore[attr-defined]
    kind = "amended" if request.amend else "completed"  # an amendment opens nothing again: no second 'opened'
    completed = change(kind, stored.milestones[key][2], new_at=request.done_at, who=request.who, note=request.note)
    if occurrence:
        return finish(session, stored, [completed], now, actor=request.who)
    completions = {k: c for k, (c, _) in stored.completions.items()}
    completions[key] = Completion(request.done_at, request.day)
    return finish(session, stored, [completed], now, completions, actor=request.who)


def record_reopen(session: Session, request: ReopenRequest, *, now: datetime) -> list[Change]:
    """Remove a completion and move `.done` dependents back; return what changed (notices follow the events)."""
    check_note(request.note)
    stored = load_stored(session)
    key = find_milestone(stored, request.reference)
    occurrence = request.occurrence if request.occurrence is not None else latest_done(session, key)
    record = recorded_completion(session, key, occurrence)
    if record is None:
        raise NothingToReopenError(f"{request.reference} is not done: there is no completion to reopen")
    if record.source == "file":
        path = stored.timelines[key[0]].path
        raise NothingToReopenError(f"{request.reference} is done in its file ({path}: done:); remove it there and sync")
    delete_completion(session, key, occurrence)
    reopened = change("reopened", stored.milestones[key][2], old_at=record.done_at, who=request.who, note=request.note)
    if occurrence:
        return finish(session, stored, [reopened], now, actor=request.who)
    completions = {k: c for k, (c, _) in stored.completions.items() if k != key}
    return finish(session, stored, [reopened], now, completions, actor=request.who)


def latest_done(session: Session, key: Key) -> str:
    """The occurrence of *key* completed last ('' for a single milestone)."""
    table = CompletionRecord
    found = session.exec(
        select(table.occurrence).where(table.timeline_id == key[0], table.milestone_key == key[1])
    ).all()
    return max(found, default="")


def recorded_completion(session: Session, key: Key, occurrence: str) -> CompletionRecord | None:
    table = CompletionRecord
    found = session.exec(
        select(table).where(table.timeline_id == key[0], table.milestone_key == key[1], table.occurrence == occurrence)
    )
    return found.first()


def with_recorded(request: DoneRequest, record: CompletionRecord | None) -> DoneRequest:
    """*request* as it will be stored: refused if the step is done and this is no amendment (or the other
    way round); an amendment keeps what it does not give."""
    if record is not None and not request.amend:
        raise AlreadyDoneError(request.reference, record)
    if record is None:
        if request.amend:
            raise CompletionError(f"{request.reference} is not done yet: there is no completion to amend")
        return request
    keep = request.keep
    return replace(
        request,
        done_at=record.done_at if "at" in keep else request.done_at,
        day=record.done_day if "at" in keep else request.day,
        note=record.note if "note" in keep else request.note,
        link=record.link if "link" in keep else request.link,
    )


def finish(
    session: Session,
    stored: Stored,
    changes: list[Change],
    now: datetime,
    completions: dict[Key, Completion] | None = None,
    *,
    actor: str,
) -> list[Change]:
    """Re-resolve every live milestone with *completions* and write the cascade, as done by *actor*."""
    live = {key: data for key, (_, _, data) in stored.milestones.items() if data.status != "removed"}
    desired = dict(live)
    if completions is not None:
        paths = {t: data.path for t, data in stored.timelines.items()}
        calendars = {t: data.calendar for t, data in stored.timelines.items()}
        dates, problems = resolve_dates(rules_from_rows(live.values(), paths, calendars), completions)
        # The store only holds rules that resolved once; on doubt keep old dates (a warning is no doubt).
        if not errors_in(problems):
            desired = {key: with_dates(data, dates[key]) for key, data in live.items()}
    plan = SyncPlan(changes + diff_milestones(desired, stored), stored.timelines, desired, {}, stored)
    write_milestones(session, plan, now)
    write_events(session, plan.changes, plan, now, actor=actor)
    return plan.changes


def check_request(request: DoneRequest, now: datetime) -> None:
    """Refuse a completion in the future or before 2000, a note with control characters, a link that is no web link."""
    if request.done_at > now + FUTURE_SLACK:
        raise CompletionInputError(
            "at", f"{request.done_at:%Y-%m-%d %H:%M} UTC is in the future: record a step once done"
        )
    if request.done_at < EARLIEST_DONE:
        raise CompletionInputError("at", "a completion before 2000 cannot be recorded: give the date it was done")
    if len(request.link) > LONGEST_NOTE:
        raise CompletionInputError("link", f"at most {LONGEST_NOTE} characters")
    check_note(request.note)
    if request.link and not is_web_link(request.link):
        raise CompletionInputError("link", "write a web address, https://… (no spaces or control characters)")


def check_note(note: str) -> None:
    if len(note) > LONGEST_NOTE:
        raise CompletionInputError("note", f"at most {LONGEST_NOTE} characters")
    refused = find_refused(note, allowed="\n")
    if refused is not None:
        raise CompletionInputError("note", f"character {refused[0]} is {refused[1]}; remove it")


def is_web_link(link: str) -> bool:
    """Whether *link* is an http(s) address with a host and nothing a page or an email would misread."""
    parts = urlsplit(link)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and link.isprintable() and " " not in link
