"""`tracker preview`: a message exactly as it would be sent."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from tracker.cli.common import app, fail, now_utc, secret_key, settings, store
from tracker.emails.requests import KINDS
from tracker.text import LANGUAGES
from tracker.timelines.dates import suggest

if TYPE_CHECKING:
    from email.message import EmailMessage

    from sqlmodel import Session

    from tracker.store.models import Subscriber
    from tracker.timelines.views import MilestoneView


@app.command()
def preview(
    kind: Annotated[str, typer.Argument(help=f"One of {', '.join(KINDS)}")],
    milestone: Annotated[str | None, typer.Option(help="TIMELINE/MILESTONE (all kinds but confirm, digest)")] = None,
    lang: Annotated[str | None, typer.Option(help=f"One of {', '.join(LANGUAGES)} (default: the subscriber's)")] = None,
    to: Annotated[str | None, typer.Option(help="A subscriber's address: their language, zone and links")] = None,
    html: Annotated[bool, typer.Option("--html", help="Print only the HTML part, for a browser")] = False,
) -> None:
    """Print a message as it would be sent (RFC 5322, every MIME part); pipe it or save it as .eml."""
    from tracker.store.engine import transaction
    from tracker.timelines.stored import load_views

    if kind not in KINDS:
        fail(f"kind {kind!r} is not one of {', '.join(KINDS)}{suggest(kind, KINDS)}")
    if lang is not None and lang not in LANGUAGES:
        fail(f"--lang: {lang!r} is not one of {', '.join(LANGUAGES)}{suggest(lang, LANGUAGES)}")
    with transaction(store()) as session:
        views = load_views(session)
        subscriber = recipient_row(session, to)
    view = pick_view(views, milestone, kind)
    message = build_preview(kind, view, views, subscriber, lang)
    if html:
        part = message.get_body(("html",))
        assert part is not None
        sys.stdout.write(part.get_content())
        return
    sys.stdout.buffer.write(bytes(message))


def recipient_row(session: Session, to: str | None) -> Subscriber:
    """The subscriber *to*, or a sample one (nothing is saved)."""
    from tracker.store.models import Subscriber
    from tracker.subscribers.registry import find

    found = find(session, to) if to else None
    if to and found is None:
        fail(f"no subscriber {to!r}; leave --to out to preview for a sample recipient")
    config = settings()
    return found or Subscriber(id=0, email="delegate@example.org", email_key="delegate@example.org",
                               name="Delegate", timezone=config.timezone, audiences=["membership"],
                               created_at=now_utc(), state="confirmed")  # fmt: skip


def pick_view(views: list[MilestoneView], reference: str | None, kind: str) -> MilestoneView | None:
    if kind in ("confirm", "digest", "sign-in"):
        return None
    if reference is None:
        fail(f"preview {kind} needs --milestone TIMELINE/MILESTONE")
    known = {f"{v.timeline_id}/{v.key}": v for v in views if v.status != "removed"}
    if reference not in known:
        fail(f"no milestone {reference!r}{suggest(reference, known)}")
    return known[reference]


def build_preview(
    kind: str, view: MilestoneView | None, views: list[MilestoneView], subscriber: Subscriber, lang: str | None
) -> EmailMessage:
    from tracker.emails import ChangeLine, EmailRequest, Recipient, Renderer, Sender
    from tracker.subscribers.links import LinkMaker, Links
    from tracker.timelines.views import expand, follows, list_upcoming

    config = settings()
    now = now_utc()
    host = urlsplit(config.base_url).hostname or "localhost"
    renderer = Renderer(config.template_folders("emails"), config.locales, Sender(config.from_address, config.base_url,
                        f"<deadlines.{host}>", config.reminder_hour), signer=config.dkim_signer())  # fmt: skip
    recipient = Recipient(subscriber.email, subscriber.name, lang or subscriber.language, subscriber.timezone)
    maker = LinkMaker(secret_key(), config.base_url, config.from_address)
    # A confirmation email exists for pending subscribers only: previewed for anyone else (or the
    # sample), it shows the link it would carry, not an error.
    links = maker.of(subscriber, pending=kind == "confirm")
    next_at = None
    if view is not None:
        coming = expand(view, now, now + timedelta(days=800))
        next_at = coming[0].at if coming else view.main_at
    offset = (view.reminders[0] if view and view.reminders else "7d") if kind == "reminder" else None
    if kind == "sign-in":  # a sample link: a real one is made for one browser, when it asks
        links = Links("", "", "", "", confirm=f"{config.base_url.rstrip('/')}/console/sign-in/SAMPLE")
        offset = str(config.console_link_minutes)
    # A changed preview shows the milestone moved a week later than it was.
    changes = (
        [ChangeLine(view, "moved", next_at - timedelta(days=7), next_at)]
        if kind == "changed" and view and next_at
        else []
    )
    followed = [v for v in views if follows(v, subscriber.timelines, subscriber.audiences or ())]
    digest = list_upcoming(followed, now=now, window=timedelta(weeks=4)) if kind == "digest" else []
    request = EmailRequest(kind, recipient, links, key=f"preview:{kind}:{view.key if view else ''}", now=now,  # type: ignore[arg-type]
                           view=view, due_at=next_at, offset=offset, digest=digest, changes=changes)  # fmt: skip
    return renderer.render(request)
