"""No value reaches a header as anything but text: names, titles, addresses and links are encoded by us.

The red team's attack (issue 13, finding 1): a name typed as an RFC 2047 encoded word whose text is
CR LF and headers. The email package decodes encoded words when it parses a header it is given,
and on Python 3.11 writes what they decode to as it is: the words became headers and a body.
Every check here reads the bytes back as a mail client would: the standard library's parser with
its strict policy, and decode_header for the RFC 2047 reading (the email package's own phrase
parser keeps the space between two encoded words, CPython gh-128110).
"""

from __future__ import annotations

import base64
import quopri
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default, strict
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from icalendar import Calendar
from sqlalchemy import Engine

from tests.support.delivery import Clock, at, deliver, make_dispatcher, subscribe, sync
from tests.support.emails import (
    DRAFT,
    LOCALES,
    PEOPLE,
    SENDER,
    TEMPLATES,
    decoded,
    display_name,
    make_request,
    make_view,
)
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import NOW, WriteTimeline
from tests.support.web import SECRET, running
from tracker.config import Settings
from tracker.emails import KINDS, EmailRequest, Kind, Recipient, Renderer
from tracker.emails.render import ATTACHED
from tracker.feeds.calendars import Calendars
from tracker.web.app import create_app
from tracker.web.signups import Signups

ATTACK = (
    "=?utf-8?q?=0D=0AReply-To:_attacker@evil.example=0D=0AContent-Type:_text/html=0D=0A=0D=0A"
    "<h1>Account_suspended</h1>?="
)
HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "Precedence",
    "X-Auto-Response-Suppress",
    "Content-Language",
    "MIME-Version",
    "Content-Type",
]
TEXT_PART = ["Content-Type", "Content-Transfer-Encoding"]
CALENDAR_PART = ["Content-Type", "Content-Transfer-Encoding", "Content-Disposition"]
STRIPPED = {"Cc", "Cs", "Zl", "Zp"}  # C0, DEL, C1, lone surrogates, line and paragraph separators
TITLE_MARK = "@@title@@"


def as_text(value: str) -> str:
    """What a header shows of *value*: control characters out, whitespace collapsed (the test's own oracle)."""
    kept = "".join(" " if unicodedata.category(char) in STRIPPED else char for char in value)
    return " ".join(kept.split())


# --- reading a message back ------------------------------------------------------------------


def head_of(data: bytes) -> str:
    return data.split(b"\r\n\r\n", 1)[0].decode("ascii")


def raw_fields(head: str) -> list[tuple[str, str]]:
    """Return the fields of a header section as written, unfolded (RFC 5322 2.2.3), in order."""
    fields: list[tuple[str, str]] = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t"):
            name, value = fields[-1]
            fields[-1] = (name, value + line)
        else:
            name, _, value = line.partition(":")
            fields.append((name, value.lstrip(" ")))
    return fields


def long_lines(head: str) -> list[str]:
    """Return the lines over 78 characters of a header section, but List-Unsubscribe's (its URLs stay whole)."""
    fields = [field for field in re.split(r"\r\n(?![ \t])", head) if not field.startswith("List-Unsubscribe:")]
    return [line for field in fields for line in field.split("\r\n") if len(line) > 78]


def parts_of(data: bytes) -> list[tuple[str, list[str]]]:
    """Return each part's content type and header names, read with the strict policy (a defect raises)."""
    message = BytesParser(policy=strict).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return [(part.get_content_type(), list(part.keys())) for part in message.walk()]


