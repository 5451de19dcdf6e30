"""The console in headless Chromium: a secretary signs in by the emailed link, sees a late step, marks it
done after reading who will be told, the members are told, and the audit log says who did it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from tests.support.browser import OpenTab, Visitor
from tests.support.console import ConsoleSite, console_site
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, NOW, WriteTimeline
from tests.support.web import subscribe
from tracker.delivery.notices import handle_events
from tracker.store.engine import transaction
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


def test_a_secretary_signs_in_sees_the_late_step_marks_it_done_and_finds_it_in_the_audit_log(
    engine: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline, visit: OpenTab
) -> None:
    write_timeline("hlpf", HLPF)
    assert sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["14d", "7d", "1d"], now=NOW).ok
    subscribe(engine, "amina@mission.example.org")  # membership: waiting for the revised draft
    handle_notices(engine, LATE)  # what happened before is history: the notice handler starts from here
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
        tab.open(f"{site.url}/console/")
        mark_done(tab, site)
        handle_notices(engine, LATE)  # the running dispatcher's next pass: the window's audience is told
        in_thread(site.send_due)
        site.smtp.wait_until(lambda _: any("Now open" in str(m.parse()["Subject"]) for m in site.smtp.received))

        tab.page.get_by_role("link", name="Audit log").click()
        tab.page.get_by_label("Who").fill("console")
        tab.page.get_by_label("Kind").fill("completed")
        tab.page.get_by_role("button", name="Filter").click()
        rows = tab.page.locator("table.audit tbody").inner_text()
        assert "console:secretary@mission.example.org" in rows and "hlpf/revised-draft" in rows
        assert "Posted as C17/3" in rows
        tab.shoot("console-audit-en")
        reopen(tab, site)
        tab.open(f"{site.url}/console/timelines/hlpf/revised-draft/done?lang=ar")
        tab.page.locator("form[method=post] button[type=submit]").last.click()
        assert tab.document() == ("ar", "rtl") and "إشعار «متاح الآن»" in tab.page.inner_text("ul.notices")
        tab.shoot("console-confirm-done-ar")
        assert blocked == []  # the pages need nothing the policy forbids


def mark_done(tab: Visitor, site: ConsoleSite) -> None:
    """From the dashboard: the timeline, the late step's "Mark done", a note, the confirmation, confirmed."""
    tab.page.get_by_role("link", name="Timelines").click()
    tab.page.get_by_role("link", name="ITU Council contribution to HLPF-17").click()
    tab.page.locator("#revised-draft").get_by_role("link", name="Mark done").click()
    tab.page.get_by_label("Note (shown with the completion)").fill("Posted as C17/3")
    tab.page.get_by_role("button", name="Show what will happen").click()
    told = tab.page.locator("ul.notices").inner_text()
    assert "to 1 subscriber (Membership)" in " ".join(told.split())
    tab.shoot("console-confirm-done-en")
    tab.page.get_by_role("button", name="Confirm").click()
    tab.page.locator("#revised-draft").get_by_text("Posted as C17/3").wait_for()
    assert "done" in tab.page.locator("#revised-draft .state").inner_text()


def reopen(tab: Visitor, site: ConsoleSite) -> None:
    """The member was told the window opened: reopening says a correction goes to them, and the step is late again."""
    tab.page.get_by_role("link", name="Timelines").click()
    tab.page.get_by_role("link", name="ITU Council contribution to HLPF-17").click()
    tab.page.locator("#revised-draft").get_by_role("link", name="Reopen").click()
    tab.page.get_by_label("Why (quoted to members told it had opened)").fill("The wrong file was posted.")
    tab.page.get_by_role("button", name="Show what will happen").click()
    told = " ".join(tab.page.locator("ul.notices").inner_text().split())
    assert "A correction about “Membership comments on the revised draft” to 1 subscriber already told" in told
    tab.page.get_by_role("button", name="Confirm").click()
    tab.page.locator("#revised-draft .state-late").wait_for()
    tab.shoot("console-timeline-en")


def handle_notices(engine: Engine, now: datetime) -> None:
    with transaction(engine, write=True) as session:
        handle_events(session, now)


def in_thread(work: Callable[[], None]) -> None:
    # Playwright's sync API keeps an event loop running in this thread; the outbox pass runs its own.
    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=60)
