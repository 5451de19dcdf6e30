"""Shared fixtures: a fresh store per test (SQLite, or PostgreSQL when asked) and timeline files."""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.support.smtp_server import SMTPTestServer, forbid_remote_smtp
from tracker.store import open_store

pytest_plugins = ["tests.support.browser"]  # headless Chromium fixtures: browser, visit, live_site, public_site

PG_URL = os.environ.get("TRACKER_TEST_DATABASE_URL", "")
NOW = datetime(2017, 2, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def remote_smtp_attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every test fails loudly if anything in it tries to reach an SMTP server off this machine."""
    attempts = forbid_remote_smtp(monkeypatch)
    yield attempts
    assert not attempts, f"a test tried to reach a remote SMTP server: {attempts}"


@contextmanager
def empty_database(folder: Path, prefix: str = "t") -> Iterator[str]:
    """A URL to an empty database: a SQLite file in *folder*, or a fresh PostgreSQL schema dropped after."""
    if not PG_URL:
        yield f"sqlite:///{folder / 'tracker.db'}"
        return
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    with empty_database(tmp_path) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = open_store(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def smtp() -> Iterator[SMTPTestServer]:
    """A real SMTP server on loopback that offers PIPELINING, as most relays do."""
    with SMTPTestServer() as server:
        yield server


@pytest.fixture
def schedules(tmp_path: Path) -> Path:
    folder = tmp_path / "schedules"
    folder.mkdir()
    return folder


WriteTimeline = Callable[[str, str], Path]


@pytest.fixture
def write_timeline(schedules: Path) -> WriteTimeline:
    """Write a dedented YAML text as schedules/NAME.yaml and return its path."""

    def write(name: str, body: str) -> Path:
        path = schedules / f"{name}.yaml"
        path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
        return path

    return write


HLPF = """
    id: hlpf
    title: ITU Council contribution to HLPF-17
    timezone: Europe/Zurich
    kind: drafting
    audiences: [membership, secretariat]
    reminders: [14d, 7d, 1d]
    milestones:
      - id: revised-draft
        title: Revised draft posted
        owner: secretariat
        due: 2017-02-24
      - id: member-comments
        title: Membership comments on the revised draft
        owner: membership
        due: revised-draft.done + 14d
        opens_after: revised-draft
      - id: final-draft
        title: Final draft posted
        owner: secretariat
        due: member-comments + 2w
      - id: submission
        title: Final text submitted to the UN
        owner: secretariat
        due: 2017-04-28 12:00
        reminders: [7d, 2d, 4h]
"""

MEETING = """
    id: cwg-32
    title: 32nd meeting
    timezone: Europe/Zurich
    kind: meeting
    milestones:
      - id: meeting
        title: CWG-WSIS-32, Geneva
        starts: 2018-01-24
        ends: 2018-01-25
      - id: documents
        title: Secretariat documents available
        owner: secretariat
        due: meeting - 30d
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty `schedules/` folder, named relatively as the secretariat would type it."""
    monkeypatch.chdir(tmp_path)
    Path("schedules").mkdir()
    return Path("schedules")
