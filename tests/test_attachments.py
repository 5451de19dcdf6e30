"""Every email about a milestone carries its .ics, true to the feed (issue 15, point 6).

A member who imported a reminder's file and then opens a `changed` or `cancelled` one must see
the same calendar item updated: same UID, a higher SEQUENCE (the milestone's stored revision),
the new dates or STATUS:CANCELLED. METHOD:PUBLISH wants an ORGANIZER (RFC 5546 3.2.1).
"""

from __future__ import annotations

import ctypes
import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import quoprimime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from tests.support.emails import SENDER, SUBMISSION, make_request, make_view
from tests.support.libical import load_libical, restriction_errors
from tracker.emails import ChangeLine, EmailRequest, Renderer
from tracker.emails.bodies import base64_lines, base64_size
from tracker.emails.render import build_calendar, shortest_encoding
from tracker.feeds import item_uid
from tracker.timelines.views import MilestoneView

BASE = "https://tracker.example.org"
ABOUT_A_MILESTONE = ["reminder", "changed", "cancelled", "opened", "correction", "overdue", "delayed"]
MOVED = make_view(revision=5, due_at=datetime(2017, 3, 17, 22, 59, 59, tzinfo=UTC))  # a week later than 10 March


def calendars(renderer: Renderer, request: EmailRequest) -> list[Any]:
    """Return the calendars attached to the message, parsed, from both rendering paths (they must agree)."""
    found = []
    for data in (bytes(renderer.render(request)), renderer.render_bytes(request)):
        message = email.message_from_bytes(data, policy=email.policy.strict)
        assert isinstance(message, EmailMessage)
        parts = [part for part in message.iter_attachments() if part.get_content_type() == "text/calendar"]
        assert parts, f"a {request.kind} email carries its .ics"
        assert all(part.get_param("method") == "PUBLISH" for part in parts)
        found.append([Calendar.from_ical(part.get_content()) for part in parts])
    assert [c.to_ical() for c in found[0]] == [c.to_ical() for c in found[1]]
    return found[0]


def about(request: EmailRequest) -> list[MilestoneView]:
    """The milestones a message is about, in the order it lists them."""
    return [line.view for line in request.changes] if request.changes else [request.view] if request.view else []


@pytest.mark.parametrize("kind", ABOUT_A_MILESTONE)
def test_every_email_about_a_milestone_attaches_it_with_the_feeds_uid_sequence_and_an_organizer(
    renderer: Renderer, kind: str
) -> None:
    request: EmailRequest = make_request(kind)  # type: ignore[arg-type]
    views = about(request)

    (calendar,) = calendars(renderer, request)  # one file, whatever the number of milestones

    events = calendar.walk("VEVENT")
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert len(events) == len(views) >= 1
    for event, view in zip(events, views, strict=True):
        assert str(event["UID"]) == item_uid(view, BASE)
        assert int(event["SEQUENCE"]) == view.revision
        organizer = event["ORGANIZER"]
        assert str(organizer) == "mailto:tracker@tracker.example.org"
        assert organizer.params["CN"] == "WSIS deadlines"


def test_a_changed_email_attaches_the_new_dates_under_the_reminders_uid_with_a_higher_sequence(
    renderer: Renderer,
) -> None:
    before = make_view(revision=4)
    (reminded,) = calendars(renderer, make_request("reminder", view=before))
    moved = ChangeLine(MOVED, "moved", before.due_at, MOVED.due_at)
    (changed,) = calendars(renderer, make_request("changed", view=None, changes=(moved,)))

    (old,), (new,) = reminded.walk("VEVENT"), changed.walk("VEVENT")
    assert new["UID"] == old["UID"]
    assert int(new["SEQUENCE"]) == 5 > int(old["SEQUENCE"])
    assert (old["DTSTART"].dt.isoformat(), new["DTSTART"].dt.isoformat()) == ("2017-03-10", "2017-03-17")


