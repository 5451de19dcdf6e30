"""The store brings itself to the current schema, also when several instances start at once."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import inspect, text
from sqlmodel import select

from tracker.models import Event
from tracker.store import open_store, transaction

START = "from tracker.store import open_store; open_store({url!r}).dispose()"


def test_opening_a_new_store_creates_every_table_and_is_idempotent(database_url: str) -> None:
    open_store(database_url).dispose()
    engine = open_store(database_url)

    tables = set(inspect(engine).get_table_names())

    assert {"timelines", "milestones", "completions", "events", "alembic_version"} <= tables
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_four_instances_starting_at_once_all_migrate_without_error(database_url: str) -> None:
    processes = [
        subprocess.Popen([sys.executable, "-c", START.format(url=database_url)], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]

    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in processes]

    assert [code for code, _ in results] == [0, 0, 0, 0], results
    engine = open_store(database_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_datetimes_come_back_aware_and_in_utc(database_url: str) -> None:
    engine = open_store(database_url)
    geneva_noon = datetime(2017, 4, 28, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with transaction(engine, write=True) as session:
        session.add(Event(at=geneva_noon, kind="added", timeline_id="t", milestone_key="m"))

    with transaction(engine) as session:
        stored = session.exec(select(Event)).one()

    assert stored is not None
    assert stored.at == datetime(2017, 4, 28, 10, 0, tzinfo=UTC)
    assert stored.at.tzinfo is UTC


def test_the_migrations_build_exactly_the_tables_the_models_describe(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    engine = open_store(database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)

    # Column types are compared loosely: UTCDateTime is stored as the dialect's own type.
    structural = [d for d in differences if not (isinstance(d, list) and d[0][0] == "modify_type")]
    assert structural == []
