"""For tests of the SMTP mailer: async tests on a bounded loop, a mailer on a test server, a reminder-like message."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from email.message import EmailMessage
from typing import Any, ParamSpec

from tests.support.smtp_server import SMTPTestServer
from tracker.mail.smtp import SMTPMailer

P = ParamSpec("P")
TEST_TIMEOUT = 10.0


def in_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test on a fresh event loop, failing instead of hanging."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), TEST_TIMEOUT))

    return run


def make_message(number: int = 1, *, calendar: bool = False, **headers: str) -> EmailMessage:
    """A reminder-like message: multipart/alternative, non-ASCII text, a line with a leading dot."""
    message = EmailMessage()
    fields = {
        "From": "Tracker <tracker@example.org>",
        "To": "Ada Lovelace <ada@example.org>",
        "Subject": "Rappel : commentaires attendus — 7 jours / تذكير / 提醒",
        "Date": "Wed, 01 Feb 2017 09:00:00 +0000",
        "Message-ID": f"<delivery-{number}@tracker.test>",
    } | headers
    for name, value in fields.items():
        message[name] = value
    message.set_content("Commentaires attendus avant le 24 février 2017.\n.\n.leading dot\nمع التحية\n")
    message.add_alternative("<p dir='rtl'>مع التحية — 24 février</p>\n", subtype="html")
    if calendar:
        message.add_attachment(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", maintype="text", subtype="calendar")
    # Fixed boundaries: otherwise each rendering of the message draws new random ones.
    for index, part in enumerate(part for part in message.walk() if part.is_multipart()):
        part.set_boundary(f"boundary-{number}-{index}")
    return message


def mailer_for(server: SMTPTestServer, **options: Any) -> SMTPMailer:
    """A mailer on *server* with short, bounded timeouts."""
    settings: dict[str, Any] = {"timeout": 5.0, "connect_timeout": 5.0, "local_hostname": "client.test"} | options
    return SMTPMailer.from_url(settings.pop("url", server.url), **settings)
