"""Answers of the public pages and the upcoming API kept until the store changes or the minute turns.

A page of 1,000 timelines takes a second to build (its views read, every step's state worked
out, the template filled); the same page asked again with nothing changed is served from here.
An answer is keyed by the store's change marker (the newest event id, as the feeds use), the
minute (states and "due in 3 hours" follow the clock; pages say `max-age=60` anyway) and what
the request asked (path, language, zone, page). Looking one up does no I/O, so a request for a
kept answer is served on the event loop, as a cached feed is.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime

from fastapi import Response

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
            found = self._answers.get(key)
        if found is not None:
            return found.response()
        response = build(views, now)
        if response.status_code < 500:
            with self._lock:
                self._answers[key] = Answer.of(response)
                while len(self._answers) > self.kept:
                    self._answers.popitem(last=False)
        return response