def assert_well_formed(data: bytes, kind: Kind) -> EmailMessage:
    """Check lines, headers and parts of one message; return it as parsed with the default policy."""
    assert data.isascii()
    lines = data.split(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    assert max(map(len, lines)) <= 998
    texts = [("text/plain", TEXT_PART), ("text/html", TEXT_PART)]
    if kind in ATTACHED:  # about a milestone: its .ics (a changed message: one per milestone it lists)
        calendars = [t for t, _ in parts_of(data)].count("text/calendar")
        assert calendars >= 1, kind
        expected = [("multipart/mixed", HEADERS), ("multipart/alternative", ["Content-Type"]), *texts]
        expected += [("text/calendar", CALENDAR_PART)] * calendars
    else:
        expected = [("multipart/alternative", HEADERS), *texts]
    assert [(t, sorted(n)) for t, n in parts_of(data)] == [(t, sorted(n)) for t, n in expected]
    assert [name for name, _ in raw_fields(head_of(data))] == HEADERS  # and in this order
    assert long_lines(head_of(data)) == []
    message = BytesParser(policy=default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        assert not part.defects
        assert not any(part[name].defects for name in part)
    return message


def assert_calendar_is_clean(message: EmailMessage, key: str) -> None:
    """The attachment's file name is the milestone's, and its text holds no control character but tab."""
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == f"{key}.ics"
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes)
    text = payload.decode("utf-8")
    assert not [c for c in text.replace("\r\n", "") if unicodedata.category(c) in STRIPPED and c != "\t"]
    events = Calendar.from_ical(payload).walk("VEVENT")
    assert len(events) == 1 and events[0]["SUMMARY"]


# --- the red team's reproduction ------------------------------------------------------------------


@pytest.fixture
def site(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Iterator[httpx.Client]:
    """The app in a real server, on a store with one timeline."""
    write_timeline("hlpf", TIMELINE.format(title="Membership comments on the revised draft"))
    sync(engine, schedules, NOW)
    calendars = Calendars(engine, base_url="https://tracker.example.org", cancelled_grace=timedelta(days=30),
                          clock=lambda: NOW, check_interval=0, secret=SECRET)  # fmt: skip
    config = Settings(base_url="https://tracker.example.org", timezone="Europe/Zurich")
    signups = Signups()  # a subscription is handled after its answer: each answer waits for that work
    hooks = {"response": [lambda _: signups.drain()]}
    with (
        running(create_app(engine, calendars, settings=config, signups=signups)) as url,
        httpx.Client(base_url=url, event_hooks=hooks) as client,
    ):
        yield client
    signups.close()


TIMELINE = """
    id: hlpf
    title: ITU Council contribution to HLPF-17
    timezone: Europe/Zurich
    milestones:
      - id: member-comments
        title: '{title}'
        owner: membership
        due: 2017-03-10
        reminders: [7d]
"""


def test_a_name_typed_as_an_encoded_word_reaches_the_victim_as_its_literal_text(
    engine: Engine, site: httpx.Client, smtp: SMTPTestServer
) -> None:
    form = {"email": "victim@example.org", "name": ATTACK, "language": "en", "timezone": "Europe/Zurich"}

    assert site.post("/subscribe", json=form).status_code == 202
    assert deliver(make_dispatcher(engine, smtp.url, Clock(NOW + timedelta(minutes=1)))).sent == 1

    [received] = smtp.received
    assert received.rcpt_tos == ("victim@example.org",)
    message = assert_well_formed(received.content, "confirm")
    raw = dict(raw_fields(head_of(received.content)))
    assert display_name(raw["To"]) == ATTACK  # what the attacker typed, as text
    assert message["To"].addresses[0].addr_spec == "victim@example.org"
    assert message.get_all("Reply-To") is None
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(("html",))
    assert html is not None and "<h1>" not in html.get_content()


def test_a_title_typed_as_an_encoded_word_reaches_the_subject_as_its_literal_text(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    title = "=?utf-8?q?Comments=0D=0ABcc:_victim@example.net=0D=0A=0D=0A<b>body</b>?="
    write_timeline("hlpf", TIMELINE.format(title=title))
    clock = Clock(at("2017-03-03 09:00"))
    sync(engine, schedules, clock.now)
    subscribe(engine, "delegate@example.org", clock.now)

    assert deliver(make_dispatcher(engine, smtp.url, clock)).sent == 1

    [received] = smtp.received
    message = assert_well_formed(received.content, "reminder")
    raw = dict(raw_fields(head_of(received.content)))
    assert decoded(raw["Subject"]) == str(message["Subject"]) == f"Due in 7 days: {title}"
    assert message.get_all("Bcc") is None
    assert_calendar_is_clean(message, "member-comments")


@pytest.mark.parametrize("kind", ["reminder", "opened", "changed", "cancelled"])
def test_a_title_with_line_breaks_and_encoded_words_adds_no_header_on_either_path(
    renderer: Renderer, kind: Kind
) -> None:
    title = "Comments\r\n=?utf-8?b?DQpCY2M6IHZpY3RpbUBleGFtcGxlLm5ldA==?=\r\nX-Injected: yes\u2028\x00"
    request = titled(make_request(kind), title)

    fast, slow = renderer.render_bytes(request), bytes(renderer.render(request))

    assert fast == slow
    message = assert_well_formed(fast, kind)
    subject = decoded(dict(raw_fields(head_of(fast)))["Subject"])
    assert subject == str(message["Subject"]) and subject.endswith(as_text(title))
    assert "X-Injected" not in message and message.get_all("Bcc") is None


# --- any name, any title -------------------------------------------------------------------------


def encoded_word(text: str, form: str) -> str:
    """Return *text* written as an RFC 2047 word of *form* 'q' or 'b' (upper or lower case)."""
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate too: invalid UTF-8 once decoded
    if form in "bB":
        return f"=?utf-8?{form}?{base64.b64encode(data).decode('ascii')}?="
    quoted = quopri.encodestring(data, header=True).decode("ascii").replace("=\n", "").replace("?", "=3F")
    return f"=?UTF-8?{form}?{quoted}?="


PIECES = st.sampled_from(
    ["\r", "\n", "\r\n", "\x00", "\u2028", "\u2029", "\x85", "\x7f", "\x1b[31m", "\t", "\ud800", "\udfff", " ",
     "\u202e", "\u200f", "\ufeff", '"', "\\", "<", ">", "@", ",", ";", ":", "(", ")", "=?", "?=", "_",
     "Reply-To: attacker@evil.example", "Bcc: victim@example.net", "مرحبا", "蔡国磊", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀", "Émile"]
)  # fmt: skip
WORDS = st.builds(
    encoded_word, st.lists(st.one_of(PIECES, st.characters()), max_size=12).map("".join), st.sampled_from("qQbB")
)
LONG = st.builds(lambda piece, count: piece * count, st.sampled_from(["x", "é", "蔡", "😀", "ab ", "=?"]),
                 st.integers(30, 700))  # fmt: skip
# Words about as long as a plain word may be (60), beside the characters a quoted string guards.
EDGE = st.builds(lambda piece, count, tail: piece * count + tail, st.sampled_from(["x", '"', "<"]),
                 st.integers(58, 64), st.sampled_from(['"', "<", ">", ",", "@", ""]))  # fmt: skip
HOSTILE = st.lists(st.one_of(PIECES, WORDS, LONG, EDGE, st.text(max_size=20)), max_size=8).map("".join)
# A title with a lone surrogate cannot be written into a calendar at all (icalendar raises): that
# is for validation to refuse. Names may hold one: headers drop it, bodies show U+FFFD.
TITLES = HOSTILE.map(lambda text: re.sub("[\ud800-\udfff]", "", text))


def hostile_request(kind: Kind, language: str, name: str, title: str) -> EmailRequest:
    """A request of *kind* to someone named *name*, about milestones titled *title* (the digest lists them)."""
    address = PEOPLE[language][0]
    view = make_view(title=title)
    request = make_request(kind, language, recipient=Recipient(address, name, language, "UTC"))
    if kind == "digest":
        return replace(request, digest=[replace(item, milestone=view) for item in request.digest])
    if kind == "confirm":
        return request
    return titled(request, title)


def titled(request: EmailRequest, title: str) -> EmailRequest:
    """*request* about milestones titled *title*: its own, the step before it, or (a changed message,
    whose subject names the timeline) each listed one and its timeline."""
    if request.changes:
        lines = [replace(line, view=replace(line.view, title=title, timeline_title=title)) for line in request.changes]
        return replace(request, changes=tuple(lines))
    before = replace(DRAFT, title=title) if request.kind in ("opened", "delayed", "correction") else None
    return replace(request, view=make_view(title=title), predecessor=before)


def expected_subject(renderer: Renderer, request: EmailRequest, title: str) -> str:
    """Return the subject the request's template makes, with *title* put in as text."""
    marked = request if request.view is None and not request.changes else titled(request, TITLE_MARK)
    subject = renderer.compose(marked, renderer.language_of(marked))[0]
    return as_text(subject.replace(TITLE_MARK, title))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=HOSTILE, title=TITLES, language=st.sampled_from(["en", "ar", "zh"]))
@example(name=ATTACK, title=ATTACK, language="en")
@example(name="x" * 2000, title="蔡" * 800, language="zh")
@example(name="\r\n\x00\u2028", title=" ", language="ar")
@example(name='Support <attacker@evil.example>, "' + "x" * 60, title="x", language="en")  # found in review
@example(name="x" * 61 + '"', title="x", language="en")
def test_any_name_and_title_give_exactly_the_expected_headers_and_parts(
    renderer: Renderer, name: str, title: str, language: str
) -> None:
    for kind in KINDS:
        request = hostile_request(kind, language, name, title)

        fast = renderer.render_bytes(request)

        assert fast == bytes(renderer.render(request)), kind
        message = assert_well_formed(fast, kind)
        raw = dict(raw_fields(head_of(fast)))
        assert display_name(raw["To"]) == as_text(name), kind
        assert message["To"].addresses[0].addr_spec == request.recipient.email
        subject = expected_subject(renderer, request, title)
        assert decoded(raw["Subject"]) == str(message["Subject"]) == subject, kind
        if kind == "reminder":
            assert_calendar_is_clean(message, "member-comments")


# --- each field ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        'Support <attacker@evil.example>, "' + "x" * 60,  # a quote opening a 61-character word
        'Support <attacker@evil.example>, "' + "x" * 59 + "<",
        "Support <attacker@evil.example>, " + "x" * 61 + '"',
    ],
)
def test_a_name_with_long_words_cannot_name_another_recipient_on_either_path(renderer: Renderer, name: str) -> None:
    request = make_request("confirm", recipient=Recipient("victim@example.org", name, "en", "UTC"))

    fast = renderer.render_bytes(request)

    assert fast == bytes(renderer.render(request))
    message = assert_well_formed(fast, "confirm")
    assert [address.addr_spec for address in message["To"].addresses] == ["victim@example.org"]
    assert display_name(dict(raw_fields(head_of(fast)))["To"]) == name  # as RFC 2047 reads it back


@pytest.mark.parametrize(
    "address",
    [
        "josé@example.org",  # a non-ASCII local part needs SMTPUTF8 headers, which a 7bit message has not
        "=?utf-8?q?=0D=0ABcc:_x@y?=@example.org",  # a reader would decode it
        "eve@example.org>\r\nBcc: x@y",
        "not an address",
    ],
)
def test_an_address_no_header_can_show_as_text_is_refused_on_both_paths(renderer: Renderer, address: str) -> None:
    request = make_request("reminder", recipient=Recipient(address, "Eve", "en", "UTC"))

    for render in (renderer.render_bytes, renderer.render):
        with pytest.raises(ValueError, match="to be written in a header"):
            render(request)


def test_an_international_domain_goes_out_in_idna(renderer: Renderer) -> None:
    request = make_request("confirm", recipient=Recipient("anna@bücher.example", "Anna", "en", "UTC"))

    data = renderer.render_bytes(request)

    assert data == bytes(renderer.render(request))
    assert dict(raw_fields(head_of(data)))["To"] == "Anna <anna@xn--bcher-kva.example>"


def test_a_sender_named_in_another_script_is_encoded_and_reads_back() -> None:
    sender = replace(SENDER, from_address="Délais du SMSI «信息社会» <tracker@tracker.example.org>")
    fresh = Renderer(TEMPLATES, LOCALES, sender)
    request = make_request("confirm")

    data = fresh.render_bytes(request)

    assert data == bytes(fresh.render(request))
    message = assert_well_formed(data, "confirm")
    assert display_name(dict(raw_fields(head_of(data)))["From"]) == "Délais du SMSI «信息社会»"
    assert message["From"].addresses[0].addr_spec == "tracker@tracker.example.org"


def test_links_in_list_unsubscribe_stay_printable_ascii_and_never_look_like_an_encoded_word(
    renderer: Renderer,
) -> None:
    links = replace(
        make_request("reminder").links,
        unsubscribe='https://tracker.example.org/unsubscribe/é<x>\r\n"y" z',
        unsubscribe_mailto="mailto:u@x.example?subject==?utf-8?q?hi?=",
    )
    request = replace(make_request("reminder"), links=links)

    data = renderer.render_bytes(request)

    assert data == bytes(renderer.render(request))
    assert_well_formed(data, "reminder")
    raw = dict(raw_fields(head_of(data)))["List-Unsubscribe"]
    assert raw == (
        "<https://tracker.example.org/unsubscribe/%C3%A9%3Cx%3E%22y%22z>, <mailto:u@x.example?subject==%3Futf-8?q?hi?=>"
    )


def test_a_link_too_long_for_a_line_is_cut_inside_its_brackets(renderer: Renderer) -> None:
    long = "https://tracker.example.org/unsubscribe/" + "t" * 1500
    request = replace(make_request("reminder"), links=replace(make_request("reminder").links, unsubscribe=long))

    data = renderer.render_bytes(request)

    assert data == bytes(renderer.render(request))
    assert_well_formed(data, "reminder")
    raw = dict(raw_fields(head_of(data)))["List-Unsubscribe"]
    # RFC 2369 2: whitespace inside the angle brackets is ignored.
    assert re.sub(r"\s", "", raw.split(">, <")[0]) == f"<{long}"


def test_an_odd_milestone_id_gives_a_plain_file_name(renderer: Renderer) -> None:
    view = make_view(key="x\"; filename*=utf-8''evil.exe\r\nX: y")
    request = make_request("reminder", view=view)

    data = renderer.render_bytes(request)

    assert data == bytes(renderer.render(request))
    message = assert_well_formed(data, "reminder")
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == "x---filename--utf-8--evil.exe--X--y.ics"