def test_a_cancelled_email_attaches_the_item_cancelled_without_alarms(renderer: Renderer) -> None:
    cancelled = replace(SUBMISSION, status="cancelled", revision=3, reminders=("7d",))

    (calendar,) = calendars(renderer, make_request("cancelled", view=cancelled))

    (event,) = calendar.walk("VEVENT")
    assert str(event["STATUS"]) == "CANCELLED"
    assert int(event["SEQUENCE"]) == 3
    assert event.walk("VALARM") == []


@pytest.fixture(scope="module")
def libical() -> ctypes.CDLL:
    lib = load_libical()
    if lib is None:
        pytest.skip("libical is not installed (apt-get install libical3): RFC 5546 restrictions not checked")
    return lib


@pytest.mark.parametrize("kind", ABOUT_A_MILESTONE)
def test_every_attachment_passes_libicals_rfc_5546_publish_check(
    renderer: Renderer, libical: ctypes.CDLL, kind: str
) -> None:
    request: EmailRequest = make_request(kind)  # type: ignore[arg-type]
    message = email.message_from_bytes(renderer.render_bytes(request), policy=email.policy.strict)
    assert isinstance(message, EmailMessage)
    part = next(message.iter_attachments())
    data = part.get_payload(decode=True)  # the bytes as attached, not as icalendar would write them again
    assert isinstance(data, bytes)

    assert restriction_errors(libical, data) == []
    without = b"".join(line + b"\r\n" for line in data.split(b"\r\n") if line and not line.startswith(b"ORGANIZER"))
    assert restriction_errors(libical, without) != []  # the check does look: PUBLISH without ORGANIZER fails


def test_a_changed_email_listing_several_milestones_attaches_one_file_with_each_zone_once(renderer: Renderer) -> None:
    timed = [make_view(key=f"step-{n}", revision=2, all_day=False, due_at=datetime(2017, 3, 10 + n, 11, tzinfo=UTC))
             for n in range(3)]  # fmt: skip
    lines = tuple(ChangeLine(view, "moved", view.due_at, view.due_at) for view in timed)
    message = email.message_from_bytes(
        renderer.render_bytes(make_request("changed", view=None, changes=lines)), policy=email.policy.strict
    )
    assert isinstance(message, EmailMessage)

    (part,) = message.iter_attachments()
    calendar = Calendar.from_ical(part.get_content())

    assert part.get_filename() == "changes.ics"  # one import for the whole change set
    assert [str(e["UID"]) for e in calendar.walk("VEVENT")] == [item_uid(v, BASE) for v in timed]
    assert [str(z["TZID"]) for z in calendar.walk("VTIMEZONE")] == ["Europe/Zurich"]


@pytest.mark.parametrize("language", ["en", "fr", "zh", "ar", "ru"])
def test_a_calendar_goes_in_its_shorter_encoding_and_reads_the_same(renderer: Renderer, language: str) -> None:
    """Latin text stays readable and a third smaller than base64; Chinese or Arabic is not tripled by quoted-printable.

    The email package would guess from the first ten lines, ASCII in every calendar, and send
    a Chinese file quoted-printable at up to three times its size (a 50-line changed message: +40 KB).
    """
    views = [make_view(key=f"step-{n}", revision=2, due_at=datetime(2017, 3, 10 + n, 11, tzinfo=UTC),
                       title=TITLES[language]) for n in range(8)]  # fmt: skip
    lines = tuple(ChangeLine(view, "moved", view.due_at, view.due_at) for view in views)
    request = make_request("changed", language, view=None, changes=lines)
    message = email.message_from_bytes(renderer.render_bytes(request), policy=email.policy.strict)
    assert isinstance(message, EmailMessage)

    (part,) = message.iter_attachments()
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)

    other = "base64" if part["Content-Transfer-Encoding"] == "quoted-printable" else "quoted-printable"
    assert len(part.get_payload()) <= len(calendar_part(data, "changes.ics", other).get_payload())  # the shorter
    assert len(part.get_payload()) <= base64_size(len(data))  # never more than base64
    assert [str(e["UID"]) for e in Calendar.from_ical(data).walk("VEVENT")] == [item_uid(v, BASE) for v in views]


