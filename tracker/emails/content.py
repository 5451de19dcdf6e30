"""What a message says, rendered once for everyone who gets the same words.

A batch of reminders is a few texts sent to many people: one milestone, in one language, read
in one zone. Each text is rendered once with placeholders where a recipient's own values go
(the links with their tokens; the name and address, should a template ever show them), and
kept in a bounded LRU cache; a message then costs filling in a few lines. The cache holds no
recipient's data, and an entry serves only a request whose whole view and data are equal to
those it was rendered from, as FeedCache compares them.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, TypeVar

from markupsafe import escape

from tracker.emails.bodies import TextBody, make_text_body
from tracker.emails.fields import text_header
from tracker.emails.mime import CRLF, multipart, multipart_header
from tracker.mail.wire import wire_ready

if TYPE_CHECKING:
    from tracker.emails.requests import ChangeLine, EmailRequest
    from tracker.timelines.views import MilestoneView

T = TypeVar("T")
# Every value of a request that differs between recipients of the same text, in this order.
PERSONAL = ("unsubscribe", "unsubscribe_mailto", "preferences", "feed", "confirm", "name", "email")


@dataclass(frozen=True)
class Content:
    """One text, ready to be sent to anyone: header lines and parts, placeholders for the personal values."""

    subject_line: bytes
    language_line: bytes
    text: TextBody
    html: TextBody
    attachments: tuple[bytes, ...]  # the calendar part of each milestone it is about, headers and body
    shown: frozenset[int]  # the personal values either part shows

    def fits(self, values: Sequence[str]) -> bool:
        """Tell whether *values* can fill the placeholders and leave the lines as a whole render would.

        A line break would add lines; an empty value could leave an empty line that tidy_text
        would have collapsed.
        """
        shown = (values[index] for index in self.shown)
        return all(value and "\n" not in value and "\r" not in value for value in shown)

    def body(self, values: Sequence[str], boundary: str) -> list[bytes]:
        """Return the Content-Type header, the blank line after the headers, and the body, in pieces."""
        text = self.text.pieces(pick(values, self.text.fields, str.encode))
        html = self.html.pieces(pick(values, self.html.fields, lambda value: str(escape(value)).encode()))
        inner = boundary + "1"
        alternative = [multipart_header("alternative", inner), CRLF, *multipart(inner, (text, html))]
        if not self.attachments:
            return alternative
        outer = boundary + "0"
        parts = (alternative, *((attachment,) for attachment in self.attachments))
        return [multipart_header("mixed", outer), CRLF, *multipart(outer, parts)]


def pick(values: Sequence[str], fields: frozenset[int], encode: Callable[[str], bytes]) -> list[bytes]:
    """Return *values* encoded, those a part shows; the others empty (encoding them would be wasted)."""
    picked = [b""] * len(values)
    for index in fields:
        picked[index] = encode(values[index])
    return picked


class Placeholders:
    """Stand-ins for the personal values, unlike anything a template, a title or a link can hold."""

    def __init__(self) -> None:
        token = secrets.token_hex(8)  # per renderer: no text could guess it
        # Between private-use characters, which the subject's clean-up keeps (it drops control characters).
        self.values = tuple(f"\ue000{token}:{index}\ue001" for index in range(len(PERSONAL)))
        self.pattern = re.compile(f"\ue000{token}:(\\d+)\ue001".encode())

    def stand_in(self, request: EmailRequest) -> EmailRequest:
        """Return *request* with every personal value replaced by its placeholder."""
        marks = dict(zip(PERSONAL, self.values, strict=True))
        links = request.links
        confirm = None if links.confirm is None else marks["confirm"]
        links = replace(links, **{field: marks[field] for field in PERSONAL[:4]}, confirm=confirm)
        recipient = replace(request.recipient, name=marks["name"], email=marks["email"])
        return replace(request, links=links, recipient=recipient)

    def holds(self, text: str) -> bool:
        return self.pattern.search(text.encode()) is not None


def personal_values(request: EmailRequest) -> tuple[str, ...]:
    """Return the request's personal values, in PERSONAL's order."""
    links, recipient = request.links, request.recipient
    confirm = links.confirm or ""
    return (
        links.unsubscribe,
        links.unsubscribe_mailto,
        links.preferences,
        links.feed,
        confirm,
        recipient.name,
        recipient.email,
    )


def make_content(
    subject: str, tag: str, text: str, html: str, attachments: tuple[bytes, ...], marks: Placeholders
) -> Content:
    """Return the content of a text rendered with *marks*; its subject must hold none of them."""
    if marks.holds(subject):
        raise ValueError("the subject shows a personal value: render_bytes cannot share it between recipients")
    text_body, html_body = make_text_body(text, "plain", marks.pattern), make_text_body(html, "html", marks.pattern)
    return Content(
        subject_line=text_header("Subject", subject),
        language_line=text_header("Content-Language", tag),
        text=text_body,
        html=html_body,
        attachments=tuple(wire_ready(part) or part for part in attachments),  # checked once for every message
        shown=text_body.fields | html_body.fields,
    )


def content_key(request: EmailRequest, language: str, reader: str) -> tuple[Hashable, object]:
    """Return where a request's content is kept (hashable) and the state an entry must equal to serve it.

    Everything a template sees is in one or the other, but the personal values. `now` only dates
    the message and, for a view never updated, the calendar item, as Renderer.calendar keeps it.
    """
    view = request.view
    slot = (
        request.kind,
        language,
        reader,
        identity(view),
        request.due_at,
        line_facts(request.changes).key,
        request.offset,
        identity(request.predecessor),
        request.note,
        tuple((*identity(item.milestone), item.at) for item in request.digest),
        tuple(request.subscribed_to),
        request.links.confirm is None,
    )
    dated = view is not None and view.updated_at is None  # the attached item's DTSTAMP is then `now`
    changed = tuple(line.view for line in request.changes)
    state = (view, request.predecessor, tuple(request.digest), changed, request.now if dated else None)
    return slot, state


class Hashed:
    """A key whose hash is computed once: a change set's fifty lines were hashed again for every reader."""

    __slots__ = ("hash", "value")

    def __init__(self, value: tuple[Hashable, ...]) -> None:
        self.value = value
        self.hash = hash(value)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return other is self or (isinstance(other, Hashed) and other.hash == self.hash and other.value == self.value)


