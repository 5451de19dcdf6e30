"""The console in headless Chromium: a secretary signs in by the emailed link and sees a late step."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Engine

from tests.support.browser import OpenTab
from tests.support.console import ConsoleSite, console_site
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, NOW, WriteTimeline
from tracker.timelines.pipeline import sync_folder

LATE = NOW.replace(month=2, day=27)  # the revised draft was due on 24 February, and is not posted


def emailed_link(site: ConsoleSite, address: str) -> str:
    # In a thread: Playwright's sync API keeps an event loop running in this one, and the outbox pass runs its own.
    found: list[str] = []
    worker = threading.Thread(target=lambda: found.append(site.emailed_link(address)))
    worker.start()
    worker.join(timeout=60)
    assert found, "no sign-in email arrived"
    return found[0]


def test_a_secretary_signs_in_by_the_emailed_link_and_sees_the_late_step(
    engine: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline, visit: OpenTab
) -> None:
    write_timeline("hlpf", HLPF)
    assert sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["14d", "7d", "1d"], now=NOW).ok
    with console_site(engine, smtp, LATE) as site:
        site.add_user("secretary@mission.example.org", "secretary")
        tab = visit()
        blocked: list[str] = []
        tab.page.on(
            "console", lambda note: blocked.append(note.text) if "Content Security Policy" in note.text else None
        )

        tab.open(f"{site.url}/console/")
        assert tab.page.url.startswith(f"{site.url}/console/sign-in?next=")
        tab.page.get_by_label("Email address").fill("secretary@mission.example.org")
        tab.page.get_by_role("button", name="Send me a sign-in link").click()
        tab.page.get_by_role("heading", name="Check your mail").wait_for()
        tab.open(emailed_link(site, "secretary@mission.example.org"))
        tab.page.get_by_role("button", name="Sign in").click()
        tab.page.get_by_role("heading", name="Dashboard").wait_for()

        late = tab.page.locator("section[aria-labelledby=late]")
        assert "Revised draft posted" in late.inner_text()
        assert "secretary@mission.example.org" in tab.page.inner_text("nav.console")
        tab.shoot("console-dashboard-en")
        tab.open(f"{site.url}/console/?lang=ar")
        assert tab.document() == ("ar", "rtl")
        tab.shoot("console-dashboard-ar")
        assert blocked == []  # the pages need nothing the policy forbids
