"""The console in headless Chromium: a secretary signs in by the emailed link, sees a late step, marks it
done after reading who will be told, the members are told, and the audit log says who did it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from tests.support.browser import OpenTab
from tests.support.browser import Visitor as Tab
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
        tab.page.get_by_role("link", name="Outbox").click()  # the notice the completion sent, in the log
        tab.page.get_by_label("Kind").select_option("opened")
        tab.page.get_by_role("button", name="Search").click()
        sent = " ".join(tab.page.locator("table.outbox").inner_text().split())
        assert "amina@mission.example.org opened hlpf/member-comments" in sent and " sent 1 250 " in sent

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

        site.add_user("viewer@mission.example.org", "viewer")  # a viewer reads, and is refused every action
        viewer = visit()
        sign_in_tab(site, viewer, "viewer@mission.example.org")
        for action in ("timelines/hlpf/revised-draft/done", "subscribers/export"):
            assert viewer.open(f"{site.url}/console/{action}") == 403
            assert "Your role does not allow this page" in viewer.page.inner_text("body")


def mark_done(tab: Tab, site: ConsoleSite) -> None:
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


def reopen(tab: Tab, site: ConsoleSite) -> None:
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


def sign_in_tab(site: ConsoleSite, tab: Tab, address: str) -> None:
    """Sign in *tab* by the emailed link, as a person does."""
    tab.open(f"{site.url}/console/sign-in")
    tab.page.get_by_label("Email address").fill(address)
    tab.page.get_by_role("button", name="Send me a sign-in link").click()
    tab.page.get_by_role("heading", name="Check your mail").wait_for()
    tab.open(emailed_link(site, address))
    tab.page.get_by_role("button", name="Sign in").click()
    tab.page.get_by_role("heading", name="Dashboard").wait_for()


def test_a_secretary_imports_a_csv_with_one_bad_row_sees_it_reported_and_exports(
    engine: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline, visit: OpenTab,
    tmp_path: Path,
) -> None:  # fmt: skip
    write_timeline("hlpf", HLPF)
    assert sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["14d", "7d", "1d"], now=NOW).ok
    members = tmp_path / "members.csv"
    members.write_text("timezone,email,name\nAsia/Tokyo,ken@mission.example.org,Ken\n,not-an-address,Nobody\n"
                       "Europe/Paris,=cmd@mission.example.org,=SUM(A1)\n", encoding="utf-8")  # fmt: skip
    with console_site(engine, smtp, LATE) as site:
        site.add_user("secretary@mission.example.org", "secretary")
        tab = visit()
        sign_in_tab(site, tab, "secretary@mission.example.org")

        tab.page.get_by_role("link", name="Subscribers").click()
        tab.page.get_by_label("CSV file", exact=True).set_input_files(str(members))
        tab.page.get_by_role("button", name="Check the file").click()
        outcome = tab.page.locator("#outcome").inner_text()
        problems = tab.page.locator("#problems").inner_text()
        tab.shoot("console-import-preview-en")
        tab.page.get_by_role("button", name="Save the good rows").click()
        saved = tab.page.locator("#outcome").inner_text()
        tab.page.get_by_role("link", name="Back to the subscribers").click()
        tab.page.get_by_label("Address or name").fill("ken")
        tab.page.get_by_role("button", name="Search").click()
        found = tab.page.locator("table.subscribers").inner_text()
        with tab.page.expect_download() as download:
            tab.page.get_by_role("link", name="Export as CSV").click()
        exported = Path(download.value.path()).read_text(encoding="utf-8")
        tab.open(f"{site.url}/console/subscribers?lang=ar")
        assert tab.document() == ("ar", "rtl")
        tab.shoot("console-subscribers-ar")
        tab.open(f"{site.url}/console/outbox?lang=ar")
        tab.page.get_by_role("link", name="1", exact=True).click()
        tab.shoot("console-outbox-row-ar")

        assert "Saving would add 2, update 0 and leave 0 unchanged. Bad rows left out: 1." in outcome
        assert problems.startswith("members.csv:3: ")
        assert "Saved: 2 added" in saved
        assert "ken@mission.example.org" in found and "=cmd" not in found
        assert "'=cmd@mission.example.org,'=SUM(A1)" in exported  # a spreadsheet shows these, it runs nothing
