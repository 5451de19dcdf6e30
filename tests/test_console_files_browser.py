"""The console's timeline files in headless Chromium: a secretary finds the page in the navigation, reads a
problem, tries a file, in English and in Arabic (screenshots kept for people to look at).

Apart from tests/test_console_files.py: Playwright's sync API keeps an event loop running in this module."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

from sqlalchemy import Engine

from tests.support.browser import OpenTab
from tests.support.browser import Visitor as Tab
from tests.support.console import ConsoleSite, console_site
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, MEETING, NOW, WriteTimeline
from tests.support.web import subscribe
from tracker.timelines.pipeline import sync_folder

REMINDERS = ["14d", "7d", "1d"]


def yaml_text(body: str) -> bytes:
    return textwrap.dedent(body).lstrip().encode()


def sign_in_tab(site: ConsoleSite, tab: Tab, address: str) -> None:
    """Sign *tab* in with the link emailed to *address* (sent from a thread: Playwright's loop runs in this one)."""
    tab.open(f"{site.url}/console/sign-in")
    tab.page.get_by_label("Email address").fill(address)
    tab.page.get_by_role("button", name="Send me a sign-in link").click()
    tab.page.get_by_role("heading", name="Check your mail").wait_for()
    links: list[str] = []
    worker = threading.Thread(target=lambda: links.append(site.emailed_link(address)))
    worker.start()
    worker.join(timeout=60)
    tab.open(links[0])
    tab.page.get_by_role("button", name="Sign in").click()
    tab.page.get_by_role("heading", name="Dashboard").wait_for()


def test_a_secretary_finds_the_files_in_the_navigation_and_tries_one_in_english_and_arabic(
    engine: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline, visit: OpenTab,
    tmp_path: Path,
) -> None:  # fmt: skip
    write_timeline("hlpf", HLPF)
    write_timeline("meeting", MEETING.replace("due: meeting - 30d", "due: meeting - 30x"))
    assert not sync_folder(engine, schedules, zone="Europe/Zurich", reminders=REMINDERS, now=NOW).ok
    (schedules / "meeting.yaml").unlink()
    assert sync_folder(engine, schedules, zone="Europe/Zurich", reminders=REMINDERS, now=NOW).ok
    write_timeline("meeting", MEETING.replace("due: meeting - 30d", "due: meeting - 30x"))
    for name in ("amina", "li"):
        subscribe(engine, f"{name}@mission.example.org", audiences="membership;secretariat")
    tried = tmp_path / "hlpf.yaml"
    tried.write_bytes(yaml_text(HLPF.replace("due: 2017-02-24", "due: 2017-02-28")))
    with console_site(engine, smtp, NOW, schedules=schedules, reminders=",".join(REMINDERS)) as site:
        site.add_user("secretary@mission.example.org", "secretary")
        tab = visit()
        blocked: list[str] = []
        tab.page.on("console", lambda note: blocked.append(note.text) if "Content Security" in note.text else None)
        sign_in_tab(site, tab, "secretary@mission.example.org")

        tab.page.get_by_role("link", name="Timeline files").click()
        tab.page.get_by_role("heading", name="Timeline files").wait_for()
        assert "meeting.yaml:" in tab.page.inner_text("#problem-list")
        tab.shoot("console-files-en")
        tab.page.get_by_label("Timeline file (YAML)").set_input_files(str(tried))
        tab.page.get_by_role("button", name="Check the file").click()
        said = " ".join(tab.page.inner_text("main").split())
        assert "The file is valid." in said and "meeting.yaml:" in said and "No plan" in said
        tab.shoot("console-files-dry-run-en")

        write_timeline("meeting", MEETING)  # fixed, not synced yet
        tab.open(f"{site.url}/console/files?lang=ar")
        assert tab.document() == ("ar", "rtl") and "لم يُزامَن بعد" in tab.page.inner_text("table.files")
        tab.shoot("console-files-ar")
        tab.page.locator("input[type=file]").set_input_files(str(tried))
        tab.page.locator("form[enctype] button[type=submit]").click()
        said = " ".join(tab.page.inner_text("main").split())
        assert tab.document() == ("ar", "rtl") and "hlpf/revised-draft" in said and "cwg-32/meeting" in said
        tab.shoot("console-files-dry-run-ar")
        assert blocked == []
