"""The public feeds: which exist, and their bytes kept fresh from the events table.

Every change to the store writes an event, so a feed is rebuilt only when the newest
event id moved (or its hour turned: cancelled items leave feeds after a grace period).
Items are serialised once per revision by `feeds.FeedCache`; a rebuild after one change
re-serialises that item only.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from tracker.clock import Clock, utc_now
from tracker.feeds import CalendarInfo, FeedCache, FeedKind, ItemWords, select_views
from tracker.feeds.words import item_words
from tracker.i18n.languages import Language, choose_language, load_language
from tracker.i18n.wording import FEED_DESCRIPTION, FEED_NAME
from tracker.store.engine import transaction
from tracker.store.models import Subscriber
from tracker.subscribers.readers import Reader, read_reader
from tracker.subscribers.registry import DEFAULT_AUDIENCES
from tracker.subscribers.tokens import read_token
from tracker.text import LANGUAGES
from tracker.timelines.screening import screen_views
from tracker.timelines.stored import load_views, newest_view_event
from tracker.timelines.views import MilestoneView, Problems, follows

log = logging.getLogger("tracker.feeds.calendars")
REPORTED = 10_000  # items left out that one process remembers having logged
CHECK_INTERVAL = 1.0  # seconds a served feed may lag behind the store
PERSONAL_CACHES = 512  # subscribers whose serialised items are kept between requests


@dataclass(frozen=True)
class FeedBody:
    """One feed's bytes with what HTTP caching needs."""

    body: bytes
    etag: str  # strong, quoted
    last_modified: datetime

    @classmethod
    def of(cls, body: bytes, last_modified: datetime) -> FeedBody:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return cls(body, etag, last_modified.replace(microsecond=0))

    @cached_property
    def gzipped(self) -> bytes:
        """Compressed on first ask: most clients never ask, and a large feed takes a while."""
        return gzip.compress(self.body, 6, mtime=0)


@dataclass(frozen=True)
class FeedRef:
    kind: FeedKind
    key: str | None

    @property
    def path(self) -> str:
        if self.kind == "all":
            return "/feeds/all.ics"
        if self.kind == "timeline":
            return f"/feeds/{self.key}.ics"
        return f"/feeds/audiences/{self.key}.ics"


@dataclass
class _Built:
    stamp: tuple[int | None, str]
    feed: FeedBody