TITLES = {"en": "Comments due", "fr": "Commentaires des membres", "zh": "成员对修订草案的意见",
          "ar": "تعليقات الأعضاء على المشروع المنقح", "ru": "Замечания членов по пересмотренному проекту"}  # fmt: skip


def calendar_part(data: bytes, filename: str, cte: str) -> EmailMessage:
    """The calendar *data* as a part in the transfer encoding *cte*, read back."""
    part = EmailMessage(policy=email.policy.SMTP)
    part.set_content(data.decode(), subtype="calendar", charset="utf-8", cte=cte, filename=filename)
    back = email.message_from_bytes(part.as_bytes(), policy=email.policy.strict)
    assert isinstance(back, EmailMessage)
    return back


def test_an_ascii_calendar_goes_as_plain_7bit_text() -> None:
    assert shortest_encoding("BEGIN:VCALENDAR\r\nSUMMARY:Comments due\r\nEND:VCALENDAR\r\n") == "7bit"
    assert shortest_encoding("SUMMARY:Commentaires — échéance\r\n") == "quoted-printable"
    assert shortest_encoding("SUMMARY:成员对修订草案的意见\r\n") == "base64"


# --- a change set of fifty ---------------------------------------------------------------------

FIFTY_BUDGET = 52_000  # bytes of a whole message telling fifty moves, in any language (was 65-97 KB)


def fifty_moved(language: str, **overrides: Any) -> tuple[ChangeLine, ...]:
    """Fifty membership deadlines of one timeline, a day apart, each moved a week later; the fourth cancelled."""
    week = timedelta(days=7)
    values: dict[str, Any] = {"owner": "membership", "revision": 3, "summary": "", "url": "", "opens_after": None,
                              "reminders": (), **overrides}  # fmt: skip
    views = [make_view(key=f"step-{n:02d}", title=f"Step {n + 1} of the consultation",
                       due_at=datetime(2017, 3, 10, 22, 59, 59, tzinfo=UTC) + n * timedelta(days=1),
                       status="cancelled" if n == 3 else "active", **values) for n in range(50)]  # fmt: skip
    return tuple(
        ChangeLine(view, "cancelled", view.main_at, view.main_at)
        if view.status == "cancelled"
        else ChangeLine(view, "moved", view.main_at - week, view.main_at)
        for view in views
    )


@pytest.mark.parametrize("language", ["en", "fr", "es", "ru", "zh", "ar"])
def test_fifty_moves_make_one_small_message_that_still_carries_every_item(
    renderer: Renderer, libical: ctypes.CDLL, language: str
) -> None:
    lines = fifty_moved(language)
    request = make_request("changed", language, view=None, changes=lines)

    data = renderer.render_bytes(request)

    assert len(data) <= FIFTY_BUDGET
    (calendar,) = calendars(renderer, request)
    events = calendar.walk("VEVENT")
    assert [str(e["UID"]) for e in events] == [item_uid(line.view, BASE) for line in lines]
    assert {int(e["SEQUENCE"]) for e in events} == {3}
    assert [str(e["STATUS"]) for e in events] == ["CANCELLED" if n == 3 else "CONFIRMED" for n in range(50)]
    zurich = ZoneInfo("Europe/Zurich")
    assert [e["DTSTART"].dt for e in events] == [line.view.main_at.astimezone(zurich).date() for line in lines]
    assert all("ORGANIZER" in e and "DTSTAMP" in e and "SUMMARY" in e for e in events)
    assert str(events[0]["DESCRIPTION"]).endswith(
        f"{BASE}/timelines/hlpf-2017"
    )  # the page, as the feed's item links it
    assert all(e["DTEND"].dt - e["DTSTART"].dt == timedelta(days=1) for e in events)  # each a whole day, said
    message = email.message_from_bytes(data, policy=email.policy.strict)
    assert isinstance(message, EmailMessage)
    for part in message.walk():  # each part in the shorter of quoted-printable and base64
        if part.get_content_maintype() == "text" and part["Content-Transfer-Encoding"] != "7bit":
            other = "base64" if part["Content-Transfer-Encoding"] == "quoted-printable" else "quoted-printable"
            assert len(part.get_payload()) <= len(reencoded(part, other).get_payload()), part.get_content_type()
    ics = next(message.iter_attachments()).get_payload(decode=True)
    assert isinstance(ics, bytes)
    assert restriction_errors(libical, ics) == []


