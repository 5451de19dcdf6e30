"""The console's timeline actions over HTTP: mark done, amend and reopen, each after a confirmation that
says what will change and who is told; recorded as `tracker done`/`reopen` record them, by the user."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, update
from sqlmodel import col, select

from tests.support.console import ConsoleSite, console_site, csrf_of
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, NOW, WriteTimeline
from tests.support.web import subscribe
from tracker.delivery.notices import handle_events
from tracker.store.engine import transaction
from tracker.store.models import CompletionRecord, Delivery, Event
from tracker.timelines.pipeline import sync_folder

LATE = NOW.replace(month=2, day=27)  # the revised draft was due on 24 February, and is not posted
STEP = "/console/timelines/hlpf/revised-draft"
SECRETARY = "salma@secretariat.example.org"
LINK = "https://itu.example/C17-INF-3"


@pytest.fixture
def site(engine: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline) -> Iterator[ConsoleSite]:
    write_timeline("hlpf", HLPF)
    assert sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["14d", "7d", "1d"], now=NOW).ok
    for name in ("amina", "li"):
        subscribe(engine, f"{name}@mission.example.org")  # membership: waiting for the revised draft
    handle(engine, LATE)  # what happened before is history: the notice handler starts from here
    with console_site(engine, smtp, LATE) as found:
        yield found


def handle(engine: Engine, at: object) -> None:
    """One pass of the notice handler, as the running dispatcher makes after each change."""
    with transaction(engine, write=True) as session:
        handle_events(session, at)  # type: ignore[arg-type]


def notices(engine: Engine, kind: str) -> list[tuple[str, str, str]]:
    with transaction(engine) as session:
        rows = session.exec(select(Delivery).where(Delivery.kind == kind).order_by(col(Delivery.id))).all()
        return [(row.milestone_key, row.state, row.reason) for row in rows]


def events_by(engine: Engine, actor: str) -> list[tuple[str, str | None]]:
    with transaction(engine) as session:
        rows = session.exec(select(Event).where(Event.actor == actor).order_by(col(Event.id))).all()
        return [(row.kind, row.milestone_key) for row in rows]


def send(browser: httpx.Client, path: str, **fields: str) -> httpx.Response:
    """Fill in the form at *path* and send it, as a person would."""
    form = browser.get(path)
    assert form.status_code == 200, form.text
    return browser.post(path, data={"csrf": csrf_of(form), **fields})


def mark_done(site: ConsoleSite, browser: httpx.Client, **fields: str) -> httpx.Response:
    asked = send(browser, f"{STEP}/done", **fields)
    assert asked.status_code == 200, asked.text
    return browser.post(f"{STEP}/done", data={"csrf": csrf_of(asked), **fields, "confirm": "1"})


def test_marking_done_shows_who_will_be_told_then_records_it_as_tracker_done_does(site: ConsoleSite) -> None:
    browser = site.sign_in(SECRETARY, "secretary")
    page = browser.get("/console/timelines/hlpf")
    assert 'href="/console/timelines/hlpf/revised-draft/done"' in page.text

    confirm = send(browser, f"{STEP}/done", at="2017-02-27", note="Posted as C17/3", link=LINK)

    assert confirm.status_code == 200
    said = " ".join(confirm.text.split())
    assert "Mark “Revised draft posted” done" in said
    assert "A “now open” notice about “Membership comments on the revised draft” to 2 subscribers (Membership)" in said
    assert "Posted as C17/3" in said and LINK in said
    with transaction(site.engine) as session:  # nothing is recorded before the confirmation
        assert session.exec(select(CompletionRecord)).all() == []
    assert events_by(site.engine, f"console:{SECRETARY}") == [("console_signed_in", None)]

    done = browser.post(f"{STEP}/done", data={"csrf": csrf_of(confirm), "at": "2017-02-27", "note": "Posted as C17/3",
                                              "link": LINK, "confirm": "1"})  # fmt: skip
    handle(site.engine, LATE)

    assert done.status_code == 303 and done.headers["location"] == "/console/timelines/hlpf#revised-draft"
    with transaction(site.engine) as session:
        (record,) = session.exec(select(CompletionRecord)).all()
    assert (record.milestone_key, record.note, record.link, record.source) == (
        "revised-draft", "Posted as C17/3", LINK, "console"
    )  # fmt: skip
    assert ("completed", "revised-draft") in events_by(site.engine, f"console:{SECRETARY}")
    assert ("rescheduled", "member-comments") in events_by(site.engine, f"console:{SECRETARY}")
    assert notices(site.engine, "opened") == [("member-comments", "planned", "")] * 2
    shown = " ".join(browser.get("/console/timelines/hlpf").text.split())
    assert 'Done on Monday, 27 February 2017 · <bdi class="note">Posted as C17/3</bdi>' in shown
    audit = browser.get("/console/audit", params={"actor": "console", "kind": "completed"})
    assert f"console:{SECRETARY}" in audit.text and "hlpf/revised-draft" in audit.text


def test_reopening_withdraws_unsent_notices_and_corrects_those_told_as_tracker_reopen_does(
    site: ConsoleSite,
) -> None:
    browser = site.sign_in(SECRETARY, "secretary")
    mark_done(site, browser, at="2017-02-27")
    handle(site.engine, LATE)
    with transaction(site.engine, write=True) as session:  # one of the two notices went out
        first = session.exec(select(Delivery).where(Delivery.kind == "opened").order_by(col(Delivery.id))).first()
        assert first is not None
        session.execute(update(Delivery).where(col(Delivery.id) == first.id).values(state="sent"))

    confirm = send(browser, f"{STEP}/reopen", note="The wrong file was posted.")
    said = " ".join(confirm.text.split())
    reopened = browser.post(f"{STEP}/reopen", data={"csrf": csrf_of(confirm), "note": "The wrong file was posted.",
                                                    "confirm": "1"})  # fmt: skip
    handle(site.engine, LATE)

    assert "A correction about “Membership comments on the revised draft” to 1 subscriber already told" in said
    assert "1 “now open” notice not sent yet is withdrawn" in said
    assert reopened.status_code == 303
    assert notices(site.engine, "opened") == [
        ("member-comments", "sent", ""), ("member-comments", "cancelled", "hlpf/revised-draft was reopened")
    ]  # fmt: skip
    assert notices(site.engine, "correction") == [("member-comments", "planned", "")]
    with transaction(site.engine) as session:
        assert session.exec(select(CompletionRecord)).all() == []
        (event,) = session.exec(select(Event).where(Event.kind == "reopened")).all()
    assert event.actor == f"console:{SECRETARY}" and (event.detail or {})["note"] == "The wrong file was posted."


def test_amending_starts_from_the_record_keeps_the_time_and_opens_nothing_again(site: ConsoleSite) -> None:
    browser = site.sign_in(SECRETARY, "secretary")
    mark_done(site, browser, at="2017-02-26", note="posted")
    handle(site.engine, LATE)

    form = browser.get(f"{STEP}/amend")
    shown = {"at": "2017-02-26T00:00", "note": "posted as C17/3"}  # the time as the form shows it
    confirm = browser.post(f"{STEP}/amend", data={"csrf": csrf_of(form), **shown})
    amended = browser.post(f"{STEP}/amend", data={"csrf": csrf_of(confirm), **shown, "confirm": "1"})
    handle(site.engine, LATE)

    assert 'value="2017-02-26T00:00"' in form.text and ">posted</textarea>" in form.text
    assert "Nothing will be sent." in confirm.text
    assert amended.status_code == 303
    with transaction(site.engine) as session:
        (record,) = session.exec(select(CompletionRecord)).all()
    assert record.note == "posted as C17/3" and record.done_day == date(2017, 2, 26)  # still a plain date
    assert ("amended", "revised-draft") in events_by(site.engine, f"console:{SECRETARY}")
    assert len(notices(site.engine, "opened")) == 2  # the two of the completion, no more


def test_a_bad_time_or_link_or_a_second_completion_is_refused_with_the_reason(site: ConsoleSite) -> None:
    browser = site.sign_in(SECRETARY, "secretary")

    bad_time = send(browser, f"{STEP}/done", at="2017-02-30")
    bad_link = send(browser, f"{STEP}/done", link="javascript:alert(1)")
    future = send(browser, f"{STEP}/done", at="2017-03-10")
    not_done = send(browser, f"{STEP}/reopen")
    mark_done(site, browser, at="2017-02-27")
    twice = send(browser, f"{STEP}/done", at="2017-02-27")

    assert bad_time.status_code == 422 and 'aria-invalid="true"' in bad_time.text
    assert bad_link.status_code == 422 and "write a web address" in bad_link.text
    assert "javascript:alert(1)" in bad_link.text  # given back, escaped, to be corrected
    assert future.status_code == 422 and "is in the future" in future.text
    assert not_done.status_code == 409 and "cannot be reopened" in not_done.text
    assert twice.status_code == 409 and "amend its completion instead" in twice.text
    with transaction(site.engine) as session:
        assert len(session.exec(select(CompletionRecord)).all()) == 1


def test_an_action_without_its_csrf_token_is_refused_and_records_nothing(site: ConsoleSite) -> None:
    browser = site.sign_in(SECRETARY, "secretary")

    forged = browser.post(f"{STEP}/done", data={"at": "2017-02-27", "confirm": "1"})
    wrong = browser.post(f"{STEP}/done", data={"csrf": "x" * 40, "at": "2017-02-27", "confirm": "1"})

    assert forged.status_code == wrong.status_code == 403
    with transaction(site.engine) as session:
        assert session.exec(select(CompletionRecord)).all() == []


def test_a_viewer_sees_states_but_no_actions_and_is_refused_each_one(site: ConsoleSite) -> None:
    browser = site.sign_in("amina@secretariat.example.org", "viewer")

    page = browser.get("/console/timelines/hlpf")
    listing = browser.get("/console/timelines")
    form = browser.get(f"{STEP}/done")
    posted = browser.post(f"{STEP}/done", data={"csrf": csrf_of(page), "confirm": "1"})

    assert page.status_code == 200 and "Revised draft posted" in page.text and "state-late" in page.text
    assert "/done" not in page.text and "Mark done" not in page.text
    assert 'href="/console/timelines/hlpf"' in listing.text
    assert form.status_code == posted.status_code == 403
    assert browser.get("/console/timelines/nope").status_code == 404


def test_the_confirmation_speaks_the_reader_s_language(site: ConsoleSite) -> None:
    browser = site.sign_in(SECRETARY, "secretary")

    french = send(browser, f"{STEP}/done?lang=fr", at="2017-02-27")
    arabic = send(browser, f"{STEP}/done?lang=ar", at="2017-02-27")

    said = " ".join(french.text.split())
    assert "Un avis « étape ouverte » au sujet de « Membership comments on the revised draft » à 2 abonnés" in said
    assert 'dir="rtl"' in arabic.text and "إشعار «متاح الآن»" in arabic.text