class Calendars:
    """Serve and publish the public feeds of one store."""

    def __init__(
        self,
        engine: Engine,
        *,
        base_url: str,
        cancelled_grace: timedelta,
        clock: Clock | None = None,
        check_interval: float = CHECK_INTERVAL,
        reminder_hour: int = 9,
        secret: bytes | None = None,
        locales: Path | None = None,
    ) -> None:
        self.secret = secret
        self.languages = load_languages(locales)
        self._personal: OrderedDict[int, FeedCache] = OrderedDict()
        self.check_interval = check_interval
        self.reminder_hour = reminder_hour
        self.engine = engine
        self.base_url = base_url.rstrip("/")
        self.cancelled_grace = cancelled_grace
        self.clock = clock or utc_now
        self._lock = threading.Lock()
        self._views: list[MilestoneView] = []
        self._stored: list[MilestoneView] = []  # as read, unreadable ones included: pages name them
        self._views_event: int | None = None
        self._refs: list[FeedRef] = []
        self._checked_at: float | None = None  # monotonic time of the last look at the events table
        self._caches: dict[FeedRef, FeedCache] = {}
        self._built: dict[FeedRef, _Built] = {}
        self._reported: Problems = {}  # what the feeds left out and this process logged

    def refs(self) -> list[FeedRef]:
        """Every public feed: all, one per timeline, one per audience."""
        self._current_views()
        return list(self._refs)

    def ready(self, ref: FeedRef) -> FeedBody | None:
        """Return the feed's bytes when they are known to be current, without any I/O; else None.

        The web app answers from here on its event loop and only goes to a worker thread
        (feed()) when the store must be asked or the feed rebuilt.
        """
        checked = self._checked_at
        if checked is None or time.monotonic() - checked >= self.check_interval:
            return None
        built = self._built.get(ref)
        if built is None or built.stamp != (self._views_event, self.clock().strftime("%Y%m%d%H")):
            return None
        return built.feed

    def snapshot(self) -> tuple[list[MilestoneView], int]:
        """Return the stored views (unreadable ones included) and the store's change marker (the newest
        event id, 0 for none); the store is asked at most once per check interval."""
        with self._lock:
            self._current_views()
            return self._stored, self._views_event or 0

    def marker(self) -> int | None:
        """The store's change marker when it is known to be current, without any I/O; else None."""
        checked = self._checked_at
        if checked is None or time.monotonic() - checked >= self.check_interval:
            return None
        return self._views_event or 0

    def feed(self, ref: FeedRef) -> FeedBody | None:
        """Return the feed's current bytes, or None when no such feed exists."""
        with self._lock:
            if ref not in self.refs():
                return None
            now = self.clock()
            stamp = (self._views_event, now.strftime("%Y%m%d%H"))
            built = self._built.get(ref)
            if built is None or built.stamp != stamp:
                built = _Built(stamp, self._build(ref, now))
                self._built[ref] = built
            return built.feed

    def personal(self, token: str) -> FeedBody | None:
        """Return a confirmed subscriber's own feed, or None for a wrong, revoked or rotated token."""
        subscriber = self._token_owner(token)
        if subscriber is None or subscriber.id is None:
            return None
        language = choose_language(subscriber.language)
        with self._lock:
            views = personal_views(self._current_views(), subscriber)
            hour = self.clock().replace(minute=0, second=0, microsecond=0)
            cache = self._personal_cache(subscriber.id)
            body = cache.render(views, self.personal_info(language), now=hour, cancelled_grace=self.cancelled_grace)
            self._report(cache.left_out)
        changed = [v.updated_at for v in views if v.updated_at is not None]
        return FeedBody.of(body, max([*changed, subscriber.changed_at or hour]))

    def personal_info(self, code: str) -> CalendarInfo:
        """Return what a personal feed says about itself, and the language of its item titles (*code*)."""
        language = self.languages.get(code)
        info = CalendarInfo(
            name=FEED_NAME,
            description=FEED_DESCRIPTION,
            url=f"{self.base_url}/",
            base_url=self.base_url,
            reminder_hour=self.reminder_hour,
            words=ItemWords(language=code),  # titles come from the store: translated even without catalogs
        )
        if language is None:
            return info
        name, description = language.gettext(FEED_NAME), language.gettext(FEED_DESCRIPTION)
        return replace(info, name=name, description=description, words=item_words(language))

    def _personal_cache(self, subscriber_id: int) -> FeedCache:
        cache = self._personal.pop(subscriber_id, None) or FeedCache()
        self._personal[subscriber_id] = cache  # most recently used last; the oldest leave first
        while len(self._personal) > PERSONAL_CACHES:
            self._personal.popitem(last=False)
        return cache

    def _token_owner(self, token: str) -> Subscriber | None:
        found = read_token(self.secret, "feed", token) if self.secret else None
        if found is None:
            return None
        with transaction(self.engine) as session:
            subscriber = session.get(Subscriber, found[0])
        if subscriber is None or subscriber.feed_version != found[1] or subscriber.state != "confirmed":
            return None
        return subscriber

    def _build(self, ref: FeedRef, now: datetime) -> FeedBody:
        views = select_views(self._views, ref.kind, ref.key)
        cache = self._caches.setdefault(ref, FeedCache())
        # Within the hour the bytes depend on the data only, so an unchanged feed keeps its ETag.
        hour = now.replace(minute=0, second=0, microsecond=0)
        body = cache.render(views, self.info(ref), now=hour, cancelled_grace=self.cancelled_grace)
        self._report(cache.left_out)
        changed = [v.updated_at for v in views if v.updated_at is not None]
        return FeedBody.of(body, max(changed, default=hour))

    def _report(self, left_out: Problems) -> None:
        """Log once (per process) each milestone the feeds leave out, and why."""
        for key, reason in left_out.items():
            if self._reported.get(key) != reason and len(self._reported) < REPORTED:
                self._reported[key] = reason
                log.warning("feeds leave out %s (every other item is served): %s", key, reason)

    def info(self, ref: FeedRef) -> CalendarInfo:
        url = f"{self.base_url}/" if ref.kind != "timeline" else f"{self.base_url}/timelines/{ref.key}"
        if ref.kind == "all":
            name, description = "Tracker: all deadlines", "Every deadline, window and meeting of every timeline."
        elif ref.kind == "timeline":
            title = next((v.timeline_title for v in self._views if v.timeline_id == ref.key), str(ref.key))
            summary = next((v.timeline_summary for v in self._views if v.timeline_id == ref.key), "")
            name, description = title, summary or f"Deadlines of {title}."
        else:
            name = f"Tracker: {ref.key}"
            description = f"Deadlines on which {ref.key} must act, and the meetings of their timelines."
        return CalendarInfo(
            name=name,
            description=description,
            url=url,
            base_url=self.base_url,
            source=self.base_url + ref.path,
            reminder_hour=self.reminder_hour,
        )

    def _current_views(self) -> list[MilestoneView]:
        """Reload the views when the store has a newer event; look at most once a second."""
        checked = self._checked_at
        if checked is not None and time.monotonic() - checked < self.check_interval:
            return self._views
        with transaction(self.engine) as session:
            newest = newest_view_event(session)  # not any event: a console sign-in changes no feed
            if checked is None or newest != self._views_event:
                set_aside: Problems = {}
                self._stored = load_views(session)
                self._views = screen_views(self._stored, set_aside)
                self._report(set_aside)
                self._refs = feed_refs(self._views)
                self._views_event = newest
        self._checked_at = time.monotonic()
        return self._views


