"""The console's sign-in and dashboard, over HTTP: a real server, a real SMTP server, the clock moved by the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from tests.support.cli import tracker
from tests.support.console import ConsoleSite, console_site, csrf_of
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, NOW, WriteTimeline
from tracker.store.engine import transaction
from tracker.store.models import ConsoleSession, Delivery, SignInLink, Subscriber
from tracker.timelines.pipeline import sync_folder

LATE = NOW.replace(month=2, day=27)  # the revised draft was due on 24 February, and is not posted


@pytest.fixture
def site(engine: Engine, smtp: SMTPTestServer) -> Iterator[ConsoleSite]:
    with console_site(engine, smtp, LATE) as found:
        yield found


def test_a_user_signs_in_with_the_emailed_link_and_comes_back_to_the_page_asked_for(site: ConsoleSite) -> None:
    site.add_user("amina@mission.example.org", "viewer")
    browser = site.browser()

    away = browser.get("/console/?lang=fr")
    back = unquote(away.headers["location"].split("next=")[1])
    asked = site.ask_link(browser, "amina@mission.example.org", back=back)
    link = site.emailed_link("amina@mission.example.org")
    signed_in = site.use_link(browser, link)
    dashboard = browser.get(signed_in.headers["location"])

    assert away.status_code == 303 and away.headers["location"] == "/console/sign-in?next=%2Fconsole%2F%3Flang%3Dfr"
    assert asked.status_code == 303 and asked.headers["location"] == "/console/sent"
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/?lang=fr"
    assert dashboard.status_code == 200 and "amina@mission.example.org" in dashboard.text
    message = site.emails_to("amina@mission.example.org")[0]
    assert message["Subject"] == "Your link to sign in to the console"
    assert message["List-Unsubscribe"] is None  # no list to leave: a console user is not a subscriber
    assert "The link works once, for 15 minutes." in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_the_store_keeps_only_hashes_of_the_link_and_of_the_session(site: ConsoleSite) -> None:
    browser = site.sign_in("amina@mission.example.org", "viewer")
    link = site.link_in(site.emails_to("amina@mission.example.org")[0])

    with transaction(site.engine) as session:
        stored = [(row.token_hash, row.browser_hash) for row in session.exec(select(SignInLink))]
        sessions = [row.id_hash for row in session.exec(select(ConsoleSession))]
    token = link.rsplit("/", 1)[1]
    cookie = next(value for name, value in browser.cookies.items() if name.endswith("session"))
    assert len(stored) == 1 and token not in stored[0]
    assert len(sessions) == 1 and cookie.split(".")[0] not in sessions[0]


def test_a_link_works_once(site: ConsoleSite) -> None:
    site.add_user("amina@mission.example.org", "viewer")
    browser = site.browser()
    site.ask_link(browser, "amina@mission.example.org")
    link = site.emailed_link("amina@mission.example.org")

    first = site.use_link(browser, link)
    again = site.use_link(browser, link)

    assert first.status_code == 303
    assert again.status_code == 410 and "it was used already" in again.text


def test_a_link_expires_after_15_minutes(site: ConsoleSite) -> None:
    site.add_user("amina@mission.example.org", "viewer")
    browser = site.browser()
    site.ask_link(browser, "amina@mission.example.org")
    link = site.emailed_link("amina@mission.example.org")

    site.clock.move(timedelta(minutes=15))
    late = site.use_link(browser, link)

    assert late.status_code == 410 and "it has expired" in late.text
    assert browser.get("/console/").status_code == 303


def test_opening_the_link_spends_nothing_and_another_browser_cannot_use_it(site: ConsoleSite) -> None:
    site.add_user("amina@mission.example.org", "viewer")
    asker = site.browser()
    site.ask_link(asker, "amina@mission.example.org")
    link = site.emailed_link("amina@mission.example.org")

    scanner = site.browser().get(link.removeprefix(site.url))  # a mail scanner follows every link
    elsewhere = site.use_link(site.browser(), link)
    mine = site.use_link(asker, link)

    assert scanner.status_code == 200
    assert elsewhere.status_code == 403 and "in the browser where you asked for it" in elsewhere.text
    assert mine.status_code == 303  # the right browser still can


def test_the_answer_is_the_same_for_an_unknown_address(site: ConsoleSite) -> None:
    site.add_user("amina@mission.example.org", "viewer")

    known = site.ask_link(site.browser(), "amina@mission.example.org")
    unknown = site.ask_link(site.browser(), "nobody@mission.example.org")
    site.send_due()
    site.smtp.wait_until(lambda server: len(server.received) >= 1)

    assert (known.status_code, known.headers["location"]) == (unknown.status_code, unknown.headers["location"])
    assert [mail.rcpt_tos for mail in site.smtp.received] == [("amina@mission.example.org",)]


def test_sign_in_requests_are_limited_per_address_and_per_client(engine: Engine, smtp: SMTPTestServer) -> None:
    with console_site(engine, smtp, LATE, console_address_limit=2, console_client_limit=5) as site:
        browser = site.browser()
        per_address = [site.ask_link(browser, "amina@mission.example.org").status_code for _ in range(3)]
        others = [site.ask_link(browser, f"li{n}@mission.example.org").status_code for n in range(3)]

    assert per_address == [303, 303, 429]
    assert others == [303, 303, 429]  # five from this client in the window, whatever the addresses or answers


def test_sign_out_and_sign_out_everywhere_end_sessions_in_the_store(site: ConsoleSite) -> None:
    here = site.sign_in("amina@mission.example.org", "viewer")
    site.ask_link(there := site.browser(), "amina@mission.example.org")
    site.use_link(there, site.emailed_link("amina@mission.example.org"))
    kept = site.sign_in("li@mission.example.org", "viewer")

    out = here.post("/console/sign-out", data={"csrf": csrf_of(here.get("/console/"))})
    assert out.status_code == 303 and here.get("/console/").status_code == 303
    assert there.get("/console/").status_code == 200
    everywhere = there.post("/console/sign-out", data={"csrf": csrf_of(there.get("/console/")), "everywhere": "1"})

    assert everywhere.status_code == 303 and there.get("/console/").status_code == 303
    assert kept.get("/console/").status_code == 200  # another user's session is theirs


def test_a_session_ends_after_2_hours_idle_and_12_hours_in_all(site: ConsoleSite) -> None:
    browser = site.sign_in("amina@mission.example.org", "viewer")

    answers = []
    for _ in range(7):  # active all along, every 1 h 59: only the absolute limit ends it
        site.clock.move(timedelta(hours=1, minutes=59))
        answers.append(browser.get("/console/").status_code)
    idle = site.sign_in("li@mission.example.org", "viewer")
    site.clock.move(timedelta(hours=2))

    assert answers == [200] * 6 + [303]  # 11 h 54 still in, 13 h 53 out
    assert idle.get("/console/").status_code == 303


def test_a_post_without_its_csrf_token_is_refused(site: ConsoleSite) -> None:
    browser = site.sign_in("amina@mission.example.org", "viewer")

    forged = browser.post("/console/sign-out", data={"everywhere": "1"})
    wrong = browser.post("/console/sign-in", data={"csrf": "x", "email": "amina@mission.example.org"})
    hostile = browser.post("/console/sign-out", data={"csrf": "é" * 5000, "everywhere": "1"})

    assert forged.status_code == 403 and browser.get("/console/").status_code == 200
    assert wrong.status_code == 403 and hostile.status_code == 403


def test_every_console_answer_is_no_store_with_a_policy_that_runs_no_script(site: ConsoleSite) -> None:
    browser = site.sign_in("amina@mission.example.org", "viewer")

    answers = [browser.get("/console/"), site.browser().get("/console/"), browser.get("/console/sign-in"),
               browser.get("/console/nothing-here"), browser.post("/console/sign-out")]  # fmt: skip

    for answer in answers:
        assert answer.headers["cache-control"] == "no-store", answer.url
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy and "frame-ancestors 'none'" in policy


def test_a_viewer_sees_the_late_step_on_the_dashboard_in_every_language(
    site: ConsoleSite, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    assert sync_folder(site.engine, schedules, zone="Europe/Zurich", reminders=["14d", "7d", "1d"], now=NOW).ok
    browser = site.sign_in("amina@mission.example.org", "viewer")

    english = browser.get("/console/")
    arabic = browser.get("/console/?lang=ar")

    assert english.status_code == 200
    late = english.text.split('id="late"')[1].split("</section>")[0]
    assert "Revised draft posted" in late
    assert 'dir="rtl"' in arabic.text and 'lang="ar"' in arabic.text


def test_the_dashboard_counts_what_goes_out_and_lists_failures_and_suspended_addresses(site: ConsoleSite) -> None:
    now = site.clock()
    with transaction(site.engine, write=True) as session:
        people = [Subscriber(email=f"m{n}@mission.example.org", email_key=f"m{n}@mission.example.org",
                             state="suspended" if n == 2 else "confirmed", created_at=now, changed_at=now)
                  for n in range(3)]  # fmt: skip
        session.add_all(people)
        session.flush()
        for n, person in enumerate(people):
            send_at = now + timedelta(days=2 if n < 2 else 9)  # the third is beyond the week
            session.add(outbox_row(person.id, "reminder", "planned", send_at, slot="7d"))
            session.add(outbox_row(person.id, "digest", "planned", now + timedelta(days=1), slot="w"))
        refused = "550 <b>no such user</b>"
        session.add(outbox_row(people[0].id, "opened", "failed", now - timedelta(days=1), error=refused))
        bounced = outbox_row(people[1].id, "reminder", "bounced", now - timedelta(days=2), slot="1d",
                             error="5.1.1 550 mailbox unavailable")  # fmt: skip
        bounced.reply = "250 2.0.0 Ok: queued"  # the relay took it, then it came back
        session.add(bounced)
    browser = site.sign_in("amina@mission.example.org", "viewer")

    page = browser.get("/console/").text

    outgoing = page.split('id="outgoing"')[1].split("</section>")[0]
    assert "<td><code>digest</code></td><td>3</td><td>3</td>" in outgoing
    assert "<td><code>reminder</code></td><td>2</td><td>2</td>" in outgoing
    failures = page.split('id="failures"')[1].split("</section>")[0]
    assert "m0@mission.example.org" in failures and "550 &lt;b&gt;no such user&lt;/b&gt;" in failures
    assert "m1@mission.example.org" in failures and "5.1.1 550 mailbox unavailable" in failures  # a bounce
    assert "bounced" in failures and "2 messages failed." in failures
    assert "m2@mission.example.org" in page.split('id="suspended"')[1]


def outbox_row(subscriber_id: int | None, kind: str, state: str, send_at: datetime, *, slot: str = "",
               error: str = "") -> Delivery:  # fmt: skip
    assert subscriber_id is not None
    return Delivery(subscriber_id=subscriber_id, timeline_id="hlpf", milestone_key="revised-draft", kind=kind,
                    slot=slot, state=state, send_at=send_at, attempt_at=send_at, created_at=send_at,
                    updated_at=send_at, last_error=error)  # fmt: skip


def test_the_delivery_log_shows_sign_in_emails_with_their_address(
    site: ConsoleSite, env: dict[str, str], tmp_path: Path
) -> None:
    site.sign_in("amina@mission.example.org", "viewer")

    listed = tracker("deliveries", "--to", "Amina@mission.example.org", "--json", env=env, cwd=tmp_path)

    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    sent = [("amina@mission.example.org", "sign-in", "sent")]
    assert [(row["to"], row["kind"], row["state"]) for row in rows] == sent


def test_signing_in_again_ends_the_session_the_browser_had(site: ConsoleSite) -> None:
    browser = site.sign_in("amina@mission.example.org", "viewer")
    before = dict(browser.cookies)

    site.ask_link(browser, "amina@mission.example.org")
    site.use_link(browser, site.emailed_link("amina@mission.example.org"))
    old = site.browser()
    old.cookies.update(before)

    assert browser.get("/console/").status_code == 200
    assert old.get("/console/").status_code == 303  # a copy of the earlier cookie is worth nothing now
