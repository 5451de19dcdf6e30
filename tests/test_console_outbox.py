"""The console's outbox and log over HTTP: search, one message as it is sent, retry, hold, release."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from tests.support.cli import tracker
from tests.support.console import ConsoleSite, console_site, csrf_of
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, NOW, WriteTimeline
from tracker.delivery.outbox import replan
from tracker.store.engine import transaction
from tracker.store.models import Delivery, Subscriber
from tracker.timelines.pipeline import sync_folder

AT = NOW.replace(month=4, day=10)  # the submission (28 April) is ahead


@pytest.fixture
def site(engine: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline) -> Iterator[ConsoleSite]:
    write_timeline("hlpf", HLPF)
    assert sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["14d", "7d", "1d"], now=NOW).ok
    with console_site(engine, smtp, AT) as found:
        yield found


def add_row(site: ConsoleSite, email: str, kind: str, state: str, send_at: datetime, **values: object) -> int:
    """A subscriber (made if new) and one outbox row to them about the submission."""
    with transaction(site.engine, write=True) as session:
        person = session.exec(select(Subscriber).where(Subscriber.email_key == email)).first()
        if person is None:
            person = Subscriber(email=email, email_key=email, name="Amina", state="confirmed",
                                audiences=["membership"], created_at=NOW, changed_at=NOW)  # fmt: skip
            session.add(person)
            session.flush()
        assert person.id is not None
        row = Delivery(subscriber_id=person.id, timeline_id="hlpf", milestone_key="submission", kind=kind,
                       slot="7d" if kind == "reminder" else "", state=state, send_at=send_at, attempt_at=send_at,
                       created_at=send_at, updated_at=send_at, **values)  # type: ignore[arg-type]  # fmt: skip
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def test_a_viewer_finds_messages_by_address_and_state_and_reads_one_as_it_would_be_sent(site: ConsoleSite) -> None:
    planned = add_row(site, "amina@mission.example.org", "reminder", "planned", AT + timedelta(days=11))
    add_row(site, "amina@mission.example.org", "opened", "failed", AT - timedelta(days=1), last_error="550 <b>no</b>")
    add_row(site, "li@mission.example.org", "reminder", "planned", AT + timedelta(days=11))
    browser = site.sign_in("viewer@un.example.org", "viewer")

    found = browser.get("/console/outbox", params={"address": "Amina@mission.example.org", "state": "planned"})
    failed = browser.get("/console/outbox", params={"state": "failed"})
    one = browser.get(f"/console/outbox/{planned}")

    assert found.status_code == 200
    assert f'href="/console/outbox/{planned}"' in found.text and "li@mission.example.org" not in found.text
    assert "550 &lt;b&gt;no&lt;/b&gt;" in failed.text and "<b>no</b>" not in failed.text
    assert one.status_code == 200
    assert "Subject: " in one.text and "To: Amina &lt;amina@mission.example.org&gt;" in one.text
    assert "Final text submitted to the UN" in one.text
    assert "TOKEN-HIDDEN" in one.text  # the subscriber's own links are not handed to a viewer
    assert "Retry now" not in one.text and "Hold" not in one.text  # a viewer has no actions


def test_a_bounced_message_shows_the_bounce_not_the_relays_250(site: ConsoleSite) -> None:
    add_row(site, "amina@mission.example.org", "reminder", "bounced", AT - timedelta(days=1),
            reply="250 2.0.0 Ok: queued as 4XyZ", last_error="5.1.1 550 mailbox unavailable")  # fmt: skip
    browser = site.sign_in("viewer@un.example.org", "viewer")
    listed = browser.get("/console/outbox", params={"state": "bounced"}).text
    assert "5.1.1 550 mailbox unavailable" in listed and "queued as 4XyZ" not in listed


def test_bad_search_fields_are_named_and_nothing_is_listed(site: ConsoleSite) -> None:
    browser = site.sign_in("viewer@un.example.org", "viewer")

    answer = browser.get("/console/outbox", params={"from": "10/04/2017", "state": "lost"})

    assert answer.status_code == 422
    assert "Dates: write them as YYYY-MM-DD." in answer.text and "State: choose one of the list." in answer.text


def test_the_log_pages_through_older_messages(site: ConsoleSite) -> None:
    ids = [add_row(site, f"m{n}@mission.example.org", "opened", "sent", AT - timedelta(hours=n)) for n in range(55)]
    browser = site.sign_in("viewer@un.example.org", "viewer")

    first = browser.get("/console/outbox")
    older = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = browser.get(older.replace("&amp;", "&"))

    assert f'href="/console/outbox/{ids[-1]}"' in first.text and f'href="/console/outbox/{ids[4]}"' not in first.text
    assert f'href="/console/outbox/{ids[4]}"' in second.text and 'rel="next"' not in second.text


def state_of(env: dict[str, str], tmp_path: Path, row_id: int) -> tuple[str, str]:
    """The row's state and reason as `tracker deliveries` shows them."""
    listed = tracker("deliveries", "--json", "--limit", "1000", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(row for row in json.loads(listed.stdout) if row["id"] == row_id)
    return row["state"], row["reason"] or ""


def planned_reminder(site: ConsoleSite) -> int:
    """A reminder of the submission, planned by the planner for a subscriber of every audience."""
    add_row(site, "amina@mission.example.org", "opened", "sent", AT - timedelta(days=1))
    with transaction(site.engine, write=True) as session:
        person = session.exec(select(Subscriber)).one()
        person.audiences = ["membership", "secretariat"]
        session.add(person)
        session.flush()
        replan(session, now=site.clock(), horizon=timedelta(days=60), reminder_hour=9)
        rows = session.exec(select(Delivery.id).where(Delivery.kind == "reminder", Delivery.state == "planned",
                                                      Delivery.milestone_key == "submission")).all()  # fmt: skip
    assert rows and rows[0] is not None
    return rows[0]


def test_a_secretary_holds_and_releases_a_planned_message_and_planning_keeps_the_hold(
    site: ConsoleSite, env: dict[str, str], tmp_path: Path
) -> None:
    row = planned_reminder(site)
    browser = site.sign_in("sec@un.example.org", "secretary")
    page = browser.get(f"/console/outbox/{row}")

    held = browser.post(f"/console/outbox/{row}/hold", data={"csrf": csrf_of(page)})
    with transaction(site.engine, write=True) as session:  # planning would make a held row planned again
        replan(session, now=site.clock(), horizon=timedelta(days=60), reminder_hour=9)
    after_planning = state_of(env, tmp_path, row)
    shown = browser.get(held.headers["location"])
    released = browser.post(f"/console/outbox/{row}/release", data={"csrf": csrf_of(shown)})

    assert held.status_code == 303
    assert after_planning == ("held", "held in the console by sec@un.example.org")
    assert "The message is held" in shown.text and "Release" in shown.text
    assert released.status_code == 303 and state_of(env, tmp_path, row) == ("planned", "")


def test_a_secretary_retries_a_failed_message_and_it_is_sent(
    site: ConsoleSite, env: dict[str, str], tmp_path: Path
) -> None:
    row = add_row(site, "amina@mission.example.org", "opened", "failed", AT - timedelta(hours=2),
                  last_error="451 try later", attempts=5)  # fmt: skip
    browser = site.sign_in("sec@un.example.org", "secretary")
    page = browser.get(f"/console/outbox/{row}")

    retried = browser.post(f"/console/outbox/{row}/retry", data={"csrf": csrf_of(page)})
    planned = state_of(env, tmp_path, row)
    site.send_due()

    assert retried.status_code == 303 and retried.headers["location"] == f"/console/outbox/{row}?done=retry"
    assert planned == ("planned", "retried in the console by sec@un.example.org")
    assert state_of(env, tmp_path, row)[0] == "sent"
    assert site.emails_to("amina@mission.example.org")


def test_an_action_that_no_longer_applies_changes_nothing_and_says_so(site: ConsoleSite) -> None:
    row = add_row(site, "amina@mission.example.org", "opened", "sent", AT - timedelta(hours=2), reply="250 ok")
    browser = site.sign_in("sec@un.example.org", "secretary")
    page = browser.get(f"/console/outbox/{row}")

    answer = browser.post(f"/console/outbox/{row}/hold", data={"csrf": csrf_of(page)})
    shown = browser.get(answer.headers["location"])

    assert "Nothing changed" in shown.text and "250 ok" in shown.text
    assert "Rendered again now the way it was sent" in shown.text


def test_actions_need_the_form_token_and_the_secretary_role(site: ConsoleSite) -> None:
    row = add_row(site, "amina@mission.example.org", "reminder", "planned", AT + timedelta(days=11))
    secretary = site.sign_in("sec@un.example.org", "secretary")
    viewer = site.sign_in("viewer@un.example.org", "viewer")
    token = csrf_of(viewer.get(f"/console/outbox/{row}"))

    forged = secretary.post(f"/console/outbox/{row}/hold", data={"csrf": "forged"})
    refused = viewer.post(f"/console/outbox/{row}/hold", data={"csrf": token})

    assert forged.status_code == 403 and refused.status_code == 403
    with transaction(site.engine) as session:
        stored = session.get(Delivery, row)
        assert stored is not None and stored.state == "planned"


def test_numbers_past_the_stores_integers_are_refused_not_a_crash(site: ConsoleSite) -> None:
    browser = site.sign_in("sec@un.example.org", "secretary")
    token = csrf_of(browser.get("/console/outbox"))

    answers = [
        browser.get("/console/outbox/99999999999999999999"),
        browser.post("/console/outbox/99999999999999999999/hold", data={"csrf": token}),
        browser.get("/console/subscribers/99999999999999999999"),
        browser.get("/console/outbox", params={"before": "9" * 18}),
        browser.get("/console/outbox/7"),
    ]

    assert [a.status_code for a in answers] == [422, 422, 422, 200, 404]
