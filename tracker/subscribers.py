"""Subscribers: checked input (one by one or from CSV), saved idempotently, with events."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Literal

from email_validator import EmailNotValidError, validate_email
from sqlmodel import Session, select

from tracker.dates import DateError, get_zone, suggest
from tracker.emails import Links
from tracker.models import Event, Subscriber
from tracker.schedules import Problem
from tracker.tokens import Purpose, make_token, read_token

LANGUAGES = ("ar", "zh", "en", "fr", "ru", "es")
COLUMNS = ("email", "name", "language", "audiences", "timelines")
DEFAULT_AUDIENCES = ("membership",)
Outcome = Literal["added", "updated", "unchanged"]


class SubscriberError(ValueError):
    """Input that cannot become a subscriber; the message says why."""


@dataclass(frozen=True)
class SubscriberInput:
    email: str
    key: str  # lower-cased address: one subscription per mailbox
    name: str = ""
    language: str = "en"
    timezone: str = "Europe/Zurich"
    audiences: tuple[str, ...] = DEFAULT_AUDIENCES
    timelines: tuple[str, ...] | None = None  # None: every timeline


@dataclass(frozen=True)
class Known:
    """What exists in the store, to catch typos in audiences and timelines."""

    timelines: frozenset[str]
    audiences: frozenset[str]


def normalise_email(text: str) -> tuple[str, str]:
    """Return the normalised address and its lower-cased key, or raise SubscriberError."""
    if "\r" in text or "\n" in text:
        raise SubscriberError("an email address cannot contain a line break")
    try:
        address = validate_email(text.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise SubscriberError(f"{text.strip()!r} is not an email address: {exc}") from None
    return address, address.lower()


def split_list(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(";") if part.strip())


def check_input(raw: Mapping[str, str | None], *, zone: str, known: Known) -> SubscriberInput:
    """Check one subscriber's fields (CSV row or command options); raise SubscriberError."""
    email, key = normalise_email(raw.get("email") or "")
    language = (raw.get("language") or "en").strip().lower()
    if language not in LANGUAGES:
        raise SubscriberError(
            f"language {language!r} is not one of {', '.join(LANGUAGES)}{suggest(language, LANGUAGES)}"
        )
    timezone = (raw.get("timezone") or zone).strip()
    try:
        get_zone(timezone)
    except DateError as exc:
        raise SubscriberError(str(exc)) from None
    audiences = split_list(raw.get("audiences")) or DEFAULT_AUDIENCES
    timelines = split_list(raw.get("timelines")) or None
    check_names("audience", audiences, known.audiences)
    check_names("timeline", timelines or (), known.timelines)
    name = " ".join((raw.get("name") or "").split())  # no line breaks reach an email header
    return SubscriberInput(email, key, name, language, timezone, audiences, timelines)


def check_names(what: str, names: Iterable[str], known: frozenset[str]) -> None:
    for name in names:
        if known and name not in known:
            hint = suggest(name, known) or " (known: " + ", ".join(sorted(known)) + ")"
            raise SubscriberError(f"no {what} {name!r}{hint}")


def parse_csv(
    text: str, path: str, *, zone: str, known: Known
) -> tuple[list[tuple[int, SubscriberInput]], list[Problem]]:
    """Read email,name,language,audiences,timelines rows; return good rows (with lines) and problems."""
    rows = csv.reader(io.StringIO(text))
    good: list[tuple[int, SubscriberInput]] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for values in rows:
        line = rows.line_num
        if not any(v.strip() for v in values) or (line == 1 and values and values[0].strip().lower() == "email"):
            continue
        try:
            data = check_input(dict(zip(COLUMNS, values, strict=False)), zone=zone, known=known)
        except SubscriberError as exc:
            problems.append(Problem(path, line, str(exc)))
            continue
        if data.key in seen:
            problems.append(Problem(path, line, f"{data.email} is already on line {seen[data.key]}"))
            continue
        seen[data.key] = line
        good.append((line, data))
    return good, problems


def known_names(session: Session) -> Known:
    from tracker.models import Milestone, Timeline

    timelines = frozenset(session.exec(select(Timeline.id).where(Timeline.removed_at.is_(None))))  # type: ignore[union-attr]
    audiences = {a for t in session.exec(select(Timeline.audiences)) for a in (t or ())}
    audiences |= set(session.exec(select(Milestone.owner).where(Milestone.owner.is_not(None))))  # type: ignore[union-attr]
    return Known(timelines, frozenset(a for a in audiences if a))


def find(session: Session, email: str) -> Subscriber | None:
    _, key = normalise_email(email)
    return session.exec(select(Subscriber).where(Subscriber.email_key == key)).first()


