"""Every message keeps to the line limits of RFC 5322, 2045 and 2047, and reads back as written (issue 15, point 9).

Whole messages, of every kind in the six languages, with long titles and names in Arabic,
Chinese, Russian and more, through both paths (render, and render_bytes from a shared text):
header lines keep to 78 characters wherever a fold is possible (998 always), encoded words
to 75, quoted-printable and base64 lines to 76; and `email` with policy.strict reads the
subject, the recipient's name and every text part back as they were rendered.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from email.message import EmailMessage

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.emails import LOCALES, SENDER, TEMPLATES, display_name, make_request
from tests.support.emails import links as make_links
from tracker.emails import KINDS, EmailRequest, Kind, Recipient, Renderer
from tracker.emails.fields import one_line
from tracker.text import LANGUAGES

RENDERER = Renderer(TEMPLATES, LOCALES, SENDER)
ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
SCRIPTS = {
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "chinese": "国际电信联盟理事会工作组信息社会世界峰会最终文本提交",
    "russian": "абвгдежзийклмнопрстуфхцчшщыэюя",
    "latin": "abcdefghijklmnopqrstuvwxyzéèàüöñçØ",
    "ascii": "abcdefghijklmnopqrstuvwxyz0123456789-",
    "mixed": 'aé国б\u200bي😀!"=?_ ,;<>()',
}
WORDS = st.sampled_from(sorted(SCRIPTS)).flatmap(lambda script: st.text(SCRIPTS[script], min_size=1, max_size=40))
# Titles and names of words, or one long run without spaces (Chinese is written so).
TEXT = st.lists(WORDS, min_size=1, max_size=12).map(" ".join) | st.text(SCRIPTS["chinese"], min_size=1, max_size=200)
TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", min_size=1, max_size=160)


def request_of(kind: Kind, language: str, title: str, timeline: str, name: str, token: str) -> EmailRequest:
    """Return the request of *kind* with these texts in its titles (both the English and *language*'s) and name."""
    request = make_request(kind, language)
    view = request.view
    if view is not None:
        view = replace(view, title=title, titles={language: title}, timeline_title=timeline)
        view = replace(view, timeline_titles={language: timeline})
    subscribed = (timeline, title) if kind == "confirm" else request.subscribed_to
    person = replace(request.recipient, name=name)
    return replace(request, recipient=person, links=make_links(token), view=view, subscribed_to=subscribed)


def header_section(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def assert_header_lines_keep_to_their_limits(data: bytes) -> None:
    """Each line of each header section (the message's and each part's) keeps to 78 where a fold could go."""
    sections = [
        data,
        *(piece.split(b"\r\n", 1)[1] for piece in re.split(rb"\r\n--=_[0-9a-f]{24}_\d(?=\r\n)", data)[1:]),
    ]
    for section in sections:
        for line in header_section(section):
            assert len(line) <= 998, line
            value = line.split(b":", 1)[1] if not line[:1].isspace() and b":" in line else line
            # Longer than 78 only where no fold can go: one word (a URL) that has the line to itself.
            assert len(line) <= 78 or len(value.strip().split()) == 1, line
            assert all(len(word) <= 75 for word in ENCODED_WORD.findall(line)), line


def assert_body_lines_keep_to_their_limits(message: EmailMessage, data: bytes) -> None:
    """Quoted-printable and base64 lines keep to 76 octets (RFC 2045 6.7 and 6.8); any line to 998."""
    assert max(map(len, data.split(b"\r\n"))) <= 998
    for part in message.walk():
        if part.is_multipart():
            continue
        encoding = part.get("Content-Transfer-Encoding", "7bit").lower()
        raw = part.get_payload(decode=False)
        assert isinstance(raw, str)
        lines = raw.split("\n")
        if encoding in ("quoted-printable", "base64"):
            assert max(len(line.rstrip("\r")) for line in lines) <= 76, (encoding, part.get_content_type())


def raw_header(data: bytes, name: bytes) -> str:
    """Return a header's value as written, unfolded."""
    found = re.search(rb"^" + name + rb": (.*?)\r\n(?! )", data, flags=re.MULTILINE | re.DOTALL)
    assert found is not None
    return found.group(1).replace(b"\r\n", b"").decode("ascii")


def assert_reads_back(message: EmailMessage, data: bytes, renderer: Renderer, request: EmailRequest) -> None:
    """policy.strict reads the subject, the name and each text part back as they were rendered."""
    subject, text, html = renderer.compose(request, renderer.language_of(request))
    assert str(message["Subject"]) == subject
    # The name as RFC 2047 6.2 reads it: Python 3.11's address parser keeps the folding space
    # between two encoded words of a phrase, so a long name would read back with a space at each cut.
    (address,) = message["To"].addresses
    assert address.addr_spec == request.recipient.email
    assert display_name(raw_header(data, b"To")) == one_line(request.recipient.name)
    plain, rich = (message.get_body(preferencelist=(subtype,)) for subtype in ("plain", "html"))
    assert plain is not None and rich is not None
    assert plain.get_content().replace("\r\n", "\n") == text
    assert rich.get_content().replace("\r\n", "\n") == html.rstrip("\n") + "\n"  # a part ends its last line


def check(request: EmailRequest) -> None:
    for data in (bytes(RENDERER.render(request)), RENDERER.render_bytes(request)):
        message = email.message_from_bytes(data, policy=email.policy.strict)
        assert isinstance(message, EmailMessage)
        assert_header_lines_keep_to_their_limits(data)
        assert_body_lines_keep_to_their_limits(message, data)
        assert_reads_back(message, data, RENDERER, request)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    language=st.sampled_from(LANGUAGES),
    title=TEXT,
    timeline=TEXT,
    name=TEXT,
    token=TOKEN,
)
@example(
    "reminder",
    "ar",
    "تعليقات الأعضاء على المشروع المنقح " * 4,
    "مساهمة المجلس " * 6,
    "السيد منصور القرشي " * 5,
    "t" * 120,
)
@example(
    "changed",
    "zh",
    "成员对修订草案的意见" * 12,
    "国际电联理事会对高级别政治论坛的贡献" * 5,
    "蔡国磊先生" * 20,
    "t" * 150,
)
@example("cancelled", "ru", "Комментарии членов к пересмотренному проекту " * 4, "Вклад " * 20, "Профессор " * 9, "tok")
@example("confirm", "fr", "x" * 200, "y" * 200, "z" * 200, "t" * 160)
def test_every_message_keeps_to_the_line_limits_and_reads_back(
    kind: Kind, language: str, title: str, timeline: str, name: str, token: str
) -> None:
    check(request_of(kind, language, title, timeline, name, token))


def test_a_long_list_unsubscribe_folds_between_its_two_links() -> None:
    request = replace(make_request("reminder"), links=make_links("t" * 15))

    data = RENDERER.render_bytes(request)

    lines = [line for line in header_section(data) if line.startswith(b"List-Unsubscribe:")]
    index = header_section(data).index(lines[0])
    assert header_section(data)[index].endswith(b",") and header_section(data)[index + 1].startswith(b" <mailto:")
    assert len(header_section(data)[index]) <= 78  # the mailto: link is a line of its own, a URL not cut


def test_recipient_names_of_every_script_read_back_in_every_language() -> None:
    for language in LANGUAGES:
        for script, letters in SCRIPTS.items():
            name = f"{letters} {letters[::-1]} {script}"
            request = make_request("reminder", language)
            check(replace(request, recipient=Recipient(request.recipient.email, name, language, "Asia/Tokyo")))
