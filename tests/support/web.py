"""The app in a real uvicorn server on a thread, and the store-side steps the HTTP tests take around it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import Engine
from sqlmodel import select
from starlette.types import ASGIApp

from tests.support.processes import free_port
from tests.support.timelines import NOW
from tracker.config import Settings
from tracker.feeds.calendars import Calendars
from tracker.store.engine import transaction
from tracker.store.models import Subscriber
from tracker.subscribers.registry import Known, check_input, save
from tracker.subscribers.tokens import make_token
from tracker.timelines.pipeline import sync_folder
from tracker.web.app import FeedFastPath, create_app

SECRET = b"test-secret-" * 4
BASE = "https://tracker.example.org"
AMINA = {"email": "amina@mission.example.org", "name": "Amina Diallo", "language": "fr", "timezone": "Africa/Dakar",
         "audiences": ["membership"], "timelines": ["hlpf"], "digest": "weekly"}  # fmt: skip


def sync(engine: Engine, folder: Path) -> None:
    outcome = sync_folder(engine, folder, zone="Europe/Zurich", reminders=["14d", "7d", "1d"], now=datetime.now(UTC))
    assert outcome.ok, outcome.problems


@contextmanager
def serving(
    engine: Engine,
    check_interval: float,
    locales: Path | None = None,
    settings: Settings | None = None,
    now: datetime = NOW,
) -> Iterator[tuple[httpx.Client, FeedFastPath]]:
    calendars = Calendars(
        engine,
        base_url="https://tracker.example.org",
        cancelled_grace=timedelta(days=30),
        clock=lambda: now,
        check_interval=check_interval,
        secret=SECRET,
        locales=locales,
    )
    app = create_app(engine, calendars, settings=settings)
    assert isinstance(app, FeedFastPath)
    with running(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http, app


@contextmanager
def running(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def subscribe(engine: Engine, email: str, *, confirmed: bool = True, **fields: object) -> tuple[int, str]:
    """Save a subscriber; return its id and personal feed token."""
    raw = {"email": email, **{k: str(v) for k, v in fields.items()}}
    with transaction(engine, write=True) as session:
        data = check_input(raw, zone="Europe/Zurich", known=Known(frozenset(), frozenset()))
        subscriber, _ = save(session, data, confirmed=confirmed, now=NOW)
        assert subscriber.id is not None
        return subscriber.id, make_token(SECRET, "feed", subscriber.id, subscriber.feed_version)


def stored(engine: Engine, email: str) -> Subscriber | None:
    with transaction(engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.email_key == email.lower())).first()
