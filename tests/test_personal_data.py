"""Personal data on request: a member's download and erasure (preferences page, console, CLI) and the log's retention.

Real store, real SMTP server, the app in a real server: the messages the test looks at were
really sent, and the erasure is checked by reading every text column of every table.
"""

from __future__ import annotations

import json
import os
import select as select_module
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from tests.support.browser import OpenTab
from tests.support.cli import TRACKER, cli_env, tracker
from tests.support.console import ConsoleSite, console_site, csrf_of
from tests.support.delivery import SECRET as CLI_SECRET
from tests.support.delivery import Clock, at, deliver, make_dispatcher, rows, subscribe, sync
from tests.support.smtp_server import SMTPTestServer
from tests.support.stored_text import traces
from tests.support.timelines import HLPF, WriteTimeline
from tests.support.web import SECRET
from tracker.delivery.dispatcher import Dispatcher, PassResult
from tracker.store.engine import transaction
from tracker.store.models import Event, Subscriber
from tracker.subscribers.personal import person_reference
from tracker.subscribers.tokens import make_token

AMINA = "Amina.Diallo@Mission.example.org"
KEN = "ken@mission.example.org"
HOSTILE_NAME = 'Amina "</script><b>Diallo'
REJECTED = "550 5.1.1 <amina.diallo@mission.example.org>: Recipient address rejected: Amina Diallo unknown"


@pytest.fixture
def site(engine: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline) -> Iterator[ConsoleSite]:
    """Two secretariat members with reminders really sent (one of Amina's refused), and more still planned."""
    write_timeline("hlpf", HLPF)
    sync(engine, schedules, at("2017-02-01 09:00"))
    clock = Clock(at("2017-02-10 09:00"))
    amina = subscribe(engine, AMINA, clock.now, audiences=("secretariat",), language="fr")
    subscribe(engine, KEN, clock.now, audiences=("secretariat",))
    with transaction(engine, write=True) as session:
        person = session.get(Subscriber, amina)
        assert person is not None
        person.name = HOSTILE_NAME
        session.add(person)
    smtp.answer("RCPT", REJECTED, address=AMINA, times=1)
    assert in_thread(deliver, make_dispatcher(engine, smtp.url, clock)).sent == 1  # 14 days before: Ken's only
    clock.now = at("2017-02-17 09:00")
    assert in_thread(deliver, make_dispatcher(engine, smtp.url, clock)).sent == 2  # 7 days before: both
    with console_site(engine, smtp, clock.now) as found:
        yield found