def save(session: Session, data: SubscriberInput, *, confirmed: bool, now: datetime) -> tuple[Subscriber, Outcome]:
    """Add or update one subscriber; saving the same data again changes nothing."""
    subscriber = session.exec(select(Subscriber).where(Subscriber.email_key == data.key)).first()
    if subscriber is None:
        subscriber = Subscriber(email=data.email, email_key=data.key, created_at=now, changed_at=now)
        apply_input(subscriber, data)
        outcome: Outcome = "added"
    else:
        outcome = "updated" if apply_input(subscriber, data) else "unchanged"
        if outcome == "updated":
            subscriber.changed_at = now
    if confirmed and subscriber.state in ("pending", "unsubscribed"):
        subscriber.state, subscriber.confirmed_at = "confirmed", now
        outcome = "added" if outcome == "added" else "updated"
    session.add(subscriber)
    session.flush()
    if outcome != "unchanged":
        record(session, f"subscriber_{outcome}", subscriber, now)
        if subscriber.confirmed_at == now:
            record(session, "subscriber_confirmed", subscriber, now)
    return subscriber, outcome


def apply_input(subscriber: Subscriber, data: SubscriberInput) -> bool:
    """Copy *data* onto *subscriber*; return whether anything changed."""
    values = {  # the address keeps the spelling it was first given: same mailbox, same key
        "name": data.name,
        "language": data.language,
        "timezone": data.timezone,
        "audiences": list(data.audiences),
        "timelines": None if data.timelines is None else list(data.timelines),
    }
    changed = any(getattr(subscriber, k) != v for k, v in values.items())
    for name, value in values.items():
        setattr(subscriber, name, value)
    return changed


def record(session: Session, kind: str, subscriber: Subscriber, now: datetime) -> None:
    session.add(Event(at=now, kind=kind, subscriber_id=subscriber.id, detail={"email": subscriber.email}))


def unsubscribe(session: Session, subscriber: Subscriber, now: datetime) -> bool:
    """Stop every message to *subscriber*; return False when already unsubscribed."""
    if subscriber.state == "unsubscribed":
        return False
    subscriber.state, subscriber.changed_at = "unsubscribed", now
    session.add(subscriber)
    record(session, "subscriber_unsubscribed", subscriber, now)
    return True


def rotate(session: Session, subscriber: Subscriber, purposes: Iterable[Purpose], now: datetime) -> None:
    """Revoke the subscriber's tokens of *purposes*; new links carry the next version."""
    for purpose in purposes:
        field = f"{purpose}_version"
        setattr(subscriber, field, getattr(subscriber, field) + 1)
    subscriber.changed_at = now
    session.add(subscriber)
    record(session, "subscriber_tokens_rotated", subscriber, now)


def links_for(subscriber: Subscriber, secret: bytes, base_url: str, from_address: str) -> Links:
    """The links every message to *subscriber* carries, signed with the current token versions."""
    assert subscriber.id is not None
    base = base_url.rstrip("/")
    manage = make_token(secret, "manage", subscriber.id, subscriber.manage_version)
    feed = make_token(secret, "feed", subscriber.id, subscriber.feed_version)
    confirm = make_token(secret, "confirm", subscriber.id, subscriber.confirm_version)
    mailbox = parseaddr(from_address)[1] or "tracker@localhost"
    return Links(
        unsubscribe=f"{base}/unsubscribe/{manage}",
        unsubscribe_mailto=f"mailto:{mailbox}?subject=unsubscribe%20{manage}",
        preferences=f"{base}/preferences/{manage}",
        feed=f"{base}/feeds/me/{feed}.ics",
        confirm=f"{base}/confirm/{confirm}" if subscriber.state == "pending" else None,
    )


def by_token(session: Session, secret: bytes, purpose: Purpose, token: str) -> Subscriber | None:
    """The subscriber a current token of *purpose* names; None for a wrong, forged or rotated one."""
    found = read_token(secret, purpose, token)
    if found is None:
        return None
    subscriber = session.get(Subscriber, found[0])
    if subscriber is None or getattr(subscriber, f"{purpose}_version") != found[1]:
        return None
    return subscriber


def confirm(session: Session, subscriber: Subscriber, now: datetime) -> bool:
    """Confirm a pending subscription (double opt-in); return False when there was nothing to do."""
    if subscriber.state != "pending":
        return False
    subscriber.state, subscriber.confirmed_at, subscriber.changed_at = "confirmed", now, now
    subscriber.confirm_version += 1  # the link is spent: using it again changes nothing
    session.add(subscriber)
    record(session, "subscriber_confirmed", subscriber, now)
    return True
