"""`tracker bounces listen`: an SMTP server (aiosmtpd) that the relay forwards bounces to.

It takes mail only for the bounce address's tagged form (`bounces+…@example.org`), refuses
messages larger than TRACKER_BOUNCE_MAX_SIZE (552, before reading them), and answers 250 only
once the outcome is committed: a listener that dies before that leaves the message with the
relay, which sends it again (counted once: recording is idempotent). A store that cannot take
the outcome gets a 451, so the relay tries later; only the store's errors do. A message that
cannot be read at all (1,000 nested parts make the stdlib parser raise RecursionError) gets a
554: it would be as unreadable on every retry, and a 451 would keep it in the relay's queue for
days. The relay's log (and, for a message with a sender, the sender) says it was refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tracker.bounces.intake import BounceConfig, take_bounce
from tracker.mail.verp import tag_of

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 10  # a forwarded bounce has one; a message to many is not a bounce
TIMEOUT = 60.0  # seconds a client may stay silent
NAME = "tracker-bounces.invalid"  # TRACKER_BOUNCE_LISTEN_NAME's default
UNREADABLE = "554 5.6.0 unreadable message, not a bounce this server can read"


class BounceHandler:
    """aiosmtpd's hooks, called by name: check each recipient, commit each message before its 250."""

    def __init__(self, engine: Engine, config: BounceConfig, clock: Callable[[], datetime]) -> None:
        self.engine, self.config, self.clock = engine, config, clock

    async def handle_RCPT(  # noqa: N802  # aiosmtpd's name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if tag_of(self.config.bounce_address, address) is None:
            return "550 5.1.1 not a bounce address of this server"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        data = envelope.original_content
        if not isinstance(data, bytes):
            return "554 5.6.0 no message"
        if len(data) > self.config.max_size:  # aiosmtpd's own limit refuses it first; this one holds anyway
            return "552 5.3.4 message too big for a bounce"
        try:
            recorded = await asyncio.to_thread(
                take_bounce, self.engine, self.config, data, list(envelope.rcpt_tos), self.clock
            )
        except SQLAlchemyError:
            log.exception("a bounce could not be recorded; the relay is asked to send it again later")
            return "451 4.3.0 could not record the bounce now, try again later"
        except Exception:  # not the store's: retrying the same bytes would fail the same way
            log.exception("a bounce could not be handled; refused")
            return UNREADABLE
        if recorded.result == "unreadable":
            return UNREADABLE
        return f"250 2.0.0 {recorded.result}"


def make_server(handler: BounceHandler, max_size: int, hostname: str) -> SMTP:
    """One SMTP session's protocol object, bounded in size and in patience."""
    return SMTP(
        handler,
        hostname=hostname,  # else aiosmtpd greets with socket.getfqdn(), the relay's own name on its host
        data_size_limit=max_size,
        enable_SMTPUTF8=True,
        decode_data=False,
        timeout=TIMEOUT,
        ident="Tracker bounces",
    )


async def serve(
    engine: Engine,
    config: BounceConfig,
    host: str,
    port: int,
    clock: Callable[[], datetime],
    *,
    started: Callable[[int], Any] | None = None,
    stop: asyncio.Event | None = None,
    name: str = NAME,
) -> None:
    """Listen on *host*:*port* until *stop* is set (forever without one); *started* is told the port.

    *name* is what the listener greets with (TRACKER_BOUNCE_LISTEN_NAME): not the host's own name,
    since Postfix on the same host, seeing its own myhostname in the greeting, refuses to forward
    ("mail for [127.0.0.1]:2525 loops back to myself").
    """
    handler = BounceHandler(engine, config, clock)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: make_server(handler, config.max_size, name), host=host, port=port)
    bound = server.sockets[0].getsockname()[1]
    log.info("listening for bounces on %s:%d", host, bound)
    if started is not None:
        started(bound)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        server.close()
        await server.wait_closed()
