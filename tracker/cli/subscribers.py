"""`tracker subscribers …`: add, import, export, list, remove, rotate-token, export-person, erase."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO, get_args

import typer

from tracker.cli.common import app, err, fail, now_utc, out, print_json, secret_key, settings, store, who
from tracker.cli.console import styled
from tracker.text import LANGUAGES
from tracker.timelines.dates import suggest

if TYPE_CHECKING:
    from sqlmodel import Session

    from tracker.store.models import Subscriber
    from tracker.subscribers.registry import Outcome
    from tracker.subscribers.tokens import Purpose

STATES = ("pending", "confirmed", "unsubscribed", "suspended")
group = typer.Typer(help="Manage who receives reminders.", no_args_is_help=True)
app.add_typer(group, name="subscribers")


@group.command("add")
def add(
    email: Annotated[str, typer.Argument(help="Email address")],
    name: Annotated[str, typer.Option(help="Name as it appears in emails")] = "",
    language: Annotated[str, typer.Option(help=f"One of {', '.join(LANGUAGES)}")] = "en",
    timezone: Annotated[str | None, typer.Option(help="IANA zone (default: TRACKER_TIMEZONE)")] = None,
    audience: Annotated[list[str] | None, typer.Option(help="Audience to follow (repeatable)")] = None,
    timeline: Annotated[list[str] | None, typer.Option(help="Timeline to follow (repeatable; default all)")] = None,
    confirmed: Annotated[bool, typer.Option(help="The secretariat vouches for the address")] = False,
) -> None:
    """Add or update one subscriber."""
    from tracker.delivery.outbox import queue_confirm
    from tracker.store.engine import transaction
    from tracker.subscribers.registry import SubscriberError, check_input, known_names, save

    raw = {"email": email, "name": name, "language": language, "timezone": timezone,
           "audiences": ";".join(audience or ()), "timelines": ";".join(timeline or ())}  # fmt: skip
    now = now_utc()
    with transaction(store(), write=True) as session:
        try:
            data = check_input(raw, zone=settings().timezone, known=known_names(session))
        except SubscriberError as exc:
            fail(str(exc))
        subscriber, outcome = save(session, data, confirmed=confirmed, now=now, actor=who())
        queued = queue_confirm(session, subscriber, now) is not None
    out.print(styled(outcome_symbol(outcome), f" {subscriber.email}: {outcome} ({subscriber.state})"))
    if subscriber.state == "pending":
        out.print(invitations(int(queued), 1))


RATE_LIMITED = "had one in the last 5 minutes (or 3 today)"  # the outbox allows one per address per 5 minutes
INVITED_BEFORE = "were there before: an import invites new addresses only (`subscribers add EMAIL` invites again)"


def invitations(queued: int, pending: int, why_not: str = RATE_LIMITED) -> str:
    """Say how many confirmation emails were queued, and why some pending addresses got none."""
    held = pending - queued
    why = f"{held} pending address{'es' * (held != 1)} {why_not}"
    if queued == 0:
        return f"No confirmation email queued: {why}"
    emails = "1 confirmation email queued; it goes" if queued == 1 else f"{queued} confirmation emails queued; they go"
    return f"{emails} out with `tracker send-due` or the running `tracker run`" + (f"; {why}" if held else "")


def outcome_symbol(outcome: Outcome) -> tuple[str, str]:
    return {"added": ("+", "green"), "updated": ("~", "yellow"), "unchanged": ("=", "dim")}[outcome]


IMPORTED = ("email", "name", "language", "timezone", "audiences", "timelines", "digest", "reminders")


@group.command("import")
def import_csv(
    file: Annotated[Path, typer.Argument(help=f"CSV, header {','.join(IMPORTED)} in any order; lists ;-separated")],
    confirmed: Annotated[bool, typer.Option(help="The secretariat vouches for every address")] = False,
) -> None:
    """Import subscribers from CSV, a chunk at a time: good rows are saved, bad rows reported as FILE:LINE: message.

    A column the file lacks leaves that choice as stored. Each chunk of rows is saved in its own
    transaction: an import stopped half-way is completed by running it again (nothing is doubled).
    """
    from tracker.delivery.outbox import queue_confirms
    from tracker.store.engine import transaction
    from tracker.subscribers.csvfiles import read_chunks
    from tracker.subscribers.registry import known_names
    from tracker.subscribers.roster import ImportReport, save_rows

    stream = open_csv(file)
    report, now, engine = ImportReport(), now_utc(), store()
    with transaction(engine) as session:
        known = known_names(session)
    with stream, import_progress(file) as advance:
        try:
            for chunk in read_chunks(stream, str(file), zone=settings().timezone, known=known):
                for problem in chunk.problems:  # as they are found: a file of bad rows is not held in memory
                    err.print(str(problem), soft_wrap=True)
                report.rejected += len(chunk.problems)
                if chunk.rows:
                    with transaction(engine, write=True) as session:
                        rows = [data for _, data in chunk.rows]
                        save_rows(session, rows, report, confirmed=confirmed, now=now, invite=queue_confirms,
                                  actor=who())  # fmt: skip
                advance(chunk.read)
        except UnicodeDecodeError as exc:
            fail(f"{file}: not UTF-8 text after the rows saved so far ({exc.reason}); save it as CSV UTF-8")
    counts = {kind: getattr(report, kind) for kind in ("added", "updated", "unchanged", "rejected")}
    out.print(f"{file}: " + ", ".join(f"{count} {kind}" for kind, count in counts.items()))
    if report.pending:
        out.print(invitations(report.queued, report.pending, INVITED_BEFORE))
    if report.rejected:
        raise typer.Exit(1)


def open_csv(file: Path) -> TextIO:
    if not file.exists():
        fail(f"{file}: cannot read: no such file")
    if not file.is_file():  # a device such as /dev/zero, or a pipe, would be read forever
        fail(f"{file}: not a regular file; give the path of a CSV file")
    try:
        return file.open(encoding="utf-8-sig")
    except OSError as exc:
        fail(f"{file}: cannot read: {exc}")


@contextmanager
def import_progress(file: Path) -> Iterator[Callable[[int], None]]:
    """A progress bar by characters read, for files large enough to take a while."""
    from rich.progress import Progress

    size = file.stat().st_size
    with Progress(console=err, transient=True, disable=size < 100_000 or not err.is_terminal) as progress:
        task = progress.add_task("Importing", total=size)
        yield lambda read: progress.update(task, completed=read)


@group.command("list")
def list_subscribers(
    state: Annotated[str | None, typer.Option(help=f"Only subscribers in this state: {', '.join(STATES)}")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """List subscribers."""
    from rich.table import Table
    from sqlmodel import select

    from tracker.store.engine import transaction
    from tracker.store.models import Subscriber

    if state is not None and state not in STATES:
        fail(f"--state: {state!r} is not one of {', '.join(STATES)}{suggest(state, STATES)}")
    with transaction(store()) as session:
        query = select(Subscriber).order_by(Subscriber.email_key)
        rows = [s for s in session.exec(query) if state is None or s.state == state]
    if as_json:
        print_json([subscriber_json(s) for s in rows])
        return
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for column in ("Email", "Name", "Lang", "Zone", "Audiences", "Timelines", "State"):
        table.add_column(column, overflow="fold")
    for s in rows:
        table.add_row(s.email, s.name, s.language, s.timezone, ", ".join(s.audiences or ()),
                      ", ".join(s.timelines) if s.timelines else "all", s.state)  # fmt: skip
    out.print(table if rows else "No subscribers.")


def subscriber_json(s: Subscriber) -> dict[str, object]:
    return {
        "email": s.email, "name": s.name, "language": s.language, "timezone": s.timezone,
        "audiences": s.audiences or [], "timelines": s.timelines, "digest": s.digest, "state": s.state,
        "created_at": s.created_at.isoformat(), "confirmed_at": s.confirmed_at.isoformat() if s.confirmed_at else None,
    }  # fmt: skip


@group.command("export")
def export_csv(
    file: Annotated[str, typer.Argument(help="Where to write the CSV ('-': standard output)")] = "-",
    state: Annotated[str | None, typer.Option(help=f"Only subscribers in this state: {', '.join(STATES)}")] = None,
) -> None:
    """Write subscribers as CSV, streamed from the store; `import` reads it back (cells a spreadsheet would run as
    formulas are written with a leading apostrophe)."""
    import sys

    from sqlalchemy import select

    from tracker.store.engine import transaction
    from tracker.store.models import Subscriber
    from tracker.subscribers.csvfiles import EXPORTED, write_rows

    if state is not None and state not in STATES:
        fail(f"--state: {state!r} is not one of {', '.join(STATES)}{suggest(state, STATES)}")
    table = Subscriber.__table__  # type: ignore[attr-defined]
    query = select(*(table.c[name] for name in EXPORTED)).order_by(table.c.email_key)
    if state is not None:
        query = query.where(table.c.state == state)
    try:
        target = sys.stdout if file == "-" else open(file, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        fail(f"{file}: cannot write: {exc}")
    with transaction(store()) as session:
        rows = session.execute(query.execution_options(yield_per=1000)).mappings()
        try:
            count = write_rows(target, (dict(row) for row in rows))
        finally:
            if target is not sys.stdout:
                target.close()
    if file != "-":
        out.print(f"{file}: {count} subscriber{'s' * (count != 1)}")


@group.command("remove")
def remove(email: Annotated[str, typer.Argument(help="Email address")]) -> None:
    """Unsubscribe an address: it receives nothing more (the record stays for the delivery log)."""
    from tracker.store.engine import transaction
    from tracker.subscribers.registry import unsubscribe

    with transaction(store(), write=True) as session:
        subscriber = lookup(session, email)
        changed = unsubscribe(session, subscriber, now_utc(), who())
    out.print(f"{subscriber.email}: {'unsubscribed' if changed else 'was already unsubscribed'}")


@group.command("rotate-token")
def rotate_token(
    email: Annotated[str, typer.Argument(help="Email address")],
    purpose: Annotated[str, typer.Option(help="manage, feed, confirm or all")] = "all",
) -> None:
    """Revoke a subscriber's links (preferences/unsubscribe, personal feed, confirm) and issue new ones."""
    from tracker.store.engine import transaction
    from tracker.subscribers import tokens
    from tracker.subscribers.registry import rotate

    purposes: tuple[Purpose, ...] = get_args(tokens.Purpose)
    if purpose != "all":
        if purpose not in purposes:
            fail(f"--purpose must be one of {', '.join(purposes)} or all, not {purpose!r}")
        purposes = (purpose,)
    with transaction(store(), write=True) as session:
        subscriber = lookup(session, email)
        rotate(session, subscriber, purposes, now_utc(), who())
    out.print(f"{subscriber.email}: new {', '.join(purposes)} links; the old ones no longer work")


