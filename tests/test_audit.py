"""The audit log: every event names who did it, and `tracker events` lists them, newest first, filtered."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import select

from tests.support.cli import tracker
from tests.support.console import console_site, csrf_of
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, NOW, WriteTimeline
from tests.support.web import SECRET
from tracker.store.audit import AuditQuery, list_events
from tracker.store.engine import open_store, transaction
from tracker.store.models import Event, Subscriber
from tracker.subscribers.personal import stranger
from tracker.subscribers.registry import unsubscribe
from tracker.web.subscriptions import SELF


def listed(env: dict[str, str], tmp_path: Path, *options: str) -> list[dict[str, Any]]:
    result = tracker("events", "--json", *options, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_tracker_events_says_who_synced_completed_and_reopened_newest_first(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    tracker("done", "hlpf/revised-draft", "--at", "2017-02-20", "--note", "posted", env=env, cwd=tmp_path)
    tracker("reopen", "hlpf/revised-draft", "--note", "wrong file", env=env, cwd=tmp_path)

    everything = listed(env, tmp_path)
    by_cli = listed(env, tmp_path, "--actor", "cli")
    reopened = listed(env, tmp_path, "--kind", "reopened")

    assert [row["id"] for row in everything] == sorted((row["id"] for row in everything), reverse=True)
    assert {row["actor"] for row in everything if row["kind"] == "added"} == {"sync"}
    kinds = [(row["kind"], row["subject"]) for row in by_cli]
    assert kinds.index(("reopened", "hlpf/revised-draft")) < kinds.index(("completed", "hlpf/revised-draft"))
    assert ("rescheduled", "hlpf/member-comments") in kinds  # the cascade is the completion's author's too
    assert all(str(row["actor"]).startswith("cli:") for row in by_cli)
    # A completion on a date counts from the day's start in Geneva.
    assert [row["detail"] for row in reopened] == ["2017-02-19 23:00 UTC → —; note: wrong file"]
    assert listed(env, tmp_path, "--actor", "console") == []
    assert len(listed(env, tmp_path, "--limit", "2")) == 2


def test_tracker_events_prints_a_bounded_table_and_refuses_a_bad_since(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)

    table = tracker("events", "--since", "2000-01-01", "--limit", "3", env=env, cwd=tmp_path)
    future = tracker("events", "--since", "2199-01-01", env=env, cwd=tmp_path)
    bad = tracker("events", "--since", "yesterday-ish", env=env, cwd=tmp_path)

    assert table.returncode == 0, table.stderr
    assert "sync" in table.stdout and "added" in table.stdout
    assert len([line for line in table.stdout.splitlines() if " added " in line]) == 3
    assert "no events match" in future.stderr
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_console_sign_ins_and_sign_outs_are_recorded_with_who(engine: Engine, smtp: SMTPTestServer) -> None:
    with console_site(engine, smtp, NOW) as site:
        browser = site.sign_in("amina@mission.example.org", "secretary")
        page = browser.get("/console/")
        browser.post("/console/sign-out", data={"csrf": csrf_of(page), "everywhere": "1"})

    with transaction(engine) as session:
        entries = list_events(session, AuditQuery(actor="console"))

    assert [(e.kind, e.actor, e.subject) for e in entries] == [
        ("console_signed_out", "console:amina@mission.example.org", "amina@mission.example.org"),
        ("console_signed_in", "console:amina@mission.example.org", "amina@mission.example.org"),
    ]
    assert entries[0].detail == "everywhere" and entries[1].detail == "role: secretary; method: link"


def test_a_page_or_action_refused_for_the_role_is_recorded_with_what_was_asked(
    engine: Engine, smtp: SMTPTestServer
) -> None:
    with console_site(engine, smtp, NOW) as site:
        browser = site.sign_in("olga@mission.example.org", "viewer")
        page = browser.get("/console/subscribers")
        export = browser.get("/console/subscribers/export")
        hold = browser.post("/console/outbox/1/hold", data={"csrf": csrf_of(page)})

    with transaction(engine) as session:
        entries = list_events(session, AuditQuery(kind="console_refused"))

    assert (export.status_code, hold.status_code) == (403, 403)
    assert [(e.actor, e.subject, e.detail) for e in entries] == [
        ("console:olga@mission.example.org", "olga@mission.example.org",
         "role: viewer; reason: POST /console/outbox/1/hold needs secretary"),
        ("console:olga@mission.example.org", "olga@mission.example.org",
         "role: viewer; reason: GET /console/subscribers/export needs secretary"),
    ]  # fmt: skip


def test_every_sign_in_link_asked_for_and_every_refused_link_is_recorded(engine: Engine, smtp: SMTPTestServer) -> None:
    with console_site(engine, smtp, NOW) as site:
        site.add_user("amina@mission.example.org", "secretary")
        browser, other = site.browser(), site.browser()
        site.ask_link(browser, "nobody@mission.example.org")
        site.ask_link(browser, "amina@mission.example.org")
        link = site.emailed_link("amina@mission.example.org")  # read from the SMTP server
        elsewhere = other.post(link, data={"csrf": csrf_of(other.get(link))})  # another browser: refused
        site.use_link(browser, link)
        again = site.use_link(browser, link)  # spent
        unknown = other.post("/console/sign-in/not-a-link", data={"csrf": csrf_of(other.get(link))})

    with transaction(engine) as session:
        asked = list_events(session, AuditQuery(kind="console_sign_in_requested"))
        refused = list_events(session, AuditQuery(kind="console_sign_in_refused"))

    assert (elsewhere.status_code, again.status_code, unknown.status_code) == (403, 410, 410)
    assert [(e.actor, e.subject, e.detail) for e in reversed(asked)] == [
        ("anonymous", stranger(SECRET, "nobody@mission.example.org"), "reason: no such user; client: 127.0.0.1"),
        ("anonymous", "amina@mission.example.org", "client: 127.0.0.1"),
    ]  # fmt: skip
    assert stranger(SECRET, "nobody@mission.example.org").startswith("ref:")  # no account: never the address
    assert [(e.subject, e.detail) for e in reversed(refused)] == [
        ("amina@mission.example.org", "method: link; reason: link other-browser"),
        ("amina@mission.example.org", "method: link; reason: link used"),
        ("", "method: link; reason: link unknown"),
    ]
    assert "not-a-link" not in str([e.detail for e in refused])  # a token given is never kept


def test_a_client_guessing_sign_in_links_is_stopped_before_it_fills_the_log(
    engine: Engine, smtp: SMTPTestServer
) -> None:
    with console_site(engine, smtp, NOW, console_client_limit=10) as site:
        browser = site.browser()
        csrf = csrf_of(browser.get("/console/sign-in/guess"))
        answers = [browser.post(f"/console/sign-in/guess-{n}", data={"csrf": csrf}).status_code for n in range(30)]

    with transaction(engine) as session:
        refused = list_events(session, AuditQuery(kind="console_sign_in_refused"))

    assert answers == [410] * 10 + [429] * 20
    assert len(refused) == 10  # each refusal is a row, until the limit; the rest cost no write


def test_over_https_every_console_cookie_is_one_browsers_accept(engine: Engine, smtp: SMTPTestServer) -> None:
    """A __Host- cookie needs Secure, Path=/ and no Domain (RFC 6265bis 4.1.3.2), else browsers drop it.

    The page to come back to after signing in was set on /console: over https it was lost.
    """
    with console_site(engine, smtp, NOW, base_url="https://tracker.example.org") as site:
        client = site.browser()
        page = client.get("/console/sign-in", params={"next": "/console/audit"})
        browser = page.headers["set-cookie"].split(";")[0]  # sent back by hand: the test speaks http
        form = {"csrf": csrf_of(page), "email": "amina@mission.example.org", "next": "/console/audit"}
        asked = client.post("/console/sign-in", headers={"cookie": browser}, data=form)

    cookies = page.headers.get_list("set-cookie") + asked.headers.get_list("set-cookie")
    assert asked.status_code == 303 and len(cookies) == 2  # the browser's id, the page to come back to
    for cookie in cookies:
        name, *attributes = (part.strip() for part in cookie.split(";"))
        assert name.startswith("__Host-tracker-"), cookie
        assert "Secure" in attributes and "Path=/" in attributes, cookie
        assert not any(a.lower().startswith("domain") for a in attributes), cookie


def test_the_audit_page_filters_pages_on_and_escapes_what_it_shows(engine: Engine, smtp: SMTPTestServer) -> None:
    with transaction(engine, write=True) as session:
        for n in range(60):
            session.add(Event(at=NOW + timedelta(minutes=n), kind="subscriber_added", actor="cli:ops",
                              detail={"email": f"m{n}@mission.example.org"}))  # fmt: skip
        session.add(Event(at=NOW, kind="completed", timeline_id="hlpf", milestone_key="draft", actor="api",
                          detail={"note": "<script>alert(1)</script>"}))  # fmt: skip
    with console_site(engine, smtp, NOW + timedelta(days=1)) as site:
        browser = site.sign_in("amina@mission.example.org", "viewer")
        first = browser.get("/console/audit", params={"actor": "cli"})
        older = browser.get(first.text.split('<a href="')[-1].split('"')[0].replace("&amp;", "&"))
        api = browser.get("/console/audit", params={"actor": "api", "kind": "completed", "since": "2017-01-01"})
        bad = browser.get("/console/audit", params={"since": "yesterday"})

    assert first.status_code == 200 and first.text.count("<tr>") == 1 + 50  # the head row and a page
    assert "m59@mission.example.org" in first.text and "m9@mission.example.org" not in first.text
    assert older.text.count("<tr>") == 1 + 10 and "m9@mission.example.org" in older.text
    assert "Older events" not in older.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in api.text and "<script>" not in api.text
    assert api.text.count("<tr>") == 2
    assert bad.status_code == 422 and "Write the day as YYYY-MM-DD." in bad.text


def test_subscriber_changes_name_the_cli_user_or_the_subscriber_themselves(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    csv = tmp_path / "members.csv"
    csv.write_text("email,name\nli@mission.example.org,Li\n", encoding="utf-8")
    tracker("subscribers", "add", "amina@mission.example.org", "--confirmed", env=env, cwd=tmp_path)
    tracker("subscribers", "import", str(csv), "--confirmed", env=env, cwd=tmp_path)
    tracker("subscribers", "remove", "amina@mission.example.org", env=env, cwd=tmp_path)
    engine = open_store(database_url)
    try:
        with transaction(engine, write=True) as session:
            li = session.exec(select(Subscriber).where(Subscriber.email_key == "li@mission.example.org")).one()
            unsubscribe(session, li, NOW, SELF)  # as the one-click link in every email does
        with transaction(engine) as session:
            entries = list_events(session, AuditQuery())
    finally:
        engine.dispose()

    found = [(e.kind, e.subject, e.actor.split(":")[0]) for e in reversed(entries)]
    assert found == [
        ("subscriber_added", "amina@mission.example.org", "cli"),
        ("subscriber_confirmed", "amina@mission.example.org", "cli"),
        ("subscriber_added", "li@mission.example.org", "cli"),
        ("subscriber_confirmed", "li@mission.example.org", "cli"),
        ("subscriber_unsubscribed", "amina@mission.example.org", "cli"),
        ("subscriber_unsubscribed", "li@mission.example.org", "subscriber"),
    ]


def test_console_users_added_changed_and_removed_are_recorded_with_the_cli_user(
    env: dict[str, str], tmp_path: Path
) -> None:
    tracker("users", "add", "salma@secretariat.example.org", "--role", "viewer", env=env, cwd=tmp_path)
    tracker("users", "add", "salma@secretariat.example.org", "--role", "viewer", env=env, cwd=tmp_path)
    tracker("users", "add", "salma@secretariat.example.org", "--role", "secretary", env=env, cwd=tmp_path)
    tracker("users", "remove", "salma@secretariat.example.org", env=env, cwd=tmp_path)

    rows = listed(env, tmp_path, "--actor", "cli")

    assert [(row["kind"], row["subject"], row["detail"]) for row in reversed(rows)] == [
        ("console_user_added", "salma@secretariat.example.org", "role: viewer"),
        ("console_user_updated", "salma@secretariat.example.org", "role: secretary"),
        ("console_user_removed", "salma@secretariat.example.org", "role: secretary"),
    ]


def test_subscriber_changes_made_in_the_console_name_the_signed_in_user(engine: Engine, smtp: SMTPTestServer) -> None:
    with console_site(engine, smtp, NOW) as site:
        browser = site.sign_in("sec@un.example.org", "secretary")
        page = browser.get("/console/subscribers")
        added = browser.post("/console/subscribers", data={"csrf": csrf_of(page), "email": "ken@mission.example.org",
                                                           "audiences": "membership", "confirmed": "1"})  # fmt: skip
        person = added.headers["location"].split("?")[0]
        browser.post(f"{person}/suspend", data={"csrf": csrf_of(page)})

    with transaction(engine) as session:
        entries = list_events(session, AuditQuery(actor="console:sec@un.example.org"))

    assert [(e.kind, e.subject) for e in reversed(entries)] == [
        ("console_signed_in", "sec@un.example.org"),
        ("subscriber_added", "ken@mission.example.org"),
        ("subscriber_confirmed", "ken@mission.example.org"),
        ("subscriber_suspended", "ken@mission.example.org"),
    ]


def test_a_page_position_that_is_a_digit_but_not_ascii_is_ignored_not_a_server_error(
    engine: Engine, smtp: SMTPTestServer
) -> None:
    """'²'.isdigit() is true and int('²') raises: the audit and outbox pages took it for a page position."""
    with console_site(engine, smtp, NOW) as site:
        browser = site.sign_in("olga@mission.example.org", "viewer")
        audit = browser.get("/console/audit", params={"before": "²"})
        outbox = browser.get("/console/outbox", params={"before": "٣"})

    assert (audit.status_code, outbox.status_code) == (200, 200)


def test_a_console_form_that_cannot_be_read_is_refused_with_a_page_not_a_server_error(
    engine: Engine, smtp: SMTPTestServer
) -> None:
    """Anyone may post to the sign-in form: bad UTF-8, %00 or 300 fields must not reach a traceback."""
    bodies = (b"email=\xff", b"email=a%00b", b"&".join(b"f%d=1" % n for n in range(300)))
    with console_site(engine, smtp, NOW) as site:
        browser = site.browser()
        form = {"content-type": "application/x-www-form-urlencoded"}
        answers = [browser.post("/console/sign-in", content=body, headers=form) for body in bodies]
        signed_in = site.sign_in("olga@mission.example.org", "secretary")
        token = signed_in.post("/console/tokens", content=bodies[0], headers=form)

    assert [a.status_code for a in answers] == [400, 400, 400] and token.status_code in (400, 403)
    assert all("could not be read" in a.text and a.headers["cache-control"] == "no-store" for a in answers)
