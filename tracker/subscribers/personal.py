"""Personal data on request: everything held about one subscriber as a download, and erasure.

The download holds the subscriber's record, the messages sent or planned to them, the events
about them and the bounces of their messages, and nothing of anyone else: no link tokens or
their versions, no secretariat addresses (an actor is shown by its kind: 'console',
'subscriber', 'mailer'), no server notes written by someone else. Erasure deletes the subscriber
and what was still to be sent to them; the delivery log and the audit keep their rows (counts
stay right) with the address and name taken out, and one `erasures` row ties the subscriber's
old number to a one-way reference: an HMAC of the normalised address with the secret key, so a
later request about the same address can be matched, while the store no longer says whose it was
(docs/security.md, "Erasure").
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from tracker.store.models import BounceReport, Delivery, Erasure, Event, Quarantine, Subscriber

MOST = 5000  # messages, and events, a download lists at most (newest first); the counts say how many in all
UNSENT = ("planned", "held", "claimed", "quarantined")  # removed at erasure: nothing more goes out
PERSONAL_KEYS = ("email", "name", "to")  # keys of an event's detail that hold the person's own data
REF_LENGTH = 32  # hex characters: 128 bits of the HMAC


def person_reference(secret: bytes, email_key: str) -> str:
    """The one-way reference of a normalised address: the same address always gives the same reference."""
    digest = hmac.new(secret, b"erased-subscriber\0" + email_key.encode(), hashlib.sha256).hexdigest()
    return digest[:REF_LENGTH]


def stranger(secret: bytes, email_key: str) -> str:
    """How the audit log names an address with no console account: its reference, never the address.

    People type their own (subscriber) addresses into the console's sign-in form; the log keeps
    who tried without keeping an address erasure could not reach (erasure matches this reference).
    """
    return f"ref:{person_reference(secret, email_key)}"


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def export_person(session: Session, subscriber: Subscriber, now: datetime) -> dict[str, Any]:
    """Everything held about *subscriber*, as data ready for JSON (every value is encoded, never spliced)."""
    assert subscriber.id is not None
    messages, message_count = person_messages(session, subscriber.id)
    events, event_count = person_events(session, subscriber.id)
    data: dict[str, Any] = {
        "about": "Everything this Tracker holds about one subscriber, exported on their request.",
        "exported_at": iso(now),
        "subscriber": record_of(subscriber),
        "messages_total": message_count,
        "messages": messages,
        "events_total": event_count,
        "events": events,
        "bounces": person_bounces(session, subscriber.id),
    }
    if message_count > len(messages) or event_count > len(events):
        data["note"] = f"Only the newest {MOST} messages and {MOST} events are listed; the totals count them all."
    return data


def record_of(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "email": subscriber.email, "name": subscriber.name, "language": subscriber.language,
        "timezone": subscriber.timezone, "audiences": subscriber.audiences or [], "timelines": subscriber.timelines,
        "digest": subscriber.digest, "reminders": subscriber.reminders, "state": subscriber.state,
        "created_at": iso(subscriber.created_at), "confirmed_at": iso(subscriber.confirmed_at),
        "changed_at": iso(subscriber.changed_at),
    }  # fmt: skip


def person_messages(session: Session, subscriber_id: int) -> tuple[list[dict[str, Any]], int]:
    """The newest MOST outbox rows of the subscriber, and how many there are."""
    mine = col(Delivery.subscriber_id) == subscriber_id
    total = count(session, select(Delivery.id).where(mine))
    rows = session.exec(select(Delivery).where(mine).order_by(col(Delivery.id).desc()).limit(MOST))
    return [message_of(row) for row in rows], total


def message_of(row: Delivery) -> dict[str, Any]:
    return {
        "kind": row.kind, "timeline": row.timeline_id or None, "milestone": row.milestone_key or None,
        "occurrence": row.occurrence or None, "state": row.state, "planned_for": iso(row.send_at),
        "sent_at": iso(row.sent_at), "attempts": row.attempts, "server_reply": row.reply or None,
        "error": row.last_error or None,
    }  # fmt: skip


def person_bounces(session: Session, subscriber_id: int) -> list[dict[str, Any]]:
    """The bounces of messages to the subscriber: when, hard or soft, and what their server said."""
    mine = col(BounceReport.subscriber_id) == subscriber_id
    rows = session.exec(select(BounceReport).where(mine).order_by(col(BounceReport.id).desc()).limit(MOST))
    return [{"received_at": iso(r.received_at), "kind": r.kind, "delivery": r.delivery_id, "status": r.status,
             "diagnostic": r.diagnostic} for r in rows]  # fmt: skip


def person_events(session: Session, subscriber_id: int) -> tuple[list[dict[str, Any]], int]:
    """The newest MOST events about the subscriber (who acted shown by kind only), and how many there are."""
    mine = col(Event.subscriber_id) == subscriber_id
    total = count(session, select(Event.id).where(mine))
    rows = session.exec(select(Event).where(mine).order_by(col(Event.id).desc()).limit(MOST))
    return [{"at": iso(e.at), "kind": e.kind, "by": e.actor.partition(":")[0] or None} for e in rows], total


def count(session: Session, ids: Any) -> int:
    return int(session.execute(sa_select(func.count()).select_from(ids.subquery())).scalar_one())


def erase_person(session: Session, subscriber: Subscriber, secret: bytes, now: datetime, actor: str) -> str:
    """Remove *subscriber*: nothing more is sent, the log and audit keep counts and the reference; return it."""
    assert subscriber.id is not None
    number, ref = subscriber.id, person_reference(secret, subscriber.email_key)
    wipe = scrubber(personal_words(subscriber))
    deliveries = Delivery.__table__  # type: ignore[attr-defined]
    mine = deliveries.c.subscriber_id == number
    session.execute(delete(deliveries).where(mine, deliveries.c.state.in_(UNSENT)))
    scrub_deliveries(session, number, wipe)
    scrub_bounces(session, number, wipe)
    scrub_events(session, number, ref, wipe)
    quarantine = Quarantine.__table__  # type: ignore[attr-defined]
    session.execute(delete(quarantine).where(quarantine.c.what == "subscriber", quarantine.c.key == str(number)))
    session.execute(insert(Erasure.__table__).values(subscriber_id=number, ref=ref, erased_at=now))  # type: ignore[attr-defined]
    session.delete(subscriber)
    session.add(Event(at=now, kind="subscriber_erased", subscriber_id=number, detail={"ref": ref}, actor=actor))
    session.flush()
    return ref


def personal_words(subscriber: Subscriber) -> list[str]:
    """What may name the person in a server's reply: the address, its local part, the name and each word of it."""
    local = subscriber.email_key.rpartition("@")[0]
    words = re.findall(r"\w{3,}", subscriber.name)
    return [subscriber.email, subscriber.email_key, local, subscriber.name, *words]


