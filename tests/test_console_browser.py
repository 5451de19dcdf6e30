"""The console in headless Chromium: a secretary signs in by the emailed link and sees a late step."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Engine

from tests.support.browser import OpenTab
from tests.support.browser import Visitor as Tab
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
