"""In-process harness for the delivery engine: a store, a real SMTP server, a clock the test moves."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import col, select

from tests.support.factories import REPO
from tests.support.smtp_server import ReceivedMail
from tracker.delivery.changes import Line, read_line
from tracker.delivery.dispatcher import DispatchConfig, Dispatcher, PassResult
from tracker.delivery.planning import DeliveryKey
from tracker.emails import Renderer, Sender
from tracker.mail.smtp import SMTPMailer
from tracker.store.engine import transaction
from tracker.store.models import Delivery, Subscriber
from tracker.subscribers.registry import SubscriberInput, save
from tracker.timelines.completions import DoneRequest, record_done
from tracker.timelines.pipeline import sync_folder
from tracker.timelines.stored import load_views

SECRET = b"delivery-tests-secret-key-0123456789"
ZONE = "Europe/Zurich"


@dataclass
class Clock:
    """The time the engine sees; tests move it forward."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **amount: float) -> None:
        self.now += timedelta(**amount)


def sync(engine: Engine, schedules: Path, now: datetime) -> None:
    outcome = sync_folder(engine, schedules, zone=ZONE, reminders=["14d", "7d", "1d"], now=now)
    assert outcome.ok, outcome.problems


def subscribe(
    engine: Engine,
    email: str,
    now: datetime,
    *,
    audiences: tuple[str, ...] = ("membership",),
    timelines: tuple[str, ...] | None = None,
    language: str = "en",
    confirmed: bool = True,
) -> int:
    data = SubscriberInput(
        email=email, key=email.lower(), language=language, timezone=ZONE, audiences=audiences, timelines=timelines
    )
    with transaction(engine, write=True) as session:
        subscriber, _ = save(session, data, confirmed=confirmed, now=now)
        assert subscriber.id is not None
        return subscriber.id


def set_subscriber(engine: Engine, subscriber_id: int, **values: object) -> None:
    with transaction(engine, write=True) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber is not None
        for name, value in values.items():
            setattr(subscriber, name, value)
        session.add(subscriber)


def mark_done(engine: Engine, reference: str, at: datetime) -> None:
    with transaction(engine, write=True) as session:
        views = {f"{v.timeline_id}/{v.key}": v for v in load_views(session)}
        record_done(session, DoneRequest(reference, at), views.get(reference), now=at)


def make_dispatcher(engine: Engine, smtp_url: str, clock: Clock, **config: object) -> Dispatcher:
    sender = Sender("Tracker <tracker@example.org>", "https://tracker.example.org", "<deadlines.example.org>")
    renderer = Renderer(REPO / "templates" / "emails", REPO / "locale", sender)
    mailer = SMTPMailer.from_url(smtp_url, connections=int(config.get("connections", 2)), timeout=5)  # type: ignore[call-overload]
    settings = DispatchConfig(**{"connections": 2, "retry_base": timedelta(minutes=1), **config})  # type: ignore[arg-type]
    return Dispatcher(engine, renderer, mailer, settings, SECRET, clock=clock)


def deliver(dispatcher: Dispatcher) -> PassResult:
    """What one wake of the scheduler does: handle events, re-plan, send what is due."""

    async def once() -> PassResult:
        try:
            await asyncio.to_thread(dispatcher.refresh, timely=True)
            return await dispatcher.run_pass()
        finally:
            await dispatcher.mailer.close()

    return asyncio.run(once())


def rows(engine: Engine, **where: object) -> list[Delivery]:
    query = select(Delivery).order_by(col(Delivery.send_at), col(Delivery.id))
    for name, value in where.items():
        query = query.where(getattr(Delivery, name) == value)
    with transaction(engine) as session:
        return list(session.exec(query))


def lines_of(row: Delivery) -> dict[str, Line]:
    """The lines of a changed message, by milestone."""
    return {line.key: line for line in map(read_line, row.lines or [])}


def at(text: str, zone: str = ZONE) -> datetime:
    """'2017-02-10 09:00' in *zone*, as aware UTC."""
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def kinds_sent(engine: Engine) -> dict[str, str]:
    """The kind of each message the outbox says was sent, by the digest its Message-ID starts with."""
    with transaction(engine) as session:
        sent = session.exec(select(Delivery).where(Delivery.state == "sent")).all()
        keys = [DeliveryKey(*(getattr(row, name) for name in DeliveryKey.__dataclass_fields__)) for row in sent]
    return {hashlib.sha256(key.key_text.encode()).hexdigest()[:32]: key.kind for key in keys}


def kind_of(mail: ReceivedMail, kinds: dict[str, str]) -> str:
    """The kind of a received message, found by its Message-ID (the emails' wording may change)."""
    found = mail.parse()["Message-ID"]
    return kinds.get(str(found).strip("<>").partition("@")[0], "unknown")
