"""Shared fixtures: a fresh store per test (SQLite, or PostgreSQL when asked) and timeline files."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.support import factories
from tests.support.database import PG_URL, empty_database
from tests.support.emails import LOCALES, SENDER, TEMPLATES
from tests.support.smtp_server import SMTPTestServer, forbid_remote_smtp
from tests.support.timelines import WriteTimeline
from tests.support.web import serving, sync
from tracker.emails import Renderer
from tracker.store.engine import open_store

# headless Chromium (browser, visit, live_site, public_site); the subscription pages served (clock, make_client, http)
pytest_plugins = ["tests.support.browser", "tests.support.preferences"]

# Fixtures that hand a test a store from empty_database(): with them it meets PostgreSQL when asked.
STORE_FIXTURES = frozenset({"database_url", "public_site"})


def reaches_the_store(item: pytest.Item) -> bool:
    """Whether *item* runs against the store the run was given (the `store` marker names those without a fixture)."""
    return bool(STORE_FIXTURES & set(getattr(item, "fixturenames", ()))) or item.get_closest_marker("store") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, run only the tests that reach a store: the rest would run exactly as on SQLite, a second time."""
    if not PG_URL:
        return
    kept: list[pytest.Item] = []
    left: list[pytest.Item] = []
    for item in items:
        (kept if reaches_the_store(item) else left).append(item)
    config.hook.pytest_deselected(items=left)
    items[:] = kept


@pytest.fixture(autouse=True)
def remote_smtp_attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every test fails loudly if anything in it tries to reach an SMTP server off this machine."""
    attempts = forbid_remote_smtp(monkeypatch)
    yield attempts
    assert not attempts, f"a test tried to reach a remote SMTP server: {attempts}"


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


@pytest.fixture
def write_timeline(schedules: Path) -> WriteTimeline:
    """Write a dedented YAML text as schedules/NAME.yaml and return its path."""

    def write(name: str, body: str) -> Path:
        path = schedules / f"{name}.yaml"
        path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
        return path

    return write


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty `schedules/` folder, named relatively as the secretariat would type it."""
    monkeypatch.chdir(tmp_path)
    Path("schedules").mkdir()
    return Path("schedules")


@pytest.fixture
def env(database_url: str, schedules: Path) -> dict[str, str]:
    """The environment of a `tracker` command: this store and folder, none of the caller's TRACKER_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    return {**clean, "TRACKER_DATABASE_URL": database_url, "TRACKER_SCHEDULES": str(schedules), "COLUMNS": "200"}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    """The email renderer on the repository's templates and catalogues, one per test module."""
    return Renderer(TEMPLATES, LOCALES, SENDER)


@pytest.fixture
def pages_client(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Iterator[httpx.Client]:
    """A real server for the pages, on a store with a meeting and a drafting timeline (markup in its title)."""
    write_timeline("cwg-wsis-32", factories.MEETING)
    write_timeline(
        "hlpf-2017", factories.DRAFTING.replace("title: ITU Council", "title: <script>alert(1)</script> ITU Council")
    )
    sync(engine, schedules)
    with serving(engine, 0) as (http, _):
        yield http