def reencoded(part: EmailMessage, cte: str) -> EmailMessage:
    """*part*'s text in the transfer encoding *cte*, as the email package writes it."""
    again = EmailMessage(policy=email.policy.SMTP)
    again.set_content(part.get_content(), subtype=part.get_content_subtype(), charset="utf-8", cte=cte)
    back = email.message_from_bytes(again.as_bytes(), policy=email.policy.strict)
    assert isinstance(back, EmailMessage)
    return back


@pytest.mark.parametrize("language", ["en", "ar"])
def test_a_brief_item_keeps_the_feed_item_s_identity_dates_alarms_and_words(renderer: Renderer, language: str) -> None:
    timed = replace(SUBMISSION, key="timed", revision=4, reminders=("7d", "3h"))
    lines = (*fifty_moved(language, reminders=("7d", "1d"))[:4], ChangeLine(timed, "moved", timed.due_at, timed.due_at))
    reminder = make_request("reminder", language)

    (brief,) = calendars(renderer, make_request("changed", language, view=None, changes=lines))

    for line, event in zip(lines, brief.walk("VEVENT"), strict=True):
        full = Calendar.from_ical(build_calendar([line.view], reminder, SENDER, renderer.language_of(reminder))[0])
        (whole,) = full.walk("VEVENT")
        # A client that replaces the whole event on an update keeps all of these from the brief item.
        kept = ("UID", "SEQUENCE", "DTSTAMP", "DTSTART", "DTEND", "STATUS", "SUMMARY", "ORGANIZER", "TRANSP", "URL",
                "CATEGORIES", "LOCATION", "RRULE")  # fmt: skip
        for name in kept:
            assert (name in event) == (name in whole), name
            if name in whole:
                assert event[name].to_ical() == whole[name].to_ical(), name
        described = str(whole["DESCRIPTION"]).splitlines()
        links = [line for line in described if "://" in line]  # the source, the step's and the timeline's links
        assert all(line.rpartition(" ")[2] in str(event["DESCRIPTION"]) for line in links)
        alarms = [(a["TRIGGER"].to_ical(), str(a["DESCRIPTION"])) for a in event.walk("VALARM")]
        assert alarms == [(a["TRIGGER"].to_ical(), str(a["DESCRIPTION"])) for a in whole.walk("VALARM")]
        assert alarms or line.view.status != "active"
        assert "LAST-MODIFIED" not in event
    if language == "ar":  # the alarm speaks the reader's language
        assert "بعد 7 أيام" in str(brief.walk("VALARM")[0]["DESCRIPTION"])


SNAPSHOTS = sorted((Path(__file__).parent / "snapshots" / "emails").glob("*.eml"))


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=lambda path: path.stem)
def test_every_part_of_every_email_goes_in_the_shorter_of_quoted_printable_and_base64(snapshot: Path) -> None:
    """A long one-line table row is many soft line breaks: left uncounted, Arabic HTML went out quoted-printable."""
    message = email.message_from_bytes(snapshot.read_bytes(), policy=email.policy.default)
    for part in message.walk():
        chosen = part["Content-Transfer-Encoding"]
        if part.is_multipart() or chosen not in ("quoted-printable", "base64"):
            continue
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        sent = len(part.get_payload())
        other = len(written_in(data, "base64" if chosen == "quoted-printable" else "quoted-printable"))
        assert sent <= other * 1.01, f"{snapshot.name} {part.get_content_type()}: {chosen} {sent} > {other}"


def written_in(data: bytes, encoding: str) -> str:
    """*data* as the email package writes it in *encoding*, with CRLF line ends."""
    if encoding == "base64":
        return base64_lines(data).decode("ascii")
    return quoprimime.body_encode(data.decode("latin-1"), 76, "\r\n")