def in_thread(run: Callable[[Dispatcher], PassResult], dispatcher: Dispatcher) -> PassResult:
    """A delivery pass off this thread, whose event loop the browser's driver may hold."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run, dispatcher).result()


def subscriber_id(engine: Engine, email: str) -> int:
    with transaction(engine) as session:
        found = session.execute(
            select(col(Subscriber.id)).where(col(Subscriber.email_key) == email.lower())
        ).scalar_one()
        return int(found)


def preferences(engine: Engine, email: str) -> str:
    return f"/preferences/{make_token(SECRET, 'manage', subscriber_id(engine, email), 0)}"


def delivery_counts(site: ConsoleSite, tmp_path: Path) -> dict[tuple[str, str], int]:
    env = cli_env(str(site.engine.url.render_as_string(hide_password=False)), tmp_path)
    listed = tracker("deliveries", "--json", "--limit", "1000", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    counts: dict[tuple[str, str], int] = {}
    for row in json.loads(listed.stdout):
        counts[(row["kind"], row["state"])] = counts.get((row["kind"], row["state"]), 0) + 1
    return counts


def test_the_download_holds_the_member_s_data_and_nobody_else_s(site: ConsoleSite) -> None:
    link = preferences(site.engine, AMINA)
    browser = site.browser()

    page = browser.get(link)
    got = browser.get(f"{link}/data")

    assert f'href="{link}/data"' in page.text
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["cache-control"] == "no-store"
    data = got.json()
    assert data["subscriber"]["email"] == AMINA
    assert data["subscriber"]["name"] == HOSTILE_NAME
    assert (data["subscriber"]["language"], data["subscriber"]["audiences"]) == ("fr", ["secretariat"])
    states = sorted((m["kind"], m["state"]) for m in data["messages"])
    assert ("reminder", "failed") in states and ("reminder", "sent") in states and ("reminder", "planned") in states
    assert all(m["timeline"] == "hlpf" for m in data["messages"])
    assert {e["kind"] for e in data["events"]} >= {"subscriber_added", "subscriber_confirmed", "delivery_failed"}
    assert KEN not in got.text and "ken" not in got.text.lower()  # nobody else's data
    assert link.rsplit("/", 1)[1] not in got.text and "version" not in got.text  # no link token, no versions


def test_a_hostile_name_is_json_encoded_in_the_download(site: ConsoleSite) -> None:
    got = site.browser().get(f"{preferences(site.engine, AMINA)}/data")

    assert '"name": "Amina \\"</script><b>Diallo"' in got.text  # a JSON string, quotes escaped
    assert got.headers["x-content-type-options"] == "nosniff"


def test_a_member_erases_their_data_and_nothing_of_them_is_left_or_sent(
    site: ConsoleSite, smtp: SMTPTestServer, tmp_path: Path
) -> None:
    link = preferences(site.engine, AMINA)
    number = subscriber_id(site.engine, AMINA)
    browser = site.browser()
    before = delivery_counts(site, tmp_path)
    assert traces(site.engine, "amina", "diallo")  # the test can see the address where it is

    question = browser.get(f"{link}/erase")
    token = question.text.split('name="csrf_token" value="')[1].split('"')[0]
    forged = browser.post(f"{link}/erase", data={"csrf_token": "1.forged"})
    assert forged.status_code == 403 and subscriber_id(site.engine, AMINA) == number
    erased = browser.post(f"{link}/erase", data={"csrf_token": token})

    assert question.status_code == 200 and AMINA in question.text
    assert erased.status_code == 200 and "effacé" in erased.text  # in her own language, French
    assert traces(site.engine, "amina", "diallo") == []
    assert browser.get(link).status_code == 404  # her links no longer work
    ref = person_reference(SECRET, "amina.diallo@mission.example.org")
    with transaction(site.engine) as session:
        erasure = session.execute(select(Event).where(col(Event.kind) == "subscriber_erased")).scalar_one()
    assert (erasure.actor, erasure.detail, erasure.subscriber_id) == ("subscriber", {"ref": ref}, number)
    after = delivery_counts(site, tmp_path)
    assert after[("reminder", "sent")] == before[("reminder", "sent")] == 3  # the log still counts her messages
    assert after[("reminder", "failed")] == before[("reminder", "failed")] == 1

    received = len(smtp.received)
    clock = Clock(at("2017-02-23 09:00"))  # 1 day before: Ken's reminder only
    assert deliver(make_dispatcher(site.engine, smtp.url, clock)).sent == 1
    assert [mail.rcpt_tos for mail in smtp.received[received:]] == [(KEN,)]
    assert all(r.subscriber_id != number for r in rows(site.engine, state="planned"))


def test_erased_rows_stay_in_the_delivery_log_under_the_reference(site: ConsoleSite, tmp_path: Path) -> None:
    env = cli_env(str(site.engine.url.render_as_string(hide_password=False)), tmp_path)
    erased = tracker("subscribers", "erase", AMINA, "--yes", env=env, cwd=tmp_path)
    ref = person_reference(CLI_SECRET, "amina.diallo@mission.example.org")  # the command's own key

    found = tracker("deliveries", "--json", "--to", "AMINA.DIALLO@mission.example.org", env=env, cwd=tmp_path)
    again = tracker("subscribers", "export-person", AMINA, env=env, cwd=tmp_path)

    assert erased.returncode == 0 and ref in erased.stdout, erased.stderr
    listed = json.loads(found.stdout)
    assert {(row["to"], row["state"]) for row in listed} == {(f"erased:{ref}", "sent"), (f"erased:{ref}", "failed")}
    assert all("amina" not in (row["last_error"] or "").lower() for row in listed)
    assert again.returncode != 0 and "erased on " in again.stderr and f"(reference {ref})" in again.stderr
    assert traces(site.engine, "amina", "diallo") == []


@contextmanager
def asking_to_erase(site: ConsoleSite, tmp_path: Path, email: str) -> Iterator[subprocess.Popen[str]]:
    """`tracker subscribers erase EMAIL` run without --yes, held at its question until the test answers."""
    env = cli_env(str(site.engine.url.render_as_string(hide_password=False)), tmp_path)
    process = subprocess.Popen([TRACKER, "subscribers", "erase", email], env=env, cwd=tmp_path, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        asked, deadline = b"", time.monotonic() + 60
        assert process.stderr is not None
        while b"cannot be undone" not in asked and time.monotonic() < deadline and process.poll() is None:
            if select_module.select([process.stderr], [], [], 1)[0]:
                asked += os.read(process.stderr.fileno(), 4096)
        assert b"cannot be undone" in asked, asked
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def finishes_within(seconds: float, work: Callable[[], object]) -> bool:
    """Whether *work* (in a thread, left to finish on its own) is done within *seconds*."""
    pool = ThreadPoolExecutor(1)
    future = pool.submit(work)
    done = wait([future], timeout=seconds).done
    pool.shutdown(wait=False)  # a writer still waiting finishes once the command's transaction ends
    return bool(done) and future.exception() is None


def test_other_writers_go_on_while_the_erase_command_waits_for_its_answer(site: ConsoleSite, tmp_path: Path) -> None:
    def rename_amina() -> None:
        with transaction(site.engine, write=True) as session:
            person = session.get(Subscriber, subscriber_id(site.engine, AMINA))
            assert person is not None
            person.name = "Amina Diallo"

    with asking_to_erase(site, tmp_path, KEN) as process:
        wrote = finishes_within(10, rename_amina)  # no write lock is held while the question waits
        out, err = process.communicate("y\n", timeout=60)

    assert wrote, "a writer waited for the operator's answer"
    assert process.returncode == 0 and "erased; the logs keep the reference" in out, err
    assert traces(site.engine, KEN) == []
    with transaction(site.engine) as session:
        person = session.get(Subscriber, subscriber_id(site.engine, AMINA))
        assert person is not None and person.name == "Amina Diallo"


def test_the_erase_command_says_so_when_the_person_went_while_it_asked(site: ConsoleSite, tmp_path: Path) -> None:
    env = cli_env(str(site.engine.url.render_as_string(hide_password=False)), tmp_path)

    with asking_to_erase(site, tmp_path, KEN) as process:
        meanwhile = tracker("subscribers", "erase", KEN, "--yes", env=env, cwd=tmp_path)
        _, err = process.communicate("y\n", timeout=60)

    assert meanwhile.returncode == 0, meanwhile.stderr
    assert process.returncode == 1 and "is no longer in the store (erased or removed meanwhile)" in err, err
    assert "Traceback" not in err
    with transaction(site.engine) as session:
        erasures = session.execute(select(Event).where(col(Event.kind) == "subscriber_erased")).scalars().all()
    assert len(erasures) == 1


def test_the_cli_prints_a_person_s_data(site: ConsoleSite, tmp_path: Path) -> None:
    env = cli_env(str(site.engine.url.render_as_string(hide_password=False)), tmp_path)

    shown = tracker("subscribers", "export-person", KEN, env=env, cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["subscriber"]["email"] == KEN and data["messages_total"] == len(data["messages"]) >= 2
    assert "amina" not in shown.stdout.lower()


def test_a_secretary_downloads_and_erases_from_the_console_after_a_confirmation(site: ConsoleSite) -> None:
    secretary = site.sign_in("sec@un.example.org", "secretary")
    viewer = site.sign_in("viewer@un.example.org", "viewer")
    number = subscriber_id(site.engine, KEN)
    page = secretary.get(f"/console/subscribers/{number}")

    data = secretary.get(f"/console/subscribers/{number}/data")
    refused = viewer.get(f"/console/subscribers/{number}/data")
    question = secretary.post(f"/console/subscribers/{number}/erase", data={"csrf": csrf_of(page)})
    assert subscriber_id(site.engine, KEN) == number  # asked, not done
    stale = secretary.post(f"/console/subscribers/{number}/erase", data={"csrf": "stale", "confirm": "erase"})
    done = secretary.post(f"/console/subscribers/{number}/erase",
                          data={"csrf": csrf_of(question), "confirm": "erase"})  # fmt: skip

    assert data.status_code == 200 and data.json()["subscriber"]["email"] == KEN
    assert data.headers["content-disposition"].startswith("attachment;") and data.headers["cache-control"] == "no-store"
    assert refused.status_code == 403
    assert question.status_code == 200 and "one-way reference" in question.text and 'value="erase"' in question.text
    assert stale.status_code == 403
    assert done.status_code == 303 and done.headers["location"] == "/console/subscribers?done=erased"
    assert "is erased" in secretary.get(done.headers["location"]).text
    assert traces(site.engine, KEN, "ken sato") == []
    with transaction(site.engine) as session:
        event = session.execute(select(Event).where(col(Event.kind) == "subscriber_erased")).scalar_one()
    assert event.actor == "console:sec@un.example.org"
    audit = secretary.get("/console/audit").text
    outbox = secretary.get("/console/outbox", params={"state": "sent"}).text
    assert f"erased:{person_reference(SECRET, KEN)}" in audit and KEN not in audit
    assert f"erased:{person_reference(SECRET, KEN)}" in outbox and KEN not in outbox


def test_an_erased_address_subscribes_again_as_a_new_person(site: ConsoleSite, tmp_path: Path) -> None:
    env = cli_env(str(site.engine.url.render_as_string(hide_password=False)), tmp_path)
    old = subscriber_id(site.engine, KEN)  # the newest subscriber: SQLite would give its number again
    assert tracker("subscribers", "erase", KEN, "--yes", env=env, cwd=tmp_path).returncode == 0

    added = tracker("subscribers", "add", KEN, "--confirmed", "--audience", "secretariat", env=env, cwd=tmp_path)
    shown = json.loads(tracker("subscribers", "export-person", KEN, env=env, cwd=tmp_path).stdout)

    assert added.returncode == 0, added.stderr
    assert subscriber_id(site.engine, KEN) > old
    assert shown["messages"] == [] and [e["kind"] for e in shown["events"]] == ["subscriber_confirmed",
                                                                                 "subscriber_added"]  # fmt: skip


def test_the_scan_sees_an_address_in_any_column(engine: Engine) -> None:
    subscribe(engine, KEN, at("2017-02-01 09:00"))
    found = {(table, column) for table, column, _ in traces(engine, KEN)}
    assert ("subscribers", "email") in found and ("events", "detail") in found


def old_rows(**overrides: Any) -> dict[str, Any]:
    when = at("2015-01-01 09:00")
    return {"subscriber_id": 1, "timeline_id": "t", "milestone_key": "m", "occurrence": "", "kind": "reminder",
            "slot": "7d", "state": "sent", "send_at": when, "attempt_at": when, "created_at": when,
            "updated_at": when, "attempts": 1, "last_error": "", "reply": "", "reason": "", **overrides}  # fmt: skip


def test_retention_deletes_only_old_finished_rows_a_batch_at_a_time(
    engine: Engine, smtp: SMTPTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracker.delivery import dispatcher
    from tracker.store.bulk import insert_rows
    from tracker.store.models import Delivery

    now = at("2017-02-01 09:00")
    recent = now - timedelta(days=10)
    made = [old_rows(slot=f"old{n}", state=("sent", "failed", "cancelled", "skipped")[n % 4]) for n in range(7)]
    made += [old_rows(slot="waiting", state="planned"), old_rows(slot="aside", state="quarantined"),
             old_rows(slot="new", updated_at=recent, send_at=recent)]  # fmt: skip
    with transaction(engine, write=True) as session:
        insert_rows(session, Delivery.__table__, made)  # type: ignore[attr-defined]
    monkeypatch.setattr(dispatcher, "PRUNE_BATCH", 3)
    monkeypatch.setattr(dispatcher, "PRUNE_BATCHES", 2)
    worker = make_dispatcher(engine, smtp.url, Clock(now), log_days=365)
    forever = make_dispatcher(engine, smtp.url, Clock(now), log_days=0)

    assert forever.keep_log() == 0 and len(rows(engine)) == 10
    assert worker.keep_log() == 6  # two batches of three: the rest waits for the next pass
    assert worker.keep_log() == 1
    assert worker.keep_log() == 0
    assert sorted(r.slot for r in rows(engine)) == ["aside", "new", "waiting"]
    with transaction(engine, write=True) as session:
        insert_rows(session, Delivery.__table__, [old_rows(slot="later")])  # type: ignore[attr-defined]
    worker.refresh(timely=True)  # the hourly pass of the scheduler, and `tracker send-due`
    assert sorted(r.slot for r in rows(engine)) == ["aside", "new", "waiting"]


def test_retention_deletes_old_bounce_reports_with_the_log(engine: Engine, smtp: SMTPTestServer) -> None:
    """What a server said about a message goes when the log of that message would: it names the person."""
    from tracker.store.models import BounceReport

    now = at("2017-02-01 09:00")
    with transaction(engine, write=True) as session:
        for number, days in enumerate((400, 366, 10)):
            session.add(BounceReport(fingerprint=f"f{number}", kind="hard", delivery_id=number, subscriber_id=1,
                                     status="5.1.1", diagnostic="550 <amina@example.org> unknown",
                                     received_at=now - timedelta(days=days)))  # fmt: skip
    make_dispatcher(engine, smtp.url, Clock(now), log_days=0).keep_log()
    with transaction(engine) as session:
        assert len(session.execute(select(col(BounceReport.fingerprint))).scalars().all()) == 3  # 0: kept for ever
    make_dispatcher(engine, smtp.url, Clock(now), log_days=365).keep_log()
    with transaction(engine) as session:
        assert session.execute(select(col(BounceReport.fingerprint))).scalars().all() == ["f2"]


def test_retention_keeps_a_sent_row_whose_deadline_is_still_ahead(engine: Engine, smtp: SMTPTestServer) -> None:
    """Deleted, the row of a reminder sent long before a far deadline (a 400-day offset) would be planned again."""
    from tracker.store.bulk import insert_rows
    from tracker.store.models import Delivery

    now = at("2017-02-01 09:00")
    far, past = now + timedelta(days=30), now - timedelta(days=400)
    with transaction(engine, write=True) as session:
        insert_rows(session, Delivery.__table__, [old_rows(slot="400d", deadline_at=far),  # type: ignore[attr-defined]
                                                  old_rows(slot="7d", deadline_at=past)])  # fmt: skip
    worker = make_dispatcher(engine, smtp.url, Clock(now), log_days=365)

    assert worker.keep_log() == 1
    assert [r.slot for r in rows(engine)] == ["400d"]


def test_in_a_browser_a_member_downloads_their_data_then_erases_it(site: ConsoleSite, visit: OpenTab) -> None:
    tab = visit()
    page = tab.page
    link = site.url + preferences(site.engine, AMINA)
    assert tab.open(link) == 200

    with page.expect_download() as saving:
        page.click("a[data-link=my-data]")
    data = json.loads(Path(saving.value.path()).read_text(encoding="utf-8"))
    page.click("a[data-link=erase]")
    page.wait_for_selector("button[data-action=erase]")
    tab.shoot("erase-fr-desktop")
    with page.expect_navigation() as pressed:
        page.click("button[data-action=erase]")

    assert data["subscriber"]["email"] == AMINA and saving.value.suggested_filename.endswith(".json")
    assert pressed.value is not None and pressed.value.status == 200
    assert "effacés" in page.inner_text("body")  # her own language
    assert traces(site.engine, "amina", "diallo") == []


def test_a_long_history_is_cut_with_a_note_and_the_totals(site: ConsoleSite, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker.subscribers import personal

    monkeypatch.setattr(personal, "MOST", 1)
    with transaction(site.engine) as session:
        person = session.get(Subscriber, subscriber_id(site.engine, AMINA))
        assert person is not None
        data = personal.export_person(session, person, at("2017-02-17 09:00"))

    assert len(data["messages"]) == 1 and data["messages_total"] > 1
    assert len(data["events"]) == 1 and data["events_total"] > 1
    assert "Only the newest 1 messages" in data["note"]


def test_an_erase_form_that_cannot_be_read_is_refused_and_erases_nothing(site: ConsoleSite) -> None:
    """Bad UTF-8, %00 or too many fields in the erase button's form: 400 with a page, not a server error."""
    answers = [
        httpx.post(site.url + preferences(site.engine, AMINA) + "/erase", content=body,
                   headers={"content-type": "application/x-www-form-urlencoded"})
        for body in (b"csrf=\xff", b"csrf=%00", b"&".join(b"f%d=1" % n for n in range(300)))
    ]  # fmt: skip

    assert [a.status_code for a in answers] == [400, 400, 400]
    assert all("could not be read" in a.text for a in answers)
    assert subscriber_id(site.engine, AMINA)  # still there
