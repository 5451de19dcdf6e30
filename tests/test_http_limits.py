"""What the HTTP server refuses before doing any work, what every answer says about itself, and what it does
not give away: body and head caps, 422 for bad values, HEAD, nosniff and framing, redirects, the metrics
token, the same work for every address asking to subscribe."""

from __future__ import annotations

import itertools
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from tests.support.cli import TRACKER
from tests.support.delivery import Clock, at, deliver, make_dispatcher
from tests.support.delivery import subscribe as add_subscriber
from tests.support.processes import free_port, tracker_serve
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, MEETING, NOW, WriteTimeline
from tests.support.web import BASE, SECRET, running, stored, subscribe, sync
from tracker.config import Settings
from tracker.delivery.outbox import queue_confirm
from tracker.feeds.calendars import Calendars
from tracker.metrics import Metrics
from tracker.store.engine import transaction
from tracker.store.models import Subscriber
from tracker.web.app import create_app
from tracker.web.signups import Signups

ADMIN = "admin-token-for-the-http-limit-tests-0123"
METRICS = "metrics-token-for-the-http-limit-tests-45"
DONE = "/api/milestones/hlpf/revised-draft/done"
MB = 1024 * 1024


# --- a real `tracker serve` process -------------------------------------------------------------


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    port: int

    def peak_rss(self) -> int:
        """The most memory the process has held so far (VmHWM), in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        assert found is not None, status
        return int(found.group(1)) * 1024


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[Served]:
    """`tracker serve` as shipped, with the admin API on."""
    with serving_process(tmp_path, database_url) as found:
        yield found


@contextmanager
def serving_process(tmp_path: Path, database_url: str, **settings: str) -> Iterator[Served]:
    """`tracker serve` in its own process, with the admin API on and *settings* (TRACKER_* names) added."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("TRACKER_")}
    env.update(TRACKER_DATABASE_URL=database_url, TRACKER_SECRET_KEY="http-limit-tests-secret-key-0f3c9a7e5d1b",
               TRACKER_ADMIN_TOKEN=ADMIN, TRACKER_PORT=str(port), TRACKER_SCHEDULES=str(tmp_path),
               TRACKER_OUTBOX_DIR=str(tmp_path / "outbox"), **settings)  # fmt: skip
    with tracker_serve(TRACKER, tmp_path, env, port, tmp_path / "serve.log") as process:
        yield Served(process, f"http://127.0.0.1:{port}", port)


def post_streamed(url: str, size: int, headers: dict[str, str]) -> int | None:
    """POST *size* bytes made on the fly (chunked: no length announced); the status, or None when cut off."""
    block = b"a" * (64 * 1024)

    def blocks() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    try:
        return httpx.post(url, content=blocks(), headers=headers, timeout=60).status_code
    except httpx.TransportError:
        return None


@pytest.mark.parametrize(
    ("path", "headers", "refusal"),
    [
        ("/unsubscribe/x", {"Content-Type": "application/x-www-form-urlencoded"}, 413),
        (DONE, {"Content-Type": "application/json"}, 401),  # the admin API without its token: not even read
        (DONE, {"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN}"}, 413),
    ],
)
def test_a_300_mb_body_is_refused_and_the_server_s_memory_stays_flat(
    served: Served, path: str, headers: dict[str, str], refusal: int
) -> None:
    small = httpx.post(f"{served.url}{path}", content=b"x=1", headers=headers, timeout=10)  # loads what a POST needs
    before = served.peak_rss()

    status = post_streamed(f"{served.url}{path}", 300 * MB, headers)

    grown = served.peak_rss() - before
    assert grown < 20 * MB, f"the server's memory grew by {grown / MB:.0f} MB"
    assert status == refusal
    assert small.status_code in (401, 404, 422)
    assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200


