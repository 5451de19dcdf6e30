"""Answers of the public pages and the upcoming API kept until the store changes or the minute turns.

A page of 1,000 timelines takes a second to build (its views read, every step's state worked
out, the template filled); the same page asked again with nothing changed is served from here.
An answer is keyed by the store's change marker (the newest event id, as the feeds use), the
minute (states and "due in 3 hours" follow the clock; pages say `max-age=60` anyway) and what
the request asked (path, language, zone, page). Looking one up does no I/O, so a request for a
kept answer is served on the event loop, as a cached feed is; `AnswerFront` serves a request
seen before (the same path, query and Accept-Language) from in front of the framework.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime

from fastapi import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracker.feeds.calendars import Calendars
from tracker.timelines.views import MilestoneView

KEPT = 256  # answers kept; the oldest asked leaves first (1,000-timeline pages are ~100 KB)


@dataclass(frozen=True)
class Answer:
    """One kept answer: what goes on the wire."""

    status: int
    body: bytes
    media_type: str
    headers: tuple[tuple[str, str], ...]

    def response(self) -> Response:
        return Response(self.body, self.status, dict(self.headers), self.media_type)

    @classmethod
    def of(cls, response: Response) -> Answer:
        headers = tuple((k, v) for k, v in response.headers.items() if k not in ("content-length", "content-type"))
        return cls(response.status_code, bytes(response.body), response.media_type or "", headers)


def minute(now: datetime) -> str:
    return now.strftime("%Y%m%d%H%M")


class Rendered:
    """Kept answers of one store, found by what was asked."""

    def __init__(self, calendars: Calendars, kept: int = KEPT) -> None:
        self.calendars = calendars
        self.kept = kept
        self._answers: OrderedDict[tuple[int, str, Hashable], Answer] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple[int, str, Hashable], threading.Lock] = {}

    def ready(self, asked: Hashable) -> Response | None:
        """The kept answer to *asked* if the store is known unchanged since, without any I/O; else None."""
        marker = self.calendars.marker()
        if marker is None:
            return None
        key = (marker, minute(self.calendars.clock()), asked)
        with self._lock:
            found = self._answers.get(key)
            if found is not None:
                self._answers.move_to_end(key)
        return found.response() if found is not None else None

    def answer(self, asked: Hashable, build: Callable[[list[MilestoneView], datetime], Response]) -> Response:
        """The answer to *asked*: kept, or built by *build* from the stored views and the time, and kept.

        Blocking (it may read the store): call it from a worker thread."""
        views, marker = self.calendars.snapshot()
        now = self.calendars.clock()
        key = (marker, minute(now), asked)
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        # When the minute turns, every waiting request misses at once: one builds, the others wait for it.
        with building:
            with self._lock:
                found = self._answers.get(key)
            if found is not None:
                return found.response()
            try:
                response = build(views, now)
            finally:
                with self._lock:
                    self._building.pop(key, None)
            with self._lock:
                if response.status_code < 500:
                    self._answers[key] = Answer.of(response)
                    while len(self._answers) > self.kept:
                        self._answers.popitem(last=False)
        return response


def kept_path(path: str) -> bool:
    """The public answers the front keeps: the overview, a timeline's page, /api/upcoming."""
    return path in ("/", "/api/upcoming") or (path.startswith("/timelines/") and path.count("/") == 2)


def keepable(start: Message) -> bool:
    """Whether an answer may be given again to others: a public 200 or 404 that sets no cookie."""
    if start["status"] not in (200, 404):
        return False
    for raw, value in start.get("headers", []):
        name = raw.lower()
        if name == b"set-cookie" or (name == b"cache-control" and (b"private" in value or b"no-store" in value)):
            return False
    return True


class Recorder:
    """The app's `send`, passed on, with a copy of what went: status, headers and the whole body."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.start: Message | None = None
        self.chunks: list[bytes] = []
        self.complete = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body":
            self.chunks.append(bytes(message.get("body", b"")))
            self.complete = not message.get("more_body", False)
        await self._send(message)


class AnswerFront:
    """ASGI front: a GET of a page or of /api/upcoming answered again, byte for byte as the app last
    answered the same request, while the store and the minute are unchanged; without the framework.

    The key is the request as sent (path, query, Accept-Language: what an answer may vary by),
    so a kept answer is found without parsing anything; everything else goes to the app.
    """

    def __init__(self, app: ASGIApp, calendars: Calendars, kept: int = KEPT) -> None:
        self.app = app
        self.calendars = calendars
        self.kept = kept
        self.served = 0  # answers given without the app (tests look)
        self._answers: OrderedDict[tuple[int, str, str, bytes, bytes], tuple[Message, bytes]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = self.key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        found = self._answers.get(key)
        if found is not None:
            self._answers.move_to_end(key)
            self.served += 1
            await send(found[0])
            await send({"type": "http.response.body", "body": found[1]})
            return
        recorder = Recorder(send)
        await self.app(scope, receive, recorder.send)
        start = recorder.start
        if recorder.complete and start is not None and keepable(start):
            self._answers[key] = (start, b"".join(recorder.chunks))
            while len(self._answers) > self.kept:
                self._answers.popitem(last=False)

    def key(self, scope: Scope) -> tuple[int, str, str, bytes, bytes] | None:
        """What identifies the request's answer now; None when it is not one to keep or the store may have moved."""
        if scope["type"] != "http" or scope["method"] != "GET" or not kept_path(scope["path"]):
            return None
        marker = self.calendars.marker()
        if marker is None:
            return None
        language, sends_body = b"", False
        for name, value in scope["headers"]:
            if name == b"accept-language":
                language = value
            elif name in (b"content-length", b"transfer-encoding"):
                sends_body = True
        if sends_body:
            return None
        return (marker, minute(self.calendars.clock()), scope["path"], scope["query_string"], language)
