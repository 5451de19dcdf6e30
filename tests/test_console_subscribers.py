"""The console's subscriber pages over HTTP: search, add, edit, suspend, resend, import in two steps, export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from tests.support.console import ConsoleSite, console_site, csrf_of
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, NOW, WriteTimeline
from tracker.store.engine import transaction
from tracker.store.models import Delivery, Subscriber
from tracker.timelines.pipeline import sync_folder

AT = NOW.replace(month=4, day=10)
CSV = (
    "timezone,email,name,audiences\n"
    "Asia/Tokyo,ken@mission.example.org,Ken,membership\n"
    "Europe/Paris,not-an-address,Nobody,membership\n"
    "America/New_York,ana@mission.example.org,Ana,membership;secretariat\n"
)


@pytest.fixture
def site(engine: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline) -> Iterator[ConsoleSite]:
    write_timeline("hlpf", HLPF)
    assert sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["14d", "7d", "1d"], now=NOW).ok
    with console_site(engine, smtp, AT) as found:
        yield found


def stored(site: ConsoleSite) -> dict[str, Subscriber]:
    with transaction(site.engine) as session:
        return {s.email: s for s in session.exec(select(Subscriber))}


def add(browser: httpx.Client, **fields: str) -> httpx.Response:
    page = browser.get("/console/subscribers")
    return browser.post("/console/subscribers", data={"csrf": csrf_of(page), **fields})


def upload(browser: httpx.Client, text: str, name: str = "members.csv", **fields: str) -> httpx.Response:
    page = browser.get("/console/subscribers")
    return browser.post("/console/subscribers/import", data={"csrf": csrf_of(page), **fields},
                        files={"file": (name, text.encode(), "text/csv")})  # fmt: skip


def test_a_secretary_adds_a_subscriber_and_a_viewer_finds_them(site: ConsoleSite) -> None:
    secretary = site.sign_in("sec@un.example.org", "secretary")
    viewer = site.sign_in("viewer@un.example.org", "viewer")

    added = add(secretary, email="Ken@Mission.example.org", name="Ken Sato", timezone="Asia/Tokyo",
                audiences="membership")  # fmt: skip
    found = viewer.get("/console/subscribers", params={"q": "sato"})
    one = viewer.get(added.headers["location"])

    assert added.status_code == 303
    assert "Ken@mission.example.org" in found.text and "Ken Sato" in found.text  # the domain in lower case
    assert one.status_code == 200 and "pending" in one.text and "Suspend" not in one.text
    with transaction(site.engine) as session:
        queued = session.exec(select(Delivery.kind)).all()
    assert sorted(queued) == ["confirm", "sign-in", "sign-in"]  # the new address is asked to confirm


def test_a_bad_field_is_named_and_nothing_is_saved(site: ConsoleSite) -> None:
    secretary = site.sign_in("sec@un.example.org", "secretary")

    refused = add(secretary, email="ken@mission.example.org", timezone="Mars/Olympus", audiences="membership")

    assert refused.status_code == 422 and "Time zone:" in refused.text
    assert 'value="ken@mission.example.org"' in refused.text  # what was typed stays in the form
    assert stored(site) == {}


def test_a_secretary_edits_suspends_and_unsuspends_a_subscriber(site: ConsoleSite) -> None:
    secretary = site.sign_in("sec@un.example.org", "secretary")
    person = (
        add(secretary, email="ken@mission.example.org", audiences="membership", confirmed="1")
        .headers["location"]
        .split("?")[0]
    )
    page = secretary.get(person)

    edited = secretary.post(person, data={"csrf": csrf_of(page), "name": "Ken", "language": "fr",
                                          "timezone": "Asia/Tokyo", "audiences": "membership;secretariat",
                                          "timelines": "", "digest": "weekly", "reminders": "7d 1d"})  # fmt: skip
    suspended = secretary.post(f"{person}/suspend", data={"csrf": csrf_of(page)})
    after_suspend = stored(site)["ken@mission.example.org"].state
    back = secretary.post(f"{person}/unsuspend", data={"csrf": csrf_of(page)})

    assert edited.status_code == 303 and edited.headers["location"].endswith("?done=updated")
    ken = stored(site)["ken@mission.example.org"]
    assert (ken.language, ken.audiences, ken.digest, ken.reminders) == ("fr", ["membership", "secretariat"],
                                                                         "weekly", ["7d", "1d"])  # fmt: skip
    assert suspended.headers["location"].endswith("?done=suspend") and after_suspend == "suspended"
    assert back.headers["location"].endswith("?done=unsuspend") and ken.state == "confirmed"


def test_resending_a_confirmation_keeps_to_the_outbox_limits(site: ConsoleSite) -> None:
    secretary = site.sign_in("sec@un.example.org", "secretary")
    person = add(secretary, email="ken@mission.example.org", audiences="membership").headers["location"].split("?")[0]
    token = csrf_of(secretary.get(person))

    at_once = secretary.post(f"{person}/confirm", data={"csrf": token})
    site.clock.move(timedelta(minutes=6))
    later = secretary.post(f"{person}/confirm", data={"csrf": token})

    assert at_once.headers["location"].endswith("?done=limit")  # one was queued when the address was added
    assert "in the last 5 minutes" in secretary.get(at_once.headers["location"]).text
    assert later.headers["location"].endswith("?done=confirm")


def test_an_import_shows_every_bad_row_and_saves_nothing_until_confirmed(site: ConsoleSite) -> None:
    secretary = site.sign_in("sec@un.example.org", "secretary")

    preview = upload(secretary, CSV)
    before = stored(site)
    form = preview.text.split('action="/console/subscribers/import/')[1].split('"')[0]
    saved = secretary.post(
        f"/console/subscribers/import/{form}", data={"csrf": csrf_of(preview), "name": "members.csv"}
    )
    again = secretary.post(
        f"/console/subscribers/import/{form}", data={"csrf": csrf_of(preview), "name": "members.csv"}
    )

    assert preview.status_code == 200
    assert "<code>members.csv:3: this is not an email address" in preview.text
    assert "Saving would add 2, update 0 and leave 0 unchanged. Bad rows left out: 1." in preview.text
    assert before == {}
    assert saved.status_code == 200 and "Saved: 2 added, 0 updated, 0 unchanged. Bad rows left out: 1." in saved.text
    people = stored(site)
    assert sorted(people) == ["ana@mission.example.org", "ken@mission.example.org"]
    assert people["ken@mission.example.org"].timezone == "Asia/Tokyo"  # read by header, any column order
    assert again.status_code == 410  # the upload is gone once saved


def test_a_second_import_of_the_same_file_counts_it_unchanged(site: ConsoleSite) -> None:
    secretary = site.sign_in("sec@un.example.org", "secretary")
    first = upload(secretary, CSV)
    key = first.text.split('action="/console/subscribers/import/')[1].split('"')[0]
    secretary.post(f"/console/subscribers/import/{key}", data={"csrf": csrf_of(first), "name": "members.csv"})

    second = upload(secretary, CSV.replace("Ken,", "Ken Sato,"))

    assert "Saving would add 0, update 1 and leave 1 unchanged. Bad rows left out: 1." in second.text


def test_an_upload_needs_the_form_token_and_one_over_10_mb_is_refused(site: ConsoleSite) -> None:
    secretary = site.sign_in("sec@un.example.org", "secretary")

    forged = secretary.post("/console/subscribers/import", data={"csrf": "forged"},
                            files={"file": ("members.csv", CSV.encode(), "text/csv")})  # fmt: skip
    huge = upload(secretary, "email\n" + "x" * (11 * 1024 * 1024))

    assert forged.status_code == 403 and huge.status_code == 413
    assert stored(site) == {}


def test_the_export_neutralises_cells_a_spreadsheet_would_run(site: ConsoleSite) -> None:
    secretary = site.sign_in("sec@un.example.org", "secretary")
    add(secretary, email="ken@mission.example.org", name='=HYPERLINK("http://evil.example")', audiences="membership")

    exported = secretary.get("/console/subscribers/export")

    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["cache-control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["email"] for row in rows] == ["ken@mission.example.org"]
    assert rows[0]["name"] == '\'=HYPERLINK("http://evil.example")'


def test_a_viewer_reads_but_cannot_change_import_or_export(site: ConsoleSite) -> None:
    secretary = site.sign_in("sec@un.example.org", "secretary")
    person = add(secretary, email="ken@mission.example.org", audiences="membership").headers["location"].split("?")[0]
    viewer = site.sign_in("viewer@un.example.org", "viewer")
    token = csrf_of(viewer.get(person))

    answers = [
        viewer.post("/console/subscribers", data={"csrf": token, "email": "x@mission.example.org"}),
        viewer.post(person, data={"csrf": token, "name": "X"}),
        viewer.post(f"{person}/suspend", data={"csrf": token}),
        viewer.post(
            "/console/subscribers/import",
            data={"csrf": token},
            files={"file": ("members.csv", CSV.encode(), "text/csv")},
        ),
        viewer.get("/console/subscribers/export"),
    ]

    assert [a.status_code for a in answers] == [403] * 5
    assert list(stored(site)) == ["ken@mission.example.org"]


def test_unsuspending_an_address_plans_its_reminders_again(site: ConsoleSite) -> None:
    secretary = site.sign_in("sec@un.example.org", "secretary")
    added = add(secretary, email="ken@mission.example.org", audiences="membership;secretariat", confirmed="1")
    person = added.headers["location"].split("?")[0]
    token = csrf_of(secretary.get(person))
    planned = plan(site)

    secretary.post(f"{person}/suspend", data={"csrf": token})
    while_suspended = plan(site)
    secretary.post(f"{person}/unsuspend", data={"csrf": token})
    after = plan(site)

    assert planned and while_suspended == [] and after == planned


def plan(site: ConsoleSite) -> list[int]:
    """Run planning; the ids of the reminders it leaves planned."""
    from tracker.delivery.outbox import replan

    with transaction(site.engine, write=True) as session:
        replan(session, now=site.clock(), horizon=timedelta(days=60), reminder_hour=9)
        query = select(Delivery.id).where(Delivery.kind == "reminder", Delivery.state == "planned")
        return sorted(i for i in session.exec(query) if i is not None)


def test_a_file_that_is_not_utf8_is_named_and_nothing_is_saved(site: ConsoleSite) -> None:
    secretary = site.sign_in("sec@un.example.org", "secretary")

    preview = upload(secretary, "email\n", name="../../etc/Liste<b>.csv")

    assert preview.status_code == 200
    assert "Liste_b_.csv" in preview.text and "<b>" not in preview.text.split("<h1>")[1].split("</h1>")[0]
    latin = secretary.post("/console/subscribers/import", data={"csrf": csrf_of(preview)},
                           files={"file": ("latin.csv", "email,name\nzoe@mission.example.org,Zoë\n".encode("latin-1"),
                                           "text/csv")})  # fmt: skip
    assert "latin.csv:0: not UTF-8 text" in latin.text
    assert stored(site) == {}
