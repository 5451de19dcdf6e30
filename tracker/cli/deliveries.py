"""`tracker send-due` (one delivery pass, for cron) and `tracker deliveries` (the delivery log)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from tracker.cli.common import app, err, fail, out, print_json, secret_key, settings, store, when
from tracker.cli.console import styled
from tracker.display import format_at, printable

if TYPE_CHECKING:
    from rich.table import Table
    from sqlmodel import Session

    from tracker.delivery.dispatcher import PassResult
    from tracker.delivery.outbox import Replan
    from tracker.store.models import Delivery, Quarantine

STATES = ("planned", "held", "claimed", "sent", "bounced", "failed", "skipped", "cancelled", "quarantined")


@app.command("send-due")
def send_due(
    now: Annotated[str | None, typer.Option(help="Act as if it were this time (YYYY-MM-DD [HH:MM]).")] = None,
) -> None:
    """One delivery pass: plan, send everything due, record, exit (for cron)."""
    import asyncio

    from tracker.delivery.dispatcher import make_dispatcher

    config = settings()
    engine = store()
    start, began = when(now, config.timezone, "--now"), time.monotonic()
    # Nothing else runs on this loop: SQLite's calls, work in this process, go faster on it than
    # in threads taking turns at the GIL; PostgreSQL's wait on the server, so in a thread.
    offload = engine.dialect.name != "sqlite"
    dispatcher = make_dispatcher(engine, config, secret_key(), offload=offload,
                                 clock=lambda: start + timedelta(seconds=time.monotonic() - began))  # fmt: skip
    handled, replanned = dispatcher.refresh(timely=True)
    dispatcher.expect_due()  # a big pass has its render helper start now, forked from this one thread
    result = asyncio.run(send_all(dispatcher))
    out.print(summary(handled.notices, replanned, result))
    if result.failed or result.quarantined:
        raise typer.Exit(3)


async def send_all(dispatcher: Any) -> PassResult:
    try:
        return await dispatcher.run_pass()  # type: ignore[no-any-return]
    finally:
        await dispatcher.mailer.close()


def summary(notices: int, replanned: Replan | None, result: PassResult) -> Text:
    planned = f"{replanned.added} reminder(s) planned" if replanned else "reminders unchanged"
    parts = [f"sent {result.sent}", f"retrying later {result.retrying}", f"failed {result.failed}",
             f"skipped {result.skipped}"]  # fmt: skip
    parts += [f"quarantined {result.quarantined}"] * bool(result.quarantined)
    mark = ("✓", "green") if not (result.failed or result.quarantined) else ("!", "yellow")
    ahead = f"; {result.rendered_ahead} rendered ahead in a helper process" if result.rendered_ahead else ""
    return styled(mark, f" {', '.join(parts)} ({notices} notice(s) and {planned}{ahead})")


@app.command("deliveries")
def deliveries(
    status: Annotated[str | None, typer.Option(help=f"Only rows in this state: {', '.join(STATES)}.")] = None,
    milestone: Annotated[str | None, typer.Option(help="Only this milestone, as TIMELINE/MILESTONE.")] = None,
    to: Annotated[str | None, typer.Option(help="Only messages to this address, or to channel:NAME.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Show at most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The delivery log: who was sent what, when, with the server's reply."""
    from sqlmodel import col, func, or_, select

    from tracker.channels import CHANNEL_BASE
    from tracker.store.engine import transaction
    from tracker.store.models import Channel, Delivery, Erasure, SignInLink, Subscriber, User

    if status is not None and status not in STATES:
        fail(f"--status: {status!r} is not one of {', '.join(STATES)}", 2)
    engine = store()
    # A sign-in email goes to a console user: its row names the link (a negative id), the link names the user.
    # An erased subscriber's rows stay, named by the one-way reference (docs/security.md, "Erasure").
    # A channel's rows name it below CHANNEL_BASE (docs/channels.md): shown as channel:NAME (kind).
    channel = "channel:" + col(Channel.name) + " (" + col(Channel.kind) + ")"
    query = (
        select(Delivery, func.coalesce(Subscriber.email, User.email, "erased:" + col(Erasure.ref), channel))
        .join(Subscriber, col(Subscriber.id) == Delivery.subscriber_id, isouter=True)
        .join(SignInLink, col(SignInLink.id) == -col(Delivery.subscriber_id), isouter=True)
        .join(User, col(User.id) == SignInLink.user_id, isouter=True)
        .join(Erasure, col(Erasure.subscriber_id) == Delivery.subscriber_id, isouter=True)
        .join(Channel, col(Channel.id) == -col(Delivery.subscriber_id) - CHANNEL_BASE, isouter=True)
        .where(
            or_(
                col(Subscriber.id).is_not(None),
                col(User.id).is_not(None),
                col(Erasure.ref).is_not(None),
                col(Channel.id).is_not(None),
            )
        )
    )
    if status:
        query = query.where(Delivery.state == status)
    if milestone:
        timeline, _, key = milestone.partition("/")
        if not (timeline and key) or "/" in key:
            fail(f"--milestone: give it as TIMELINE/MILESTONE, not {milestone!r}", 2)
        query = query.where(Delivery.timeline_id == timeline, Delivery.milestone_key == key)
    if to:
        key = to.strip().lower()
        query = query.where(or_(Subscriber.email_key == key, User.email_key == key, Erasure.ref == erased_ref(to),
                                "channel:" + col(Channel.name) == key))  # fmt: skip
    query = query.order_by(col(Delivery.send_at).desc(), col(Delivery.id).desc()).limit(limit)
    with transaction(engine) as session:
        rows = [(row, email) for row, email in session.exec(query)]
        set_aside = quarantined(session, milestone, to) if status in (None, "quarantined") else []
    if as_json:
        entries = [quarantine_dict(*entry) for entry in set_aside] if status == "quarantined" else []
        print_json([as_dict(row, email) for row, email in rows] + entries)
        return
    if not rows and not set_aside:
        err.print("no deliveries match")
        return
    if rows:
        out.print(log_table(rows, settings().timezone))
    if set_aside:
        out.print(quarantine_table(set_aside, settings().timezone))


