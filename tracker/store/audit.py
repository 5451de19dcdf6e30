"""The audit log: who did what, read from the events table, newest first and bounded.

`tracker events` and the console's audit page both read it here. Every event row names its
actor: 'cli:USER', 'console:EMAIL', 'api:TOKEN (EMAIL)' (a personal API token), 'api' (the old
shared admin token), 'sync', 'mailer' ('' for events written before the
column existed and not attributable). See docs/console.md, "Audit log".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from tracker.store.models import Event, User
from tracker.text import describe_text

MOST = 1000  # rows one listing shows at most: a page or a terminal, not an export
SUBJECT = 200  # characters of a subject or detail kept


@dataclass(frozen=True)
class AuditQuery:
    """Which events to list: all filters optional; *before* an event id, for the next page."""

    kind: str | None = None
    actor: str | None = None  # exact, or a whole prefix: 'console' lists every 'console:…'
    since: datetime | None = None
    before: int | None = None
    limit: int = 50


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    kind: str
    subject: str  # timeline/milestone, a subscriber's or user's address, or ''
    detail: str  # dates moved, note, link, error: bounded text, no control characters


def list_events(session: Session, query: AuditQuery) -> list[AuditEntry]:
    """The events *query* selects, newest first, at most MOST."""
    statement = select(Event).order_by(col(Event.id).desc()).limit(max(1, min(query.limit, MOST)))
    if query.kind:
        statement = statement.where(col(Event.kind) == query.kind)
    if query.actor:
        statement = statement.where(
            (col(Event.actor) == query.actor) | col(Event.actor).startswith(f"{query.actor}:", autoescape=True)
        )
    if query.since is not None:
        statement = statement.where(col(Event.at) >= query.since)
    if query.before is not None:
        statement = statement.where(col(Event.id) < query.before)
    return [entry_of(event) for event in session.exec(statement)]


def entry_of(event: Event) -> AuditEntry:
    assert event.id is not None
    detail = event.detail or {}
    return AuditEntry(event.id, event.at, bounded(event.actor), event.kind, subject_of(event, detail),
                      detail_of(event, detail))  # fmt: skip


def subject_of(event: Event, detail: dict[str, Any]) -> str:
    if event.milestone_key:
        return bounded(f"{event.timeline_id}/{event.milestone_key}")
    if detail.get("channel"):  # a channel of the channels file (docs/channels.md)
        return bounded(f"channel:{detail['channel']}")
    if detail.get("ref") and not detail.get("email"):  # a subscriber erased since: their one-way reference
        return bounded(f"erased:{detail['ref']}")
    return bounded(str(detail.get("email") or event.timeline_id or ""))


def detail_of(event: Event, detail: dict[str, Any]) -> str:
    """What changed, in words every language reads alike: dates (UTC), then the note, link, role or error."""
    parts = []
    if event.old_at or event.new_at:
        parts.append(f"{stamp(event.old_at)} → {stamp(event.new_at)}" if event.old_at else stamp(event.new_at))
    for name in ("note", "link", "role", "method", "error", "reason", "name", "token", "client"):
        value = detail.get(name)
        if value:
            parts.append(f"{name}: {value}")
    if detail.get("everywhere"):
        parts.append("everywhere")
    return bounded("; ".join(parts))


def stamp(at: datetime | None) -> str:
    return "—" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def bounded(text: str) -> str:
    return describe_text(text)[:SUBJECT]


def console_actor(email: str) -> str:
    """The actor of what a signed-in user does in the console."""
    return f"console:{email}"


def account_event(kind: str, user: User, now: datetime, actor: str | None = None, **detail: Any) -> Event:
    """An event of a console account (signed in or out: by that user; added, changed, removed: by *actor*).

    Its kind starts with 'console_': the notice handler re-plans nothing for it."""
    who = console_actor(user.email) if actor is None else actor
    return Event(at=now, kind=kind, actor=who, detail={"email": user.email, **detail})


def request_event(now: datetime, email: str, client: str, *, known: bool) -> Event:
    """A sign-in link asked for an address (*known*: it has an account; only then is a link sent)."""
    return Event(at=now, kind="console_sign_in_requested", actor="anonymous",
                 detail={"email": email, "client": client, "reason": "" if known else "no such user"})  # fmt: skip


def refusal_event(now: datetime, email: str, reason: str, *, method: str) -> Event:
    """A console sign-in refused (an address unknown or not verified, a token that failed a check)."""
    return Event(at=now, kind="console_sign_in_refused", actor=method, detail={"email": email, "reason": reason,
                 "method": method})  # fmt: skip
