"""Headless Chromium for page tests: Debian's /usr/bin/chromium driven by Playwright, a live site, screenshots.

Playwright never downloads a browser here: it launches the system Chromium by path. Without one
the browser tests skip, unless TRACKER_REQUIRE_BROWSER=1 (CI), where they fail instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.support.database import empty_database
from tests.support.factories import DRAFTING, MEETING, REPO
from tests.support.processes import Job, Site, free_port
from tests.support.smtp_server import ReceivedMail, SMTPTestServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = Path(os.environ.get("TRACKER_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("TRACKER_SCREENSHOTS", str(REPO / "var" / "screenshots")))
REQUIRED = os.environ.get("TRACKER_REQUIRE_BROWSER") == "1"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 780}
WAIT_MS = 15_000  # the longest any page or element may take to show up
URL = re.compile(r"https?://[^\s<>\"']+")


def missing_browser() -> str | None:
    """Why no browser test can run here, or None when Chromium and Playwright are both present."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (`make browser` installs Debian's chromium when run as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    return None


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread while it is
# open, and every later test that calls asyncio.run() would fail with "cannot be called from a running loop".
@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    reason = missing_browser()
    if reason is not None:
        if REQUIRED:
            pytest.fail(f"TRACKER_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """One Chromium for a module's tests; each test opens its own context (cookies, viewport)."""
    chromium = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), args=["--disable-gpu"])
    yield chromium
    chromium.close()


@dataclass
class Visitor:
    """A browser tab at one width that keeps every URL it asked for."""

    page: Page
    requested: list[str] = field(default_factory=list)

    def open(self, url: str, *, until_quiet: bool = False) -> int:
        """Load *url* (and with *until_quiet*, wait until nothing more is asked for); return its HTTP status."""
        response = self.page.goto(url, wait_until="networkidle" if until_quiet else "load", timeout=WAIT_MS)
        assert response is not None, f"no response for {url}"
        return response.status

    def document(self) -> tuple[str, str]:
        """(lang, dir) of the <html> element, as the browser sees them."""
        lang, direction = self.page.evaluate("[document.documentElement.lang, document.documentElement.dir]")
        return str(lang), str(direction)

    def scroll_width(self) -> int:
        return int(self.page.evaluate("document.documentElement.scrollWidth"))

    def shoot(self, name: str) -> Path:
        """Save a full-page screenshot as SCREENSHOTS/NAME.png (kept after the run, for people to look at)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


OpenTab = Callable[..., Visitor]


@pytest.fixture
def visit(browser: Browser) -> Iterator[OpenTab]:
    """Open fresh tabs: visit(width=360) gives a Visitor on a 360 px wide window."""
    contexts = []

    def open_tab(width: int = DESKTOP["width"]) -> Visitor:
        height = PHONE["height"] if width <= PHONE["width"] else DESKTOP["height"]
        context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        visitor = Visitor(context.new_page())
        visitor.page.on("request", lambda request: visitor.requested.append(request.url))
        return visitor

    yield open_tab
    for context in contexts:
        context.close()


@dataclass
class LiveSite:
    """`tracker run` serving HTTP on a free port, its base URL set to that address, sending to a test relay."""

    site: Site
    job: Job
    smtp: SMTPTestServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.job.port}"

    def mail_to(self, address: str, timeout: float = 30) -> ReceivedMail:
        """Wait for the first message to *address* and return it."""
        self.site.wait_mail(lambda server: any(address in m.rcpt_tos for m in server.received), timeout)
        return next(m for m in self.smtp.received if address in m.rcpt_tos)


def links_in(mail: ReceivedMail) -> list[str]:
    """Every web address in the plain-text part of *mail*, in order."""
    body = mail.parse().get_body(preferencelist=("plain",))
    assert body is not None, "the message has no text part"
    return URL.findall(str(body.get_content()))


def same_origin(url: str, origin: str) -> bool:
    """True for a URL on *origin*, or one that loads nothing from a network (data:, about:, blob:)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "about", "blob"):
        return True
    return f"{parts.scheme}://{parts.netloc}" == origin


def demo_timeline(today: date) -> str:
    """A consultation around *today*: something done, late, cancelled, upcoming, a span, a connector, a repeat.

    Its repeating milestone has a COUNT that fits in the drawing's range (a year after its first date),
    so every occurrence is drawn and a test can count them from this text alone.
    """
    next_month = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    return f"""\
id: consultation
title: Open consultation on the draft resolution
timezone: Europe/Zurich
kind: consultation
audiences: [membership, secretariat]
milestones:
  - id: draft-posted
    title: Draft resolution posted
    owner: secretariat
    due: {today - timedelta(days=20)}
    done: {today - timedelta(days=21)}
  - id: nominations
    title: Nominations of co-facilitators
    owner: membership
    due: {today - timedelta(days=3)}
  - id: comments
    title: Written comments from the membership
    owner: membership
    due: draft-posted.done + 30d
    opens_after: draft-posted
  - id: informal-meeting
    title: Informal meeting, Geneva
    starts: {today + timedelta(days=40)}
    ends: {today + timedelta(days=41)}
  - id: briefing-note
    title: Secretariat briefing note
    owner: secretariat
    due: informal-meeting - 7d
  - id: side-event
    title: Side event
    owner: secretariat
    due: {today + timedelta(days=25)}
    status: cancelled
  - id: monthly-call
    title: Monthly call of the drafting group
    owner: membership
    due: {next_month} 14:00
    repeat: FREQ=MONTHLY;COUNT=3
"""


@contextmanager
def serving(folder: Path, database_url: str, smtp: SMTPTestServer) -> Iterator[LiveSite]:
    """`tracker run` on three timelines (a meeting, a 2017 drafting, a consultation around today)."""
    site = Site(folder, database_url, smtp)
    (site.schedules / "cwg-wsis-32.yaml").write_text(MEETING, encoding="utf-8")
    (site.schedules / "hlpf-2017.yaml").write_text(DRAFTING, encoding="utf-8")
    (site.schedules / "consultation.yaml").write_text(demo_timeline(date.today()), encoding="utf-8")
    port = free_port()
    job = Job("web", site.settings(port=port, base_url=f"http://127.0.0.1:{port}", sweep=0.2), site.folder)
    site.jobs.append(job)
    try:
        job.wait_healthy()
        yield LiveSite(site, job, smtp)
        site.check_jobs()  # a page that failed on the server shows as an error in its log
    finally:
        site.close()
        print(f"----- tracker run (exit {job.process.returncode}) -----\n{job.log}")  # shown when a test failed


@pytest.fixture
def live_site(tmp_path: Path, database_url: str) -> Iterator[LiveSite]:
    """A site of one's own, for a test that changes things (subscribes, saves)."""
    with SMTPTestServer() as smtp, serving(tmp_path, database_url, smtp) as live:
        yield live


@pytest.fixture(scope="module")
def public_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    """One site shared by the tests of a module that only look at public pages."""
    folder = tmp_path_factory.mktemp("public-site")
    with SMTPTestServer() as smtp, empty_database(folder, prefix="b") as url, serving(folder, url, smtp) as live:
        yield live
