"""Subscribing over HTTP with hostile or unusual input (issue 13): international addresses, rewritten requests."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from tests.support.delivery import SECRET, Clock, deliver, make_dispatcher, sync
from tests.support.smtp_server import ReceivedMail, SMTPTestServer
from tests.support.timelines import HLPF, MEETING, NOW, WriteTimeline
from tests.support.web import running
from tracker.config import Settings
from tracker.feeds.calendars import Calendars
from tracker.store.engine import transaction
from tracker.store.models import Subscriber
from tracker.web import signups as signups_module
from tracker.web.app import create_app
from tracker.web.signups import Signups

BASE = "https://tracker.example.org"
T = TypeVar("T")


@pytest.fixture
def site(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Iterator[httpx.Client]:
    """The app in a real server, on a store with two timelines."""
    write_timeline("hlpf", HLPF)
    write_timeline("cwg-32", MEETING)
    sync(engine, schedules, NOW)
    calendars = Calendars(engine, base_url=BASE, cancelled_grace=timedelta(days=30), clock=lambda: NOW,
                          check_interval=0, secret=SECRET)  # fmt: skip
    signups = Signups()  # a subscription is handled after its answer: each answer waits for that work
    hooks = {"response": [lambda _: signups.drain()]}
    app = create_app(engine, calendars, settings=Settings(base_url=BASE, timezone="Europe/Zurich"), signups=signups)
    with running(app) as url, httpx.Client(base_url=url, event_hooks=hooks) as client:
        yield client
    signups.close()


def send_due(engine: Engine, smtp: SMTPTestServer, minutes: int = 1) -> int:
    """Run one delivery pass a few minutes after NOW; return how many messages went out."""
    return deliver(make_dispatcher(engine, smtp.url, Clock(NOW + timedelta(minutes=minutes)))).sent


def stored(engine: Engine) -> list[Subscriber]:
    with transaction(engine) as session:
        return list(session.exec(select(Subscriber)))


@pytest.mark.parametrize(
    ("address", "mailbox"),
    [("conc@exämple.org", "conc@xn--exmple-cua.org"), ("post@straße.example", "post@xn--strae-oqa.example")],
)
def test_an_address_with_an_international_domain_gets_its_confirmation_with_an_idna_envelope(
    engine: Engine, site: httpx.Client, smtp: SMTPTestServer, address: str, mailbox: str
) -> None:
    assert site.post("/subscribe", json={"email": address}).status_code == 202

    assert send_due(engine, smtp) == 1
    [received] = smtp.received
    assert received.rcpt_tos == (mailbox,)  # IDNA 2008: straße is not strasse, a different domain
    assert "SMTPUTF8" not in received.mail_options
    assert received.parse()["To"].addresses[0].addr_spec == mailbox


def test_the_same_mailbox_written_with_its_idna_domain_is_one_subscription(engine: Engine, site: httpx.Client) -> None:
    site.post("/subscribe", json={"email": "conc@exämple.org"})
    site.post("/subscribe", json={"email": "Conc@XN--EXMPLE-CUA.org"})

    assert [s.email_key for s in stored(engine)] == ["conc@exämple.org"]


@pytest.mark.parametrize("address", ["cönc@example.org", "ｃonc@example.org"])
def test_an_address_whose_local_part_is_not_ascii_is_refused_at_input_and_nothing_is_stored(
    engine: Engine, site: httpx.Client, address: str
) -> None:
    response = site.post("/subscribe", json={"email": address})

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "email"]
    assert "needs SMTPUTF8, which Tracker does not send; use an ASCII address" in problem["msg"]
    assert stored(engine) == []


def test_the_form_refuses_an_address_whose_local_part_is_not_ascii_with_the_reason(site: httpx.Client) -> None:
    page = site.get("/subscribe")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None

    response = site.post("/subscribe", data={"email": "cönc@example.org", "csrf_token": token.group(1)})

    assert response.status_code == 422
    assert "Tracker cannot send to an address with letters other than ASCII before the @" in response.text


def confirm_link(received: ReceivedMail) -> str:
    text = received.parse().get_body(("plain",))
    assert text is not None
    found = re.search(r"https?://[^/\s]+(/confirm/[A-Za-z0-9_.=-]+)", text.get_content())
    assert found is not None, text.get_content()
    return found.group(1)


def test_a_second_request_for_a_pending_address_does_not_change_what_its_owner_confirms(
    engine: Engine, site: httpx.Client, smtp: SMTPTestServer
) -> None:
    victim = {"email": "victim@example.org", "language": "fr", "timelines": ["hlpf"], "reminders": ["7d"]}
    assert site.post("/subscribe", json=victim).status_code == 202
    assert send_due(engine, smtp) == 1
    attack = {"email": "VICTIM@example.org", "name": "Hacked", "language": "ar", "timelines": ["cwg-32"],
              "reminders": [], "digest": "weekly"}  # fmt: skip
    assert site.post("/subscribe", json=attack).status_code == 202
    send_due(engine, smtp, minutes=10)  # whatever the limit of the address lets through

    for received in smtp.received:  # whichever email the owner opens
        text = received.parse().get_body(("plain",))
        assert text is not None and "HLPF-17" in text.get_content() and "32nd meeting" not in text.get_content()
    assert site.post(confirm_link(smtp.received[-1])).status_code == 200

    [subscriber] = stored(engine)
    assert subscriber.state == "confirmed"
    assert (subscriber.name, subscriber.language, subscriber.timelines, subscriber.reminders, subscriber.digest) == (
        "", "fr", ["hlpf"], ["7d"], "off")  # fmt: skip


# --- the work a request causes starts after its answer --------------------------------------------


class Probe(ThreadPoolExecutor):
    """The signups thread, noting for each piece of work whether the client had its whole answer when it came."""

    def __init__(self, answered: threading.Event) -> None:
        super().__init__(max_workers=1, thread_name_prefix="signups")
        self.answered = answered
        self.after_answer: list[bool] = []

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.after_answer.append(self.answered.wait(timeout=3))
        return super().submit(fn, *args, **kwargs)


@contextmanager
def serving_with(engine: Engine, signups: Signups) -> Iterator[httpx.Client]:
    calendars = Calendars(engine, base_url=BASE, cancelled_grace=timedelta(days=30), clock=lambda: NOW,
                          check_interval=0, secret=SECRET)  # fmt: skip
    app = create_app(engine, calendars, settings=Settings(base_url=BASE, timezone="Europe/Zurich"), signups=signups)
    with running(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client
    signups.close()


def test_the_work_of_a_request_is_queued_only_once_its_answer_has_been_sent(engine: Engine) -> None:
    answered = threading.Event()
    signups = Signups()
    probe = signups._pool = Probe(answered)
    with serving_with(engine, signups) as http:
        response = http.post("/subscribe", json={"email": "new@example.org"})
        answered.set()
        signups.drain()

    assert response.status_code == 202
    assert probe.after_answer == [True]  # queued before, it would compete with sending the answer
    assert [s.email for s in stored(engine)] == ["new@example.org"]


def test_a_full_queue_is_refused_with_503_before_answering_and_its_place_comes_back(engine: Engine) -> None:
    busy, release = threading.Event(), threading.Event()

    def hold_the_thread() -> None:
        busy.set()
        release.wait(10)

    signups = Signups(max_waiting=2)
    assert signups.submit(hold_the_thread)
    assert busy.wait(5)
    with serving_with(engine, signups) as http:
        first = http.post("/subscribe", json={"email": "first@example.org"})
        full = http.post("/subscribe", json={"email": "second@example.org"})
        release.set()
        signups.drain()
        later = http.post("/subscribe", json={"email": "third@example.org"})
        signups.drain()

    assert (first.status_code, full.status_code, later.status_code) == (202, 503, 202)
    assert full.json()["detail"] == "Too many requests are waiting: try again in a minute."
    assert sorted(s.email for s in stored(engine)) == ["first@example.org", "third@example.org"]


def test_a_place_whose_work_never_comes_is_freed_after_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    signups = Signups(max_waiting=1)
    assert signups.reserve() is not None  # its answer failed to send: its work never comes
    assert signups.reserve() is None

    monkeypatch.setattr(signups_module, "RESERVED_FOR", 0.0)

    assert signups.reserve() is not None
    signups.close()
