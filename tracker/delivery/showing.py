"""One outbox row's message, composed and rendered as the dispatcher does, to be read in the console.

The same path as a send (compose → Renderer), as of now: a planned row shows what would go if it
went now, a sent one what the same row gives today (the store does not keep sent messages).
Personal links are shown with their token hidden: a viewer of the log is not the subscriber.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlmodel import Session, col, select

from tracker.channels import channel_of
from tracker.delivery.channel_posts import channel_person, is_channel_row, payload_of
from tracker.delivery.compose import Person, Skip, Store, compose
from tracker.delivery.dispatcher import followed
from tracker.delivery.outbox import CHANNEL_GONE, Claimed, load_recipients
from tracker.emails import Renderer
from tracker.store.models import Channel, Delivery, Event
from tracker.subscribers.links import Links
from tracker.timelines.screening import readable_zone, screen_views
from tracker.timelines.stored import load_views
from tracker.timelines.views import Problems

HIDDEN = "TOKEN-HIDDEN"


@dataclass(frozen=True)
class Shown:
    """A message's header lines and text parts, or why there is none."""

    headers: list[tuple[str, str]]
    text: str
    html: str
    not_sent: str = ""  # why the row gives no message (the dispatcher's reason), else ''
    hidden: bool = False  # a sign-in email: it carries a live one-time link


def show_message(session: Session, renderer: Renderer, row: Delivery, base_url: str, now: datetime) -> Shown:
    """The message *row* gives now, as the dispatcher would compose and render it."""
    if row.kind == "sign-in":  # it carries a one-time link to someone's session: never shown
        return Shown([], "", "", hidden=True)
    if is_channel_row(claimed_of(row)):
        return show_post(session, renderer, row, now)
    composed = compose(claimed_of(row), person_of(session, row, base_url), store_of(session, row), now)
    if isinstance(composed, Skip):
        return Shown([], "", "", f"{composed.state}: {composed.reason}")
    message = renderer.render(composed)
    return Shown([(name, str(value)) for name, value in message.items()], part(message, "plain"), part(message, "html"))


def show_post(session: Session, renderer: Renderer, row: Delivery, now: datetime) -> Shown:
    """A channel's row: the JSON it is posted, as it would go now (its URL and signature left out: secrets)."""
    channel = session.get(Channel, channel_of(row.subscriber_id))
    if channel is None or channel.state != "active":
        return Shown([], "", "", f"cancelled: {CHANNEL_GONE}")
    claimed = claimed_of(row)
    composed = compose(claimed, channel_person(channel), store_of(session, row), now)
    if isinstance(composed, Skip):
        return Shown([], "", "", f"{composed.state}: {composed.reason}")
    body = json.loads(payload_of(renderer, claimed, channel, composed))
    headers = [("POST", f"channel:{channel.name} ({channel.kind})"), ("Tracker-Delivery", claimed.key_text)]
    return Shown(headers, json.dumps(body, ensure_ascii=False, indent=2), "")


def part(message: EmailMessage, kind: str) -> str:
    found = message.get_body((kind,))
    return "" if found is None else str(found.get_content())


def claimed_of(row: Delivery) -> Claimed:
    assert row.id is not None
    return Claimed(row.subscriber_id, row.timeline_id, row.milestone_key, row.occurrence, row.kind, row.slot, row.id,
                   row.send_at, row.deadline_at, row.attempts, row.old_at, row.new_at, row.event_id,
                   None if row.lines is None else json.dumps(row.lines), row.revision)  # fmt: skip


def person_of(session: Session, row: Delivery, base_url: str) -> Person | None:
    """The recipient as the dispatcher loads them, with their personal links' tokens hidden."""
    found = load_recipients(session, [row.subscriber_id])
    if not found:
        return None
    s = found[0]
    base = base_url.rstrip("/")
    confirm = f"{base}/confirm/{HIDDEN}" if s.state == "pending" else None
    links = Links(f"{base}/unsubscribe/{HIDDEN}", f"mailto:unsubscribe?subject=unsubscribe%20{HIDDEN}",
                  f"{base}/preferences/{HIDDEN}", f"{base}/feeds/me/{HIDDEN}.ics", confirm)  # fmt: skip
    return Person(s.id, s.email, s.name, s.language, readable_zone(s.timezone), s.state,
                  *followed(s.audiences, s.timelines), links)  # fmt: skip


def store_of(session: Session, row: Delivery) -> Store:
    """The milestones and the event a notice answers, as the dispatcher loads them for a batch."""
    set_aside: Problems = {}
    views = {(v.timeline_id, v.key): v for v in screen_views(load_views(session), set_aside)}
    if row.event_id is None or row.kind not in ("opened", "correction"):
        return Store(views, {}, {}, set_aside)
    event = session.exec(select(Event).where(col(Event.id) == row.event_id)).first()
    if event is None:
        return Store(views, {}, {}, set_aside)
    note = str((event.detail or {}).get("note", ""))[:2000]
    return Store(views, {row.event_id: (event.timeline_id, event.milestone_key or "")}, {row.event_id: note}, set_aside)