def erased_ref(address: str) -> str:
    """The reference an erased subscriber of *address* is logged under ('' for text that is no address)."""
    from tracker.subscribers.personal import person_reference
    from tracker.subscribers.registry import SubscriberError, normalise_email

    try:
        return person_reference(secret_key(), normalise_email(address)[1])
    except SubscriberError:
        return ""


def quarantined(session: Session, milestone: str | None, to: str | None) -> list[tuple[Quarantine, str | None]]:
    """Subscribers and milestones set aside, with each subscriber's address; filtered as the log is."""
    from sqlmodel import col, select

    from tracker.store.models import Subscriber
    from tracker.store.quarantine import list_quarantine

    entries = list_quarantine(session)
    ids = {int(e.key) for e in entries if e.what == "subscriber" and e.key.isdigit()}
    query = select(Subscriber.id, Subscriber.email).where(col(Subscriber.id).in_(ids))
    emails = {str(id_): email for id_, email in session.exec(query)} if ids else {}
    found = [(e, emails.get(e.key) if e.what == "subscriber" else None) for e in entries]
    if milestone:
        found = [(e, email) for e, email in found if e.what == "milestone" and e.key == milestone]
    if to:
        found = [(e, email) for e, email in found if (email or "").lower() == to.strip().lower()]
    return found


def quarantine_dict(entry: Quarantine, email: str | None) -> dict[str, Any]:
    """An entry as a log row of JSON: state 'quarantined', kind 'subscriber' or 'milestone'."""
    return {
        "id": None, "to": email, "kind": entry.what, "milestone": entry.key if entry.what == "milestone" else None,
        "occurrence": None, "slot": "", "state": "quarantined", "send_at": None, "sent_at": None, "attempts": 0,
        "next_attempt": None, "reply": None, "last_error": entry.reason, "reason": entry.reason,
        "since": entry.since.isoformat(),
    }  # fmt: skip


def quarantine_table(entries: list[tuple[Quarantine, str | None]], zone: str) -> Table:
    """What is set aside and why; everyone else is served meanwhile."""
    from rich.table import Table

    table = Table(title="Quarantined: set aside until fixed, everyone else is served", title_justify="left",
                  show_edge=False, pad_edge=False)  # fmt: skip
    for name in ("what", "which", "since", "reason"):
        table.add_column(name, overflow="fold")
    for entry, email in entries:
        which = email or entry.key
        # Text, not markup: a reason quotes stored values, and '[' in them is not for rich.
        table.add_row(entry.what, Text(which), format_at(entry.since, zone, False), Text(entry.reason))
    return table


def as_dict(row: Delivery, email: str) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": row.id, "to": email, "kind": row.kind, "milestone": about(row), "occurrence": row.occurrence or None,
        "slot": row.slot, "state": row.state, "send_at": iso(row.send_at), "sent_at": iso(row.sent_at),
        "attempts": row.attempts, "next_attempt": iso(row.attempt_at) if row.state == "planned" else None,
        "reply": row.reply or None, "last_error": row.last_error or None, "reason": row.reason or None,
    }  # fmt: skip


def about(row: Delivery) -> str | None:
    return f"{row.timeline_id}/{row.milestone_key}" if row.timeline_id else None


def log_table(rows: list[tuple[Delivery, str]], zone: str) -> Table:
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for name in ("to", "kind", "about", "planned for", "state", "tries", "sent", "server reply / reason"):
        table.add_column(name, overflow="fold")
    colours = {"sent": "green", "failed": "red", "bounced": "red", "planned": "cyan", "claimed": "yellow",
               "quarantined": "magenta"}  # fmt: skip
    for row, email in rows:
        what = row.kind + (f" {row.slot}" if row.kind == "reminder" else "")
        state = Text(row.state, style=colours.get(row.state, "dim"))
        # A bounced message was accepted (its reply says so) and then returned: the bounce is the news.
        detail = row.last_error if row.state == "bounced" else row.reply or row.last_error or row.reason
        planned, sent = format_at(row.send_at, zone, False), format_at(row.sent_at, zone, False)
        # Text, not markup: addresses, keys and server replies are data; a reply's controls are shown escaped.
        table.add_row(Text(email), Text(what), Text(about(row) or "—"), planned, state, str(row.attempts), sent,
                      Text(printable(detail)))  # fmt: skip
    return table
