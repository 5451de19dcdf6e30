"""`tracker bounces …`: take delivery status notifications back in (README, "Bounces")."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from tracker.cli.common import app, err, fail, secret_key, settings, store

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
    from tracker.bounces.intake import BounceConfig
    from tracker.bounces.listener import serve
    from tracker.bounces.policy import parse_suspend_policy
    from tracker.clock import utc_now

    config = settings()
    if not config.bounce_address:
        fail("set TRACKER_BOUNCE_ADDRESS (e.g. bounces@example.org) first: it says which mail is a bounce")
    bounces = BounceConfig(secret_key(), config.bounce_address, parse_suspend_policy(config.bounce_suspend),
                           config.bounce_max_size)  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    where = host or config.bounce_listen_host
    try:
        asyncio.run(serve(store(), bounces, where, config.bounce_listen_port if port is None else port, utc_now,
                          started=lambda bound: err.print(f"listening for bounces on {where}:{bound}")))  # fmt: skip
    except OSError as exc:
        fail(f"cannot listen on {where}: {exc.strerror or exc}", 1)
