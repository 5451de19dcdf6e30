"""What to say to whom: a claimed outbox row and the store's view of it → an email request.

Pure: the dispatcher loads the rows, subscribers and milestones, and passes the time.
A row that no longer makes sense (the subscriber left, the milestone is gone) gives a
Skip with the reason, recorded instead of a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tracker.delivery.changes import stored_lines
from tracker.delivery.outbox import Claimed, slot_offset
from tracker.delivery.planning import local_day
from tracker.emails import ChangeLine, EmailRequest, Recipient
from tracker.subscribers.links import Links
from tracker.text import describe_error
from tracker.timelines.dates import Offset, format_offset
from tracker.timelines.views import (
    MilestoneView,
    Problems,
    find_occurrence,
    follows,
    list_upcoming,
    occurrence_of,
    time_left,
    timeline_title_in,
)

DIGEST_WINDOW = timedelta(weeks=3)
LATE = timedelta(hours=1)  # sent later than this, a reminder says the time actually left

LINE_SETS = 256  # distinct texts of lines composed and kept at once: a pass tells a few change sets


@dataclass(frozen=True)
class Person:
    """The subscriber as a message needs them."""

    id: int
    email: str
    name: str
    language: str
    timezone: str
    state: str
    audiences: tuple[str, ...]
    timelines: tuple[str, ...] | None
    links: Links


@dataclass(frozen=True)
class Skip:
    """Why a claimed row is not sent."""

    reason: str
    state: str = "cancelled"  # or "skipped", or "quarantined": it cannot be composed, and never will as it is


@dataclass(frozen=True)
class Store:
    """The milestones, and the events notices answer, as loaded for one batch."""

    views: Mapping[tuple[str, str], MilestoneView]
    event_milestones: Mapping[int, tuple[str, str]]  # event id → (timeline, milestone)
    event_notes: Mapping[int, str] = field(default_factory=dict)  # event id → the note given with it
    set_aside: Problems = field(default_factory=dict)  # milestones that do not read ("timeline/key") → why
    # A changed row's lines as composed, by their stored text: a change set's readers share one tuple
    # (and so the renderer's content key), made once per batch instead of once per message.
    changes: dict[str, tuple[ChangeLine, ...] | Skip] = field(default_factory=dict, compare=False)


def compose(row: Claimed, person: Person | None, store: Store, now: datetime) -> EmailRequest | Skip:
    """Return the request to render for *row*, or why it is not sent; a row that cannot be composed is quarantined."""
    try:
        return compose_row(row, person, store, now)
    except (OSError, MemoryError):
        raise  # the machine's trouble, not the row's: tried again later (rendering.TRANSIENT)
    except Exception as exc:  # noqa: BLE001  # one row's bad data quarantines that row, not the pass
        return Skip(f"could not compose: {describe_error(exc)}", state="quarantined")


def compose_row(row: Claimed, person: Person | None, store: Store, now: datetime) -> EmailRequest | Skip:
    if row.kind == "sign-in":
        return compose_sign_in(row, person, now)
    if person is None:
        return Skip("subscriber removed")
    if row.kind == "confirm":
        if person.state != "pending" or person.links.confirm is None:
            return Skip(f"subscriber is {person.state}")
        return request(row, person, now, subscribed_to=followed_titles(person, store))
    if person.state != "confirmed":
        return Skip(f"subscriber is {person.state}")
    if row.kind == "digest":
        return compose_digest(row, person, store, now)
    if row.kind == "changed":
        return compose_changed(row, person, store, now)
    view = store.views.get((row.timeline_id, row.milestone_key))
    if view is None:
        reason = store.set_aside.get(f"{row.timeline_id}/{row.milestone_key}")
        return Skip("milestone removed") if reason is None else Skip(f"milestone quarantined: {reason}", "quarantined")
    if row.kind == "reminder":
        return compose_reminder(row, person, view, now)
    if row.kind in ("overdue", "delayed"):
        return compose_late(row, person, view, store, now)
    if row.kind in ("opened", "correction"):
        done = store.event_milestones.get(row.event_id or 0)
        predecessor = store.views.get(done) if done else None
        note = store.event_notes.get(row.event_id or 0, "") if row.kind == "correction" else ""
        return request(row, person, now, view=view, predecessor=predecessor, note=note)
    return request(row, person, now, view=view)  # cancelled


def compose_sign_in(row: Claimed, person: Person | None, now: datetime) -> EmailRequest | Skip:
    """The email of a sign-in link, while the link may still be used."""
    if person is None:
        return Skip("sign-in link removed (or its user)")
    if person.state != "unused" or person.links.confirm is None:
        return Skip(f"sign-in link {person.state}")
    minutes = round(((row.deadline_at or now) - row.send_at).total_seconds() / 60)
    return request(row, person, now, offset=str(max(minutes, 1)))


def compose_changed(row: Claimed, person: Person, store: Store, now: datetime) -> EmailRequest | Skip:
    """One message for every milestone of the change set: a line whose milestone is gone or set aside is left out."""
    changes = None if row.lines is None else store.changes.get(row.lines)
    if changes is None:
        changes = change_lines(row, store)
        if row.lines is not None:
            if len(store.changes) >= LINE_SETS:  # kept for as long as the views are, but not without bound
                store.changes.clear()
            store.changes[row.lines] = changes
    return changes if isinstance(changes, Skip) else request(row, person, now, changes=changes)


def change_lines(row: Claimed, store: Store) -> tuple[ChangeLine, ...] | Skip:
    """The lines of *row* with their milestones' views, or why none is left to tell."""
    lines, left_out = [], ""
    # Stored in date order (notices.stored_form): a batch of thousands need not sort them again.
    for line in stored_lines(row.lines, row.timeline_id, row.milestone_key, row.old_at, row.new_at):
        view = store.views.get(line.milestone)
        if view is None:
            reason = store.set_aside.get(f"{line.timeline_id}/{line.key}")
            left_out = left_out or ("milestone removed" if reason is None else f"milestone quarantined: {reason}")
            continue
        lines.append(ChangeLine(view, line.change, line.old_at, line.new_at))
    if not lines:
        return Skip(left_out, "quarantined" if left_out.startswith("milestone quarantined") else "cancelled")
    return tuple(lines)