def scrubber(values: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern of the person's address and name as they may appear in free text (any case)."""
    words = sorted({v.strip() for v in values if len(v.strip()) >= 2}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, words)), re.IGNORECASE) if words else None


def scrubbed(text: str, wipe: re.Pattern[str] | None) -> str:
    return wipe.sub("[erased]", text) if wipe else text


def scrub_deliveries(session: Session, number: int, wipe: re.Pattern[str] | None) -> None:
    """Take the address and name out of the server replies and errors kept with the sent and failed rows."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    texts = ("reply", "last_error", "reason")
    for row in session.execute(
        sa_select(table.c.id, *(table.c[t] for t in texts)).where(table.c.subscriber_id == number)
    ):
        new = {t: scrubbed(getattr(row, t) or "", wipe) for t in texts}
        if any(new[t] != (getattr(row, t) or "") for t in texts):
            session.execute(update(table).where(table.c.id == row.id).values(**new))


def scrub_bounces(session: Session, number: int, wipe: re.Pattern[str] | None) -> None:
    """Take the address and name out of what the servers said in the person's bounces; the counts stay."""
    table = BounceReport.__table__  # type: ignore[attr-defined]
    for row in session.execute(sa_select(table.c.id, table.c.diagnostic).where(table.c.subscriber_id == number)):
        cleaned = scrubbed(row.diagnostic or "", wipe)
        if cleaned != row.diagnostic:
            session.execute(update(table).where(table.c.id == row.id).values(diagnostic=cleaned))


def scrub_events(session: Session, number: int, ref: str, wipe: re.Pattern[str] | None) -> None:
    """Every event about the person keeps its kind, time and actor; its detail names the reference instead."""
    table = Event.__table__  # type: ignore[attr-defined]
    for event_id, detail in session.execute(
        sa_select(table.c.id, table.c.detail).where(table.c.subscriber_id == number)
    ):
        kept = {k: scrub_value(v, wipe) for k, v in (detail or {}).items() if k not in PERSONAL_KEYS}
        session.execute(update(table).where(table.c.id == event_id).values(detail={**kept, "ref": ref}))


def scrub_value(value: Any, wipe: re.Pattern[str] | None) -> Any:
    if isinstance(value, str):
        return scrubbed(value, wipe)
    if isinstance(value, list):
        return [scrub_value(v, wipe) for v in value]
    if isinstance(value, dict):
        return {k: scrub_value(v, wipe) for k, v in value.items()}
    return value


def find_erasure(session: Session, secret: bytes, email_key: str) -> Erasure | None:
    """The latest erasure of the address *email_key* (normalised), if it was ever erased."""
    ref = person_reference(secret, email_key)
    statement = select(Erasure).where(col(Erasure.ref) == ref).order_by(col(Erasure.erased_at).desc()).limit(1)
    return session.exec(statement).first()
