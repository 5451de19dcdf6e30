"""`tracker bounces …`: take delivery status notifications back in (README, "Bounces")."""

from __future__ import annotations

import asyncio
import imaplib
import logging
from typing import TYPE_CHECKING, Annotated

import typer

from tracker.cli.common import app, err, fail, out, secret_key, settings, store

if TYPE_CHECKING:
    from tracker.bounces.intake import BounceConfig

group = typer.Typer(help="Take bounces (delivery status notifications) back in.", no_args_is_help=True)
app.add_typer(group, name="bounces")


@group.command("listen")
def listen(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: TRACKER_BOUNCE_LISTEN_HOST)")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (default: TRACKER_BOUNCE_LISTEN_PORT; 0: any free one)")
    ] = None,
) -> None:
    """Run the SMTP server the relay forwards bounces to; each is recorded before it is acknowledged."""
    from tracker.bounces.listener import serve
    from tracker.clock import utc_now

    config = settings()
    bounces = bounce_config()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    where = host or config.bounce_listen_host
    try:
        asyncio.run(serve(store(), bounces, where, config.bounce_listen_port if port is None else port, utc_now,
                          started=lambda bound: err.print(f"listening for bounces on {where}:{bound}"),
                          name=config.bounce_listen_name))  # fmt: skip
    except OSError as exc:
        fail(f"cannot listen on {where}: {exc.strerror or exc}", 1)


@group.command("poll")
def poll_mailbox() -> None:
    """Read the bounces in TRACKER_BOUNCE_IMAP_URL's mailbox once: each is recorded, then deleted (for cron)."""
    from tracker.bounces.mailbox import parse_imap_url, poll
    from tracker.clock import utc_now

    config = settings()
    if not config.bounce_imap_url:
        fail("set TRACKER_BOUNCE_IMAP_URL (imaps://USER:PASSWORD@HOST/FOLDER) first: the mailbox bounces arrive in")
    bounces = bounce_config()
    mailbox = parse_imap_url(config.bounce_imap_url)
    try:
        result = poll(store(), bounces, mailbox, utc_now)
    except OSError as exc:
        fail(f"cannot reach the mailbox at {mailbox.host}:{mailbox.port}: {exc.strerror or exc}", 1)
    except imaplib.IMAP4.error as exc:  # the server's refusals (login, folder); IMAPClient's errors are these
        fail(f"the IMAP server at {mailbox.host}:{mailbox.port} refused: {str(exc)[:300]}", 1)
    counts = ", ".join(f"{name} {count}" for name, count in sorted(result.outcomes.items())) or "no messages"
    refused = f"; {result.refused} too large or unreadable, left flagged" if result.refused else ""
    out.print(f"bounces: {counts}{refused}")


def bounce_config() -> BounceConfig:
    """The bounce settings, or a clear stop when the bounce address is not set."""
    from tracker.bounces.intake import BounceConfig
    from tracker.bounces.policy import parse_suspend_policy

    config = settings()
    if not config.bounce_address:
        fail("set TRACKER_BOUNCE_ADDRESS (e.g. bounces@example.org) first: it says which mail is a bounce")
    return BounceConfig(secret_key(), config.bounce_address, parse_suspend_policy(config.bounce_suspend),
                        config.bounce_max_size)  # fmt: skip
