"""A real server for the subscription and preferences pages, and the links a member follows to them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.timelines import HLPF, MEETING, NOW, WriteTimeline
from tests.support.web import BASE, SECRET, running, subscribe, sync
from tracker.config import Settings
from tracker.feeds.calendars import Calendars
from tracker.subscribers.tokens import make_token
from tracker.web.app import create_app
from tracker.web.signups import Signups

MakeClient = Callable[..., httpx.Client]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def make_client(engine: Engine, schedules: Path, write_timeline: WriteTimeline, clock: Clock) -> Iterator[MakeClient]:
    """Start the app in a real server on a synced store; keywords are settings (e.g. subscribe_limit).

    A subscription request is handled after its answer (tracker/web/signups.py): the client waits for
    that work after each answer, as a person would wait for the email before looking."""
    write_timeline("hlpf", HLPF)
    write_timeline("cwg-32", MEETING)
    sync(engine, schedules)
    with ExitStack() as stack:

        def make(**settings: Any) -> httpx.Client:
            calendars = Calendars(engine, base_url=BASE, cancelled_grace=timedelta(days=30), clock=clock,
                                  check_interval=0, secret=SECRET)  # fmt: skip
            config = Settings(base_url=BASE, timezone="Europe/Zurich", **settings)
            signups = Signups()
            url = stack.enter_context(running(create_app(engine, calendars, settings=config, signups=signups)))
            hooks = {"response": [lambda _: signups.drain()]}
            return stack.enter_context(httpx.Client(base_url=url, timeout=10, event_hooks=hooks))

        yield make


@pytest.fixture
def http(make_client: MakeClient) -> httpx.Client:
    return make_client()


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def preferences_link(engine: Engine, email: str, *, confirmed: bool = True, **fields: object) -> str:
    subscriber_id, _ = subscribe(engine, email, confirmed=confirmed, **fields)
    return f"/preferences/{make_token(SECRET, 'manage', subscriber_id, 0)}"
