"""render_bytes: the message of render() as bytes, from a text rendered once for all its recipients."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import quoprimime
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.emails import (
    LOCALES,
    PEOPLE,
    SENDER,
    SHOWN,
    SNAPSHOTS,
    TEMPLATES,
    display_name,
    make_request,
    make_view,
)
from tests.support.emails import links as make_links
from tracker.emails import KINDS, LRU, EmailRequest, Kind, Recipient, Renderer
from tracker.emails.bodies import escape_quoted, make_text_body, wrap_quoted
from tracker.emails.fields import encoded_word, header_line, mailbox_value, one_line, text_value
from tracker.emails.mime import HEADERS_POLICY, date_header
from tracker.emails.render import text_part
from tracker.subscribers.links import Links
from tracker.text import LANGUAGES

# Names that take each path: atoms, a quoted string, encoded words.
NAMES = (
    "Ms Janet Umutesi",
    "M. Ghislain de Salins",
    'Dr "Bob" O\'Brien \\ chair',
    "السيد منصور القرشي",
    "蔡国磊先生",
    "Délégué Númber 5",  # mixed: one encoded word for the whole name
    "Dr. Müller, Hans",
    "Ms. 王 (UN)",
    "Anne-Marie d’Arc",
    "Zoë\u200bWidthless",  # a format character is kept, inside the encoded word
    "\x07 Bell",
    "",
    "Delegate\r\nBcc: victim@example.net",  # an injection attempt collapses into the name
    "Комитет\r\n\r\n<b>body</b>",
    "=?utf-8?q?=0D=0ABcc:_victim@example.net?=",  # looks like an encoded word: encoded, reads back as typed
)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def summary(message: EmailMessage) -> list[object]:
    """What a mail client sees: every header's value, and every part's type, parameters and decoded content."""
    seen: list[object] = [(name, str(value)) for name, value in message.items()]
    for part in message.walk():
        assert isinstance(part, EmailMessage)
        seen.append((part.get_content_type(), sorted(part.get_params() or []), part.get_filename()))
        if not part.is_multipart():
            seen.append(part.get_content())
    return seen


def assert_same_message(renderer: Renderer, request: EmailRequest) -> bytes:
    """Check that render_bytes reads back exactly as render() does; return its bytes."""
    fast = renderer.render_bytes(request)
    slow = bytes(renderer.render(request))
    assert summary(parse(fast)) == summary(parse(slow))
    assert fast.isascii() and b"\n" not in fast.replace(b"\r\n", b"")
    return fast


def for_someone(kind: Kind, language: str, name: str, token: str = "tok") -> EmailRequest:
    address = PEOPLE[language][0]
    recipient = Recipient(address, name, language, PEOPLE[language][2])
    return make_request(kind, language, recipient=recipient, links=make_links(token))


# --- the same message ------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_it_writes_the_bytes_of_render_and_of_the_snapshot(renderer: Renderer, kind: Kind, language: str) -> None:
    request = make_request(kind, language)

    first, again = renderer.render_bytes(request), renderer.render_bytes(request)

    assert first == again == bytes(renderer.render(request))
    assert first == (SNAPSHOTS / f"{kind}.{language}.eml").read_bytes()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("language", SHOWN)
@pytest.mark.parametrize("kind", KINDS)
def test_it_reads_back_as_render_does_for_any_name(renderer: Renderer, kind: Kind, language: str, name: str) -> None:
    fast = assert_same_message(renderer, for_someone(kind, language, name))

    message = parse(fast)
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == (one_line(name), PEOPLE[language][0])
    assert message.get_all("Bcc") is None


@pytest.mark.parametrize(
    "links",
    [
        make_links("tok\r\nBcc: victim@example.net"),  # a line break in a link: the whole render is used
        replace(make_links(), preferences=""),  # an empty link: tidy_text could collapse its line
        replace(make_links(), feed="https://tracker.example.org/feeds/me/é<&>\"'.ics"),  # escaped in HTML
        replace(make_links(), unsubscribe="https://x.example/" + "u" * 1200),  # a header too long for one line
        replace(make_links(), unsubscribe_mailto="mailto:u@x.example?subject==?utf-8?q?hi?="),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_odd_links_read_back_as_render_does(renderer: Renderer, kind: Kind, links: Links) -> None:
    request = replace(make_request(kind, "fr"), links=links)

    assert_same_message(renderer, request)


def test_a_name_mixing_scripts_is_one_encoded_word_on_both_paths(renderer: Renderer) -> None:
    request = for_someone("reminder", "en", "Délégué Númber 5")

    fast, slow = renderer.render_bytes(request), bytes(renderer.render(request))

    assert fast == slow
    assert b"To: =?utf-8?b?RMOpbMOpZ3XDqSBOw7ptYmVyIDU=?= <janet.umutesi@example.org>" in fast


def test_an_unusable_address_is_refused_as_render_refuses_it(renderer: Renderer) -> None:
    request = for_someone("reminder", "en", "Eve")
    request = replace(request, recipient=replace(request.recipient, email="eve@example.org>\r\nBcc: x@y"))

    with pytest.raises(ValueError) as slow:
        renderer.render(request)
    with pytest.raises(ValueError) as fast:
        renderer.render_bytes(request)
    assert str(fast.value) == str(slow.value)


def test_a_request_missing_what_its_kind_needs_is_refused(renderer: Renderer) -> None:
    with pytest.raises(ValueError, match="offset"):
        renderer.render_bytes(make_request("reminder", offset=None))


# --- once per text ---------------------------------------------------------------------------


def test_it_renders_a_text_once_for_all_its_recipients(renderer: Renderer) -> None:
    fresh = Renderer(TEMPLATES, LOCALES, SENDER)
    requests = [for_someone("reminder", "ar", f"Delegate {number}", f"token{number}") for number in range(20)]

    messages = [fresh.render_bytes(request) for request in requests]

    assert fresh.contents.made == 1
    assert messages == [bytes(renderer.render(request)) for request in requests]


def test_the_cache_keeps_no_recipient_s_data(renderer: Renderer) -> None:
    fresh = Renderer(TEMPLATES, LOCALES, SENDER)
    for kind in KINDS:
        fresh.render_bytes(for_someone(kind, "en", "Secret Name", "secret-token"))

    kept = repr(fresh.contents.items())
    assert len(fresh.contents) == len(KINDS)
    assert "secret-token" not in kept and "Secret Name" not in kept and "janet.umutesi" not in kept


def test_a_changed_view_is_never_served_from_the_cache(renderer: Renderer) -> None:
    fresh = Renderer(TEMPLATES, LOCALES, SENDER)
    view = make_view()
    edited = replace(view, summary="The secretariat extended the consultation.")  # same revision
    moved = replace(view, due_at=view.due_at + timedelta(days=7) if view.due_at else None, revision=3)

    for changed in (view, edited, moved, view):
        request = make_request("reminder", "fr", view=changed)
        assert fresh.render_bytes(request) == bytes(renderer.render(request))
    assert fresh.contents.made == 4


def test_the_time_of_sending_changes_the_date_not_the_text_but_for_a_never_updated_calendar(
    renderer: Renderer,
) -> None:
    fresh = Renderer(TEMPLATES, LOCALES, SENDER)
    later = datetime(2017, 3, 3, 9, 30, tzinfo=UTC)
    for view in (make_view(), make_view(updated_at=None)):
        for now in (datetime(2017, 3, 3, 8, 0, tzinfo=UTC), later):
            request = make_request("reminder", "zh", view=view, now=now)
            assert fresh.render_bytes(request) == bytes(renderer.render(request))
    assert fresh.contents.made == 3  # the never-updated view's calendar item is dated by `now`


def test_the_cache_is_bounded_and_forgets_the_least_recently_used(renderer: Renderer) -> None:
    fresh = Renderer(TEMPLATES, LOCALES, SENDER, contents=2)
    first, second, third = (make_request("cancelled", language) for language in ("en", "fr", "es"))

    for request in (first, second, first, third, first, second):
        fresh.render_bytes(request)

    assert len(fresh.contents) == 2
    assert fresh.contents.made == 4  # second was forgotten for third, first kept as the most recent


def test_an_lru_needs_room() -> None:
    with pytest.raises(ValueError, match="room"):
        LRU[int](0)


def test_a_subject_showing_a_personal_value_cannot_be_shared(tmp_path: Path) -> None:
    templates = tmp_path / "emails"
    shutil.copytree(TEMPLATES, templates)
    source = (templates / "confirm.txt.j2").read_text(encoding="utf-8")
    subject = source.replace("{% endtrans %}{% endblock %}", "{% endtrans %} {{ links.confirm }}{% endblock %}", 1)
    (templates / "confirm.txt.j2").write_text(subject, encoding="utf-8")
    fresh = Renderer(templates, LOCALES, SENDER)

    assert "/confirm/tok" in str(fresh.render(make_request("confirm"))["Subject"])
    with pytest.raises(ValueError, match="subject shows a personal value"):
        fresh.render_bytes(make_request("confirm"))


# --- the pieces --------------------------------------------------------------------------------

NAME_TEXT = st.text(max_size=40)
HEADER_TEXT = st.lists(
    st.one_of(st.characters(), st.sampled_from(["\r\n", "\x00", "\u2028", "\ud800", "=?", "?="]))
).map("".join)


def header_lines(name: str, value: str) -> list[bytes]:
    return header_line(name, value).split(b"\r\n")[:-1]


@settings(max_examples=400, deadline=None)
@given(NAME_TEXT)
@example("a  b")
@example("=?utf-8?q?x?= y")
@example("=?utf-8?b?DQpCY2M6IHg=?=")
@example('"quoted" \\ name, with specials')
@example("x" * 990)
@example("Délégué " * 30)
def test_a_mailbox_reads_back_as_its_name_and_address(name: str) -> None:
    value = mailbox_value("To", name, "someone.else@example.org")

    (address,) = parse(header_line("To", value) + b"\r\n")["To"].addresses
    assert address.addr_spec == "someone.else@example.org"
    assert display_name(value.replace("\r\n", "")) == one_line(name)
    assert max(map(len, header_lines("To", value))) <= 78


@settings(max_examples=300, deadline=None)
@given(HEADER_TEXT)
@example("<https://x.example/u/tok>, <mailto:u@x.example?subject=unsubscribe%20tok>")
@example("Due in 7 days: =?utf-8?q?=0D=0ABcc:_x@y?=")
@example("a" * 61 + " é " + "b" * 200)
def test_an_unstructured_value_reads_back_as_its_text(text: str) -> None:
    value = text_value("Subject", text)

    assert str(parse(header_line("Subject", value) + b"\r\n")["Subject"]) == one_line(text)
    assert str(make_header(decode_header(value.replace("\r\n", "")))) == one_line(text)
    assert max(map(len, header_lines("Subject", value))) <= 78


@pytest.mark.parametrize("hours", [0, 2, -3, 5.75])
def test_a_date_is_written_as_the_email_package_writes_it(hours: float) -> None:
    from datetime import timezone

    at = datetime(2017, 3, 3, 8, 0, 7, 123, tzinfo=timezone(timedelta(hours=hours)))
    value = email.utils.format_datetime(at)

    assert date_header(at) == HEADERS_POLICY.fold_binary("Date", HEADERS_POLICY.header_store_parse("Date", value)[1])


def test_a_zone_offset_in_seconds_is_written_in_utc() -> None:
    from datetime import timezone

    at = datetime(1900, 1, 1, 0, 9, 21, tzinfo=timezone(timedelta(seconds=561)))  # Paris mean time

    assert date_header(at) == b"Date: Mon, 01 Jan 1900 00:00:00 +0000\r\n"


@given(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=60))
def test_an_encoded_word_decodes_to_its_text_or_is_too_long(text: str) -> None:
    word = encoded_word(text)

    if word is None:
        assert len(text.encode()) > 45  # base64 of 46 bytes or more passes 75 characters
    else:
        assert len(word) <= 75
        assert str(email.header.make_header(email.header.decode_header(word))) == text


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=300))
@example("x" * 76 + " ")
@example("x" * 77 + "\t")
@example("x" * 75 + "é")
@example("=" * 100)
def test_a_line_is_wrapped_as_quoted_printable_as_the_email_package_wraps_it(line: str) -> None:
    data = line.encode("utf-8")

    assert wrap_quoted(escape_quoted(data)) == quoprimime.body_encode(data.decode("latin-1"), 76, "\r\n")


MARKS = re.compile(rb"\x00(\d)\x00")
LINE_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\r\n\x00"), max_size=90)
VALUE = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\r\n\x00"), min_size=1, max_size=40
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.tuples(LINE_TEXT, st.sampled_from([None, 0, 1])), min_size=1, max_size=16),
    values=st.tuples(VALUE, VALUE),
    subtype=st.sampled_from(["plain", "html"]),
)
@example(lines=[("x" * 100, 0)], values=("a", "b"), subtype="plain")
@example(lines=[("a ", None), ("", 1), ("", None)], values=("b", " \t"), subtype="plain")
def test_a_text_part_is_encoded_as_the_email_package_encodes_it(
    lines: list[tuple[str, int | None]], values: tuple[str, str], subtype: str
) -> None:
    template = "\n".join(text if index is None else f"{text}\x00{index}\x00{text}" for text, index in lines) + "\n"
    filled = "\n".join(text if index is None else f"{text}{values[index]}{text}" for text, index in lines) + "\n"

    fast = make_text_body(template, subtype, MARKS).render([value.encode() for value in values])

    assert fast == text_part(filled, subtype).as_bytes(policy=HEADERS_POLICY)