def raw_request(port: int, head: bytes, timeout: float = 10) -> bytes:
    """Send *head* over a plain socket; return what the server answers before it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        with suppress(OSError):  # the server may close as soon as it has refused
            connection.sendall(head)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return answer


def test_a_body_announced_over_the_cap_is_refused_before_it_is_sent(served: Served) -> None:
    head = (b"POST /unsubscribe/x HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 314572800\r\n\r\n")  # fmt: skip

    answer = raw_request(served.port, head, timeout=5)

    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"a" * (4 * MB) + b"\r\n",  # one header, as long as a client cares to send
        b"".join(b"X-Many-%d: %s\r\n" % (n, b"b" * 4000) for n in range(50)),  # 200 KB of ordinary headers
        b"X-Medium: " + b"m" * (40 * 1024) + b"\r\n",  # just past the cap, in one read
    ],
)
def test_an_oversized_request_head_is_refused_and_the_server_s_memory_stays_flat(
    served: Served, headers: bytes
) -> None:
    before = served.peak_rss()

    answer = raw_request(served.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")

    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert served.peak_rss() - before < 4 * MB
    usual = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nCookie: " + b"c" * 8000 + b"\r\n\r\n"
    assert raw_request(served.port, usual).startswith(b"HTTP/1.1 200 OK")  # an ordinary head still passes


# --- the app in a server thread -----------------------------------------------------------------


@dataclass
class Site:
    http: httpx.Client
    signups: Signups
    engine: Engine


@pytest.fixture
def site(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Iterator[Site]:
    """The app over HLPF and a meeting, with the admin API and the metrics on; each answer is followed by the
    subscription work it queued, as a person would wait for their email."""
    write_timeline("hlpf", HLPF)
    write_timeline("cwg-32", MEETING)
    sync(engine, schedules)
    signups = Signups()
    calendars = Calendars(engine, base_url=BASE, cancelled_grace=timedelta(days=30), clock=lambda: NOW,
                          check_interval=0, secret=SECRET)  # fmt: skip
    config = Settings(base_url=BASE, admin_token=ADMIN, metrics_token=METRICS, subscribe_limit=1000)
    with ExitStack() as stack:
        url = stack.enter_context(running(create_app(engine, calendars, settings=config, signups=signups)))
        hooks = {"response": [lambda _: signups.drain()]}
        http = stack.enter_context(httpx.Client(base_url=url, timeout=10, event_hooks=hooks))
        yield Site(http, signups, engine)


def admin(token: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("path", "body", "headers", "field"),
    [
        ("/subscribe", rb'{"email": "amina@mission.example.org", "name": "Amina \ud800"}', JSON, "name"),
        ("/subscribe", rb'{"email": "amina@mission.example.org", "\ud800": "x"}', JSON, "\\ud800"),
        ("/subscribe", rb'{"email": "amina@mission.example.org", "name": 1e999}', JSON, "name"),
        ("/subscribe", rb'{"email": "amina@mission.example.org", "name": "Amina\u0000"}', JSON, "name"),
        ("/subscribe", rb'{"email": "amina@mission.example.org", "timelines": ["hlpf\u0000"]}', JSON, "timelines"),
        (DONE, rb'{"note": "posted \ud800"}', admin(), "note"),
        (DONE, rb'{"link": "https://www.itu.int/\udfff"}', admin(), "link"),
        (DONE, rb'{"note": "posted\u0000"}', admin(), "note"),
        (DONE, rb'{"at": "0001-01-01"}', admin(), "at"),
        (DONE, rb'{"at": "0001-01-01T00:00"}', admin(), "at"),
        (DONE, rb'{"at": "9999-12-31"}', admin(), "at"),
        (DONE, rb'{"at": "9999-12-31T23:59"}', admin(), "at"),
        (DONE, rb'{"at": 1e999}', admin(), "at"),
        (DONE, rb'{"at": 123456789012345678901234567890}', admin(), "at"),
        (DONE, rb'{"colour": "red"}', admin(), "colour"),
        (DONE, rb'{"\ud800": 1}', admin(), "\\ud800"),
        (DONE, rb"[1, 2", admin(), ""),
        ("/subscribe", b"[" * 1000 + b"]" * 1000, JSON, "nests"),  # the parser's recursion gave a 500
        (DONE, b"[" * 1000 + b"]" * 1000, admin(), "nests"),
        (DONE, rb'{"at": "2200-12-25"}', admin(), "at"),  # its .done dependents left the calendar: no sync passed
        (DONE, rb'{"at": "2200-12-31T23:00:00-12:00"}', admin(), "at"),
        (DONE, rb'{"note": "posted \u001b]8;;https://evil.example\u0007"}', admin(), "note"),
        (DONE, rb'{"link": "javascript:alert(1)"}', admin(), "link"),
        (DONE, rb'{"link": "https://example.org/doc\u001b]8;;http://evil\u0007"}', admin(), "link"),
    ],
)
def test_undecodable_or_out_of_range_values_are_a_422_naming_the_field(
    site: Site, path: str, body: bytes, headers: dict[str, str], field: str
) -> None:
    response = site.http.post(path, content=body, headers=headers)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    assert field in response.text
    assert stored(site.engine, "amina@mission.example.org") is None
    milestones = site.http.get("/api/timelines/hlpf").json()["milestones"]
    assert [m["key"] for m in milestones if m["completions"]] == []


def test_a_form_with_a_nul_character_is_refused_not_stored(site: Site) -> None:
    token = re.findall(r'name="csrf_token" value="([^"]+)"', site.http.get("/subscribe").text)[0]

    form = f"csrf_token={token}&email=amina@mission.example.org&name=A%00".encode()
    answer = site.http.post("/subscribe", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert answer.status_code == 400 and "could not be read" in answer.text
    assert stored(site.engine, "amina@mission.example.org") is None


@pytest.mark.parametrize("body", [rb'{"note": "posted \ud800"}', rb'{"at": "0001-01-01"}', b"[1, 2", b"\xff\xfe"])
def test_the_admin_api_refuses_a_request_without_its_token_before_reading_the_body(site: Site, body: bytes) -> None:
    missing = site.http.post(DONE, content=body, headers=JSON)
    wrong = site.http.post(DONE, content=body, headers=admin("not-the-token"))

    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["www-authenticate"] == 'Bearer realm="tracker"'


def get_paths(site: Site) -> list[str]:
    """Every GET path the app documents, its parameters filled in, and the pages it does not document."""
    fill = {"{timeline}": "hlpf", "{timeline_id}": "hlpf", "{audience}": "membership", "{token}": "x"}
    paths = ["/docs", "/redoc", "/openapi.json"]
    for documented, operations in site.http.get("/openapi.json").json()["paths"].items():
        if "get" in operations:
            path = documented
            for name, value in fill.items():
                path = path.replace(name, value)
            assert "{" not in path, path
            paths.append(path)
    return paths


def test_every_get_page_answers_head_with_its_headers_and_no_body(site: Site) -> None:
    paths = get_paths(site)
    assert {"/subscribe", "/confirm/x", "/metrics", "/api/timelines", "/embed/upcoming"} <= set(paths)
    auth = {"Authorization": f"Bearer {METRICS}"}

    answers = {path: (site.http.get(path, headers=auth), site.http.head(path, headers=auth)) for path in paths}

    wrong = {p: (g.status_code, h.status_code) for p, (g, h) in answers.items() if g.status_code != h.status_code}
    assert wrong == {}
    assert {p for p, (_, head) in answers.items() if head.content} == set()
    for path, (get, head) in answers.items():
        assert head.headers.get("content-type") == get.headers.get("content-type"), path


def test_every_answer_forbids_sniffing_and_framing_but_the_embed_may_be_framed(site: Site) -> None:
    http = site.http
    answers = {
        "page": http.get("/"),
        "form": http.get("/subscribe"),
        "json": http.get("/api/timelines"),
        "feed": http.get("/feeds/all.ics"),
        "feed again (fast path)": http.get("/feeds/all.ics"),
        "head": http.head("/timelines/hlpf"),
        "not found": http.get("/nothing-here"),
        "refused": http.post("/subscribe", json={"email": "nobody"}),
        "too large": http.post("/subscribe", content=b"a" * (200 * 1024), headers=JSON),
        "redirect": http.get("/subscribe/"),
        "health": http.get("/healthz"),
        "openapi": http.get("/openapi.json"),
    }
    embed = http.get("/embed/upcoming")

    for what, answer in answers.items():
        assert answer.headers.get("x-content-type-options") == "nosniff", what
        assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", ""), what
    assert embed.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors *" in embed.headers["content-security-policy"]
    assert "frame-ancestors 'none'" not in embed.headers["content-security-policy"]


def test_the_trailing_slash_redirect_goes_to_the_base_url_whatever_the_host_header(site: Site) -> None:
    answer = site.http.get("/subscribe/?lang=fr", headers={"Host": "evil.example"})
    api = site.http.get("/api/timelines/", headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})

    assert answer.status_code in (307, 308) and answer.headers["location"] == f"{BASE}/subscribe?lang=fr"
    assert api.status_code in (307, 308) and api.headers["location"] == f"{BASE}/api/timelines"
    assert site.http.get(answer.headers["location"].removeprefix(BASE)).status_code == 200


def test_the_metrics_need_their_bearer_token(site: Site) -> None:
    missing = site.http.get("/metrics")
    wrong = site.http.get("/metrics", headers={"Authorization": "Bearer not-it"})
    right = site.http.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"})

    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert "tracker_" not in missing.text + wrong.text
    assert right.status_code == 200 and "tracker_queue_depth" in right.text


def test_the_metrics_are_not_served_without_a_metrics_token(engine: Engine) -> None:
    calendars = Calendars(engine, base_url=BASE, cancelled_grace=timedelta(days=30), secret=SECRET)
    app = create_app(engine, calendars, settings=Settings(base_url=BASE))

    with running(app) as url:
        answer = httpx.get(f"{url}/metrics", timeout=10)

    assert answer.status_code == 404 and "tracker_" not in answer.text


def test_the_metrics_read_the_same_whoever_asks_to_subscribe(site: Site) -> None:
    subscribe(site.engine, "li@mission.example.org")  # confirmed
    site.http.post("/subscribe", json={"email": "olga@mission.example.org"})  # pending, its email planned
    auth = {"Authorization": f"Bearer {METRICS}"}
    before = site.http.get("/metrics", headers=auth).text

    for address in ("amina@mission.example.org", "olga@mission.example.org", "li@mission.example.org"):
        site.http.post("/subscribe", json={"email": address})
        assert site.http.get("/metrics", headers=auth).text == before, address
    assert stored(site.engine, "amina@mission.example.org") is not None  # the request did go through


class Statements:
    """The SQL statements the app runs while answering (not those of the queued subscription work)."""

    def __init__(self, engine: Engine) -> None:
        self.seen: list[str] = []
        self.lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self.record)

    def record(self, *args: object) -> None:
        if not threading.current_thread().name.startswith("signups"):
            with self.lock:
                self.seen.append(str(args[2]))

    def during(self, site: Site, address: str) -> list[str]:
        with self.lock:
            self.seen.clear()
        answer = site.http.post("/subscribe", json={"email": address, "language": "fr"})
        assert answer.status_code == 202
        with self.lock:
            return list(self.seen)


def test_asking_to_subscribe_does_the_same_work_whatever_the_address_s_state(site: Site) -> None:
    subscribe(site.engine, "li@mission.example.org")
    site.http.post("/subscribe", json={"email": "olga@mission.example.org"})
    statements = Statements(site.engine)

    new = statements.during(site, "amina@mission.example.org")
    pending = statements.during(site, "olga@mission.example.org")
    confirmed = statements.during(site, "li@mission.example.org")

    assert new == pending == confirmed
    amina, olga, li = (stored(site.engine, f"{n}@mission.example.org") for n in ("amina", "olga", "li"))
    assert amina is not None and olga is not None and li is not None
    assert (amina.state, olga.state, li.state) == ("pending", "pending", "confirmed")
    # A pending or confirmed subscription keeps its choices: whoever asks is not necessarily its owner.
    assert (amina.language, olga.language, li.language) == ("fr", "en", "en")


def test_confirmation_emails_sent_or_refused_move_no_metric(engine: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-01 09:00"))
    metrics = Metrics(engine, clock)
    before = metrics.exposition()
    for address in ("new@example.org", "gone@example.org"):
        subscriber_id = add_subscriber(engine, address, clock.now, confirmed=False)
        with transaction(engine, write=True) as session:
            subscriber = session.get(Subscriber, subscriber_id)
            assert subscriber is not None and queue_confirm(session, subscriber, clock.now) is not None
    smtp.answer("RCPT", "550 5.1.1 No such user", address="gone@example.org")
    dispatcher = make_dispatcher(engine, smtp.url, clock)
    dispatcher.metrics = metrics

    result = deliver(dispatcher)

    assert (result.sent, len(smtp.received)) == (1, 1)  # one went out, one was refused
    assert metrics.exposition().decode().splitlines() == before.decode().splitlines()


def test_a_subscription_request_waits_out_a_failing_store_instead_of_being_dropped() -> None:
    signups = Signups(retry_delays=(0.01, 0.01, 0.01))
    tries: list[int] = []

    def save_when_the_store_answers() -> None:  # the store refuses twice (a lock held, a restart), then takes it
        tries.append(len(tries))
        if len(tries) <= 2:
            raise OperationalError("INSERT INTO subscribers", {}, Exception("database is locked"))

    assert signups.submit(save_when_the_store_answers)
    signups.drain()
    signups.close()

    assert tries == [0, 1, 2]


def trickle(port: int, pieces: Iterator[bytes], every: float, give_up: float) -> tuple[bytes, float]:
    """Send *pieces* one at a time, *every* seconds apart, as a slow client does; return the answer and when it came."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=give_up) as connection:
        connection.setblocking(False)
        answer = b""
        while time.monotonic() - started < give_up:
            with suppress(BlockingIOError):
                chunk = connection.recv(65536)
                answer += chunk
                if not chunk or answer.count(b"\r\n\r\n"):
                    return answer, time.monotonic() - started
            with suppress(OSError, StopIteration):
                connection.send(next(pieces))
            time.sleep(every)
    return answer, time.monotonic() - started


def test_a_client_that_trickles_its_head_or_body_is_answered_408_and_let_go(tmp_path: Path, database_url: str) -> None:
    slow_head = itertools.chain([b"GET /healthz HTTP/1.1\r\nHost: t\r\n"], (b"X-Slow: 1\r\n" for _ in range(100)))
    slow_body = itertools.chain(
        [b"POST /unsubscribe/x HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
         b"Content-Length: 100\r\n\r\n"],
        (b"a" for _ in range(100)),
    )  # fmt: skip

    with serving_process(tmp_path, database_url, TRACKER_REQUEST_TIMEOUT="1") as served:
        head_answer, head_after = trickle(served.port, slow_head, every=0.2, give_up=10)
        body_answer, body_after = trickle(served.port, slow_body, every=0.2, give_up=10)

    assert head_answer.startswith(b"HTTP/1.1 408 "), head_answer[:200]
    assert body_answer.startswith(b"HTTP/1.1 408 "), body_answer[:200]
    assert head_after < 5 and body_after < 5  # a second allowed, not the ten the client would take