def compose_reminder(row: Claimed, person: Person, view: MilestoneView, now: datetime) -> EmailRequest | Skip:
    if view.status != "active":
        return Skip(f"milestone {view.status}")
    item = find_occurrence(view, row.occurrence) if row.occurrence else None
    due_at = item.at if item is not None else view.main_at
    if row.occurrence in view.completions:
        return Skip("milestone done")
    if due_at <= now:
        return Skip("deadline passed before it could be sent", state="skipped")
    offset = slot_offset(row.slot) if now - row.send_at < LATE else format_offset(late_offset(view, due_at, now))
    return request(row, person, now, view=view, due_at=due_at, offset=offset)


def compose_late(row: Claimed, person: Person, view: MilestoneView, store: Store, now: datetime) -> EmailRequest | Skip:
    """An `overdue` notice of a step not done, or a `delayed` one of the window waiting for it."""
    if view.status != "active":
        return Skip(f"milestone {view.status}")
    step = view if row.kind == "overdue" else step_before(view, store)
    if step is None or step.status != "active":
        return Skip("the step it waits for is gone or cancelled")
    item = find_occurrence(step, row.occurrence) if row.occurrence else occurrence_of(step, None)
    if item is None or item.occurrence in step.completions:
        return Skip("done since it was planned")
    # Planned for a due day (in the slot): a step moved since, or no longer past due, is not late as said.
    if item.at > now or row.slot.rpartition("@")[2] != local_day(item):
        return Skip("no longer late: its date moved")
    if row.kind == "overdue":
        return request(row, person, now, view=view, due_at=item.at)
    return request(row, person, now, view=view, predecessor=step)


def step_before(view: MilestoneView, store: Store) -> MilestoneView | None:
    timeline, _, key = (view.opens_after or "").rpartition("/")
    return store.views.get((timeline or view.timeline_id, key))


def late_offset(view: MilestoneView, due_at: datetime, now: datetime) -> Offset:
    """What a late reminder states: whole days, else whole hours; under an hour, 'today' (as before issue 14)."""
    left = time_left(view, due_at, now)
    return Offset(days=0) if not left.days and left.minutes < 60 else left


def compose_digest(row: Claimed, person: Person, store: Store, now: datetime) -> EmailRequest | Skip:
    mine = [v for v in store.views.values() if follows(v, person.timelines, person.audiences)]
    items = list_upcoming(mine, now=now, window=DIGEST_WINDOW)  # leaves out what does not read
    if not items:
        return Skip("nothing due in the next three weeks", state="skipped")
    return request(row, person, now, digest=items)


def followed_titles(person: Person, store: Store) -> list[str]:
    if person.timelines is None:
        return []
    titles = {v.timeline_id: timeline_title_in(v, person.language) for v in store.views.values()}
    return [titles.get(t, t) for t in person.timelines]


def request(row: Claimed, person: Person, now: datetime, **values: object) -> EmailRequest:
    recipient = Recipient(person.email, person.name, person.language, person.timezone)
    return EmailRequest(kind=row.kind, recipient=recipient, links=person.links, key=row.key_text, now=now, **values)  # type: ignore[arg-type]
