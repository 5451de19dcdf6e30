"""The console served by a real uvicorn, a clock the test moves, sign-in emails read from a real SMTP server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import httpx
from sqlalchemy import Engine

from tests.support.factories import REPO
from tests.support.smtp_server import SMTPTestServer
from tests.support.web import SECRET, running
from tracker.accounts.roles import Role
from tracker.accounts.users import save_user
from tracker.config import Settings
from tracker.delivery.dispatcher import DispatchConfig, Dispatcher
from tracker.emails import Renderer, Sender
from tracker.feeds.calendars import Calendars
from tracker.mail.smtp import SMTPMailer
from tracker.store.engine import transaction
from tracker.web.app import create_app
from tracker.web.signups import Signups

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
LINK = re.compile(r"(http://\S+/console/sign-in/[A-Za-z0-9_-]+)")


class MovingClock:
    """The app's and the dispatcher's clock: it stands still until the test moves it."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def move(self, by: timedelta) -> None:
        self.at += by


@dataclass
class ConsoleSite:
    url: str
    engine: Engine
    clock: MovingClock
    signups: Signups
    smtp: SMTPTestServer

    def browser(self) -> httpx.Client:
        """A new browser: its own cookies."""
        return httpx.Client(base_url=self.url, timeout=10)

    def add_user(self, email: str, role: Role, language: str = "en") -> None:
        with transaction(self.engine, write=True) as session:
            save_user(session, email, role, language, self.clock())

    def ask_link(self, browser: httpx.Client, email: str, back: str = "/console/") -> httpx.Response:
        """Fill in and send the sign-in form, as a person would."""
        form = browser.get("/console/sign-in")
        return browser.post("/console/sign-in", data={"csrf": csrf_of(form), "email": email, "next": back})

    def send_due(self) -> None:
        """Let the queued work run, then one pass of the outbox, as `tracker run` does."""
        self.signups.drain()
        sender = Sender("Tracker <tracker@example.org>", self.url, "<deadlines.example.org>")
        renderer = Renderer(REPO / "templates" / "emails", REPO / "locale", sender)
        config = DispatchConfig(connections=1, base_url=self.url, from_address="Tracker <tracker@example.org>")

        async def once() -> None:
            dispatcher = Dispatcher(self.engine, renderer, SMTPMailer.from_url(self.smtp.url, connections=1, timeout=5),
                                    config, SECRET, clock=self.clock)  # fmt: skip
            try:
                await dispatcher.run_pass()
            finally:
                await dispatcher.mailer.close()

        asyncio.run(once())

    def emails_to(self, address: str) -> list[EmailMessage]:
        return [mail.parse() for mail in self.smtp.received if address in mail.rcpt_tos]

    def link_in(self, message: EmailMessage) -> str:
        part = message.get_body(("plain",))
        assert part is not None
        found = LINK.search(part.get_content())
        assert found is not None, part.get_content()
        return found.group(1)

    def emailed_link(self, address: str) -> str:
        """The link in the newest sign-in email to *address*, sent now through the real SMTP server."""
        before = len(self.emails_to(address))
        self.send_due()
        self.smtp.wait_until(lambda _: len(self.emails_to(address)) > before)
        return self.link_in(self.emails_to(address)[-1])

    def use_link(self, browser: httpx.Client, link: str) -> httpx.Response:
        """Open the emailed link, then press its button."""
        path = link.removeprefix(self.url)
        landing = browser.get(path)
        return browser.post(path, data={"csrf": csrf_of(landing)})

    def sign_in(self, email: str, role: Role, language: str = "en") -> httpx.Client:
        """A browser signed in as a new user *email* with *role*."""
        self.add_user(email, role, language)
        browser = self.browser()
        self.ask_link(browser, email)
        answer = self.use_link(browser, self.emailed_link(email))
        assert answer.status_code == 303, answer.text
        return browser


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found is not None, page.text
    return found.group(1)


@contextmanager
def console_site(engine: Engine, smtp: SMTPTestServer, at: datetime, **settings: object) -> Iterator[ConsoleSite]:
    clock = MovingClock(at)
    calendars = Calendars(engine, base_url="http://127.0.0.1", cancelled_grace=timedelta(days=30), clock=clock,
                          check_interval=0, secret=SECRET)  # fmt: skip
    signups = Signups()
    config = Settings(**{"base_url": "http://127.0.0.1:8000", **settings})  # type: ignore[arg-type]
    app = create_app(engine, calendars, settings=config, signups=signups)
    with running(app) as url:
        yield ConsoleSite(url, engine, clock, signups, smtp)
    signups.close()