@group.command("export-person")
def export_person(email: Annotated[str, typer.Argument(help="Email address")]) -> None:
    """Print everything held about one subscriber as JSON (what their preferences page downloads)."""
    from tracker.store.engine import transaction
    from tracker.subscribers import personal

    with transaction(store()) as session:
        print_json(personal.export_person(session, lookup(session, email), now_utc()))


@group.command("erase")
def erase(
    email: Annotated[str, typer.Argument(help="Email address")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Erase a subscriber on request: deleted, nothing more sent; the logs keep counts and a one-way reference."""
    from tracker.store.engine import transaction
    from tracker.store.models import Subscriber
    from tracker.subscribers.personal import erase_person

    # Ask outside any write transaction: the write lock would hold every writer (dispatcher, web,
    # sync) for as long as the operator reads the question.
    engine = store()
    with transaction(engine) as session:
        found = lookup(session, email)
    if not yes:
        typer.confirm(f"Erase {found.email} and everything held about them? This cannot be undone",
                      abort=True, err=True)  # fmt: skip
    with transaction(engine, write=True) as session:
        subscriber = session.get(Subscriber, found.id)  # read again: it may have gone while we asked
        if subscriber is None:
            fail(f"{found.email} is no longer in the store (erased or removed meanwhile): nothing to do", 1)
        ref = erase_person(session, subscriber, secret_key(), now_utc(), who())
    out.print(styled(("✓", "green"), f" erased; the logs keep the reference {ref}"))


def lookup(session: Session, email: str) -> Subscriber:
    from tracker.subscribers.personal import find_erasure
    from tracker.subscribers.registry import SubscriberError, find, normalise_email

    try:
        subscriber = find(session, email)
    except SubscriberError as exc:
        fail(str(exc))
    if subscriber is None:
        erased = find_erasure(session, secret_key(), normalise_email(email)[1])
        if erased is not None:
            fail(f"no subscriber {email!r}: erased on {erased.erased_at:%Y-%m-%d} (reference {erased.ref})")
        fail(f"no subscriber {email!r}")
    return subscriber
