"""A reminder from the store to a real SMTP server, and back through its one-click unsubscribe."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from sqlalchemy import Engine

from tests.support.factories import REPO
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, NOW, WriteTimeline
from tests.support.web import SECRET, serving, subscribe, sync
from tracker.emails import EmailRequest, Recipient, Renderer, Sender
from tracker.feeds import item_uid
from tracker.mail.smtp import SMTPMailer
from tracker.store.engine import transaction
from tracker.store.models import Subscriber
from tracker.subscribers.links import LinkMaker
from tracker.timelines.stored import load_views


def send(mailer_url: str, message: object) -> str:
    async def run() -> str:
        mailer = SMTPMailer.from_url(mailer_url, connections=1)
        try:
            receipt = await mailer.send(message)  # type: ignore[arg-type]
            return receipt.reply
        finally:
            await mailer.close()

    return asyncio.run(asyncio.wait_for(run(), 30))


def test_a_rendered_reminder_arrives_whole_and_its_one_click_link_unsubscribes(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    sync(engine, schedules)
    subscriber_id, _ = subscribe(engine, "amina@mission.example.org", language="fr", timezone="Africa/Dakar")
    with serving(engine, 0) as (http, _), SMTPTestServer() as smtp:
        base = str(http.base_url).rstrip("/")
        with transaction(engine) as session:
            view = next(v for v in load_views(session) if v.key == "member-comments")
            subscriber = session.get(Subscriber, subscriber_id)
            assert subscriber is not None
            links = LinkMaker(SECRET, base, "Tracker <tracker@tracker.example.org>").of(subscriber)
        sender = Sender("Tracker <tracker@tracker.example.org>", base, "<deadlines.tracker.example.org>")
        renderer = Renderer(REPO / "templates" / "emails", REPO / "locale", sender)
        request = EmailRequest("reminder", Recipient(subscriber.email, "Amina", "fr", "Africa/Dakar"), links,
                               key=f"reminder:{subscriber_id}:hlpf/member-comments:7d", now=NOW, view=view,
                               due_at=view.due_at, offset="7d")  # fmt: skip

        reply = send(smtp.url, renderer.render(request))
        smtp.wait_until(lambda server: len(server.received) == 1)
        message = smtp.received[0].parse()

        assert reply.startswith("250")
        assert message.get_content_type() == "multipart/mixed"
        parts = [part.get_content_type() for part in message.walk()]
        assert parts == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html", "text/calendar"]
        calendar = message.get_payload()[1].get_content()  # type: ignore[index, union-attr]
        assert "METHOD:PUBLISH" in calendar and f"UID:{item_uid(view, base)}" in calendar
        for header in ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "Auto-Submitted"):
            assert message[header], header
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        one_click = re.search(r"<(http[^>]+/unsubscribe/[^>]+)>", message["List-Unsubscribe"])
        assert one_click is not None
        # What a mail provider does on "unsubscribe": a POST with exactly this body, no page, no cookie.
        response = httpx.post(one_click.group(1), content=b"List-Unsubscribe=One-Click",
                              headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)  # fmt: skip

    assert response.status_code == 200
    with transaction(engine) as session:
        gone = session.get(Subscriber, subscriber_id)
        assert gone is not None and gone.state == "unsubscribed"