@dataclass(frozen=True, slots=True)
class LineFacts:
    """What the renderer needs to know of a changed message's lines: its content key part, and whether each is dated."""

    key: Hashed
    dated: bool


_LINE_FACTS: dict[int, tuple[Sequence[ChangeLine], LineFacts]] = {}  # by the id of a changes tuple compose shares


def line_facts(changes: Sequence[ChangeLine]) -> LineFacts:
    """The facts of a changed message's lines, made once per tuple of lines (fifty lines, thousands of readers)."""
    found = _LINE_FACTS.get(id(changes))
    if found is not None and found[0] is changes:  # the same tuple, not one that took a freed one's id
        return found[1]
    key = Hashed(tuple((*identity(line.view), line.change, line.old_at, line.new_at) for line in changes))
    facts = LineFacts(key, all(line.at is not None for line in changes))
    if len(_LINE_FACTS) >= 64:
        _LINE_FACTS.clear()
    _LINE_FACTS[id(changes)] = (changes, facts)
    return facts


def identity(view: MilestoneView | None) -> tuple[str, ...]:
    return () if view is None else (view.timeline_id, view.key)


class LRU(Generic[T]):
    """The *size* entries used last, each kept with the state it was made from; another state is a miss."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a cache needs room for one entry at least")
        self.size = size
        self.made = 0  # entries put so far: what tests count
        self._entries: OrderedDict[Hashable, tuple[object, T]] = OrderedDict()
        self._lock = threading.Lock()  # a renderer may be shared by threads (asyncio.to_thread)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, slot: Hashable, state: object) -> T | None:
        with self._lock:
            found = self._entries.get(slot)
            if found is None:
                return None
            if found[0] is not state:
                if found[0] != state:
                    return None
                # Equal, not the same objects (views read again, or unpickled by the render helper for
                # each batch): keep these, so that the next requests of the batch compare by identity
                # and not field by field (fifty views compared so were a third of rendering a change set).
                self._entries[slot] = (state, found[1])
            self._entries.move_to_end(slot)
            return found[1]

    def put(self, slot: Hashable, state: object, value: T) -> None:
        with self._lock:
            self.made += 1
            self._entries[slot] = (state, value)
            self._entries.move_to_end(slot)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def items(self) -> list[tuple[Hashable, T]]:
        """Return the entries, least recently used first."""
        with self._lock:
            return [(slot, value) for slot, (_, value) in self._entries.items()]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
