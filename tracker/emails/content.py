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
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, TypeVar

from markupsafe import escape

from tracker.emails.mime import CRLF, TextBody, fold_header, make_text_body, multipart, multipart_header

if TYPE_CHECKING:
    from tracker.emails.render import EmailRequest
    from tracker.planning import MilestoneView

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
    attachment: bytes | None  # a reminder's calendar part, headers and body

    def fits(self, values: Sequence[str]) -> bool:
        """Tell whether *values* can fill the placeholders and leave the lines as a whole render would.

        A line break would add lines; an empty value could leave an empty line that tidy_text
        would have collapsed.
        """
        shown = (values[index] for index in self.text.fields | self.html.fields)
        return all(value and "\n" not in value and "\r" not in value for value in shown)

    def body(self, values: Sequence[str], boundary: str) -> bytes:
        """Return the Content-Type header, the blank line after the headers, and the body."""
        text = self.text.render([value.encode() for value in values])
        html = self.html.render([str(escape(value)).encode() for value in values])
        alternative = multipart_header("alternative", boundary + "1") + CRLF + multipart(boundary + "1", (text, html))
        if self.attachment is None:
            return alternative
        return (
            multipart_header("mixed", boundary + "0") + CRLF + multipart(boundary + "0", (alternative, self.attachment))
        )


class Placeholders:
    """Stand-ins for the personal values, unlike anything a template, a title or a link can hold."""

    def __init__(self) -> None:
        token = secrets.token_hex(8)  # per renderer: no text could guess it
        self.values = tuple(f"\x00{token}:{index}\x00" for index in range(len(PERSONAL)))
        self.pattern = re.compile(f"\x00{token}:(\\d+)\x00".encode())

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
    subject: str, tag: str, text: str, html: str, attachment: bytes | None, marks: Placeholders
) -> Content:
    """Return the content of a text rendered with *marks*; its subject must hold none of them."""
    if marks.holds(subject):
        raise ValueError("the subject shows a personal value: render_bytes cannot share it between recipients")
    return Content(
        subject_line=fold_header("Subject", subject),
        language_line=fold_header("Content-Language", tag),
        text=make_text_body(text, "plain", marks.pattern),
        html=make_text_body(html, "html", marks.pattern),
        attachment=attachment,
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
        request.old_at,
        request.offset,
        identity(request.predecessor),
        tuple((*identity(item.milestone), item.at) for item in request.digest),
        tuple(request.subscribed_to),
        request.links.confirm is None,
    )
    dated = request.kind == "reminder" and view is not None and view.updated_at is None
    state = (view, request.predecessor, tuple(request.digest), request.now if dated else None)
    return slot, state


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
            if found is None or found[0] != state:
                return None
            self._entries.move_to_end(slot)
            return found[1]

    def put(self, slot: Hashable, state: object, value: T) -> None:
        with self._lock:
            self.made += 1
            self._entries[slot] = (state, value)
            self._entries.move_to_end(slot)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