def personal_views(views: list[MilestoneView], subscriber: Subscriber) -> list[MilestoneView]:
    """The milestones a subscriber follows, with their own offsets where the milestone has reminders.

    Stored choices that do not read are read as planning reads them (unreadable offsets left
    out, the milestones' own if none is left); unreadable audiences or timelines give the
    defaults: every timeline, as the membership. A feed shows public dates only, and a feed
    with the defaults serves the subscriber better than an error does.
    """
    reader, _ = read_reader(subscriber.id or 0, subscriber.audiences, subscriber.timelines, subscriber.reminders,
                            subscriber.timezone, subscriber.digest)  # fmt: skip
    if reader is None:
        reader = Reader(subscriber.id or 0, DEFAULT_AUDIENCES, None, None)
    own = reader.reminders
    return [
        v if own is None or not v.reminders else replace(v, reminders=own)
        for v in views
        if follows(v, reader.timelines, reader.audiences)
    ]


def load_languages(locales: Path | None) -> dict[str, Language]:
    """Read the catalogs personal feeds speak; none (English words) when there is no catalog folder.

    The feeds served before catalogs were needed for them: a server started without the
    folder keeps serving, in English, rather than refusing to start.
    """
    if locales is None or not locales.is_dir():
        return {}
    return {code: load_language(locales, code) for code in LANGUAGES}


def feed_refs(views: list[MilestoneView]) -> list[FeedRef]:
    """Every public feed of *views*: all, one per timeline, one per audience."""
    timelines = sorted({v.timeline_id for v in views if v.status != "removed"})
    audiences = sorted({a for v in views for a in (*v.audiences, v.owner) if a})
    return [
        FeedRef("all", None),
        *(FeedRef("timeline", t) for t in timelines),
        *(FeedRef("audience", a) for a in audiences),
    ]
