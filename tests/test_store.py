"""The store brings itself to the current schema, also when several instances start at once."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlmodel import select

from tracker.store.bulk import insert_rows
from tracker.store.engine import open_store, transaction
from tracker.store.models import Event, Timeline

START = "from tracker.store.engine import open_store; open_store({url!r}).dispose()"


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


def timeline_row(id_: str, **values: object) -> dict[str, object]:
    row: dict[str, object] = {"id": id_, "title": id_.upper(), "timezone": "UTC", "kind": "other"}
    return row | {"summary": "", "source": "", "url": "", "path": ""} | values


def test_bulk_inserted_rows_read_back_as_written_when_values_repeat(database_url: str) -> None:
    engine = open_store(database_url)
    noon = datetime(2017, 4, 28, 10, 0, tzinfo=UTC)
    geneva_noon = noon.astimezone(timezone(timedelta(hours=2)))  # equal to noon: converted alike
    rows = [
        timeline_row("a", reminders=["7d", "1d"], updated_at=noon),
        timeline_row("b", reminders=["7d", "1d"], updated_at=noon),
        timeline_row("c", reminders=[], updated_at=geneva_noon),
        timeline_row("d", reminders=None, updated_at=None),
    ]
    with transaction(engine, write=True) as session:
        insert_rows(session, Timeline.__table__, rows)  # type: ignore[attr-defined]

    with transaction(engine) as session:
        stored = {t.id: (t.reminders, t.updated_at) for t in session.exec(select(Timeline))}

    assert stored == {"a": (["7d", "1d"], noon), "b": (["7d", "1d"], noon), "c": ([], noon), "d": (None, None)}


def test_bulk_insert_refuses_a_naive_datetime_after_an_equal_aware_one(database_url: str) -> None:
    engine = open_store(database_url)
    if engine.dialect.name != "sqlite":
        pytest.skip("COPY on PostgreSQL takes values as they are; the SQLite path converts each one")
    aware = datetime(2017, 4, 28, 10, 0, tzinfo=UTC)
    rows = [timeline_row("a", updated_at=aware), timeline_row("b", updated_at=aware.replace(tzinfo=None))]

    with pytest.raises(Exception, match="naive"), transaction(engine, write=True) as session:
        insert_rows(session, Timeline.__table__, rows)  # type: ignore[attr-defined]


def test_the_head_revision_the_store_checks_is_the_newest_migration() -> None:
    # A store at HEAD_REVISION opens without running Alembic: a new migration must move it.
    from alembic.script import ScriptDirectory

    from tracker.store.engine import HEAD_REVISION, MIGRATIONS

    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == HEAD_REVISION


def test_a_store_one_revision_behind_is_brought_up_to_date(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from tracker.store.engine import HEAD_REVISION, MIGRATIONS, stored_revision

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = open_store(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0010")  # before the actors (0011), API tokens (0012) and erasures (0013)
        connection.commit()
    assert stored_revision(engine) not in (None, HEAD_REVISION)
    assert "api_tokens" not in inspect(engine).get_table_names()
    assert "actor" not in {column["name"] for column in inspect(engine).get_columns("events")}
    with engine.begin() as connection:  # the log as an older version wrote it
        connection.exec_driver_sql(
            "INSERT INTO events (at, kind, timeline_id, milestone_key, detail, change_set) VALUES "
            "('2017-02-01 10:00:00.000000', 'added', 'hlpf', 'draft', '{}', 'a'),"
            "('2017-02-20 10:00:00.000000', 'completed', 'hlpf', 'draft', '{\"who\": \"cli:alice\"}', 'b'),"
            "('2017-02-20 10:00:00.000000', 'rescheduled', 'hlpf', 'comments', '{}', 'b'),"
            "('2017-02-21 10:00:00.000000', 'delivery_failed', 'hlpf', 'draft', '{}', NULL),"
            "('2017-02-21 10:00:00.000000', 'subscriber_added', '', NULL, '{}', NULL),"
            "('2017-02-22 10:00:00.000000', 'subscriber_suspended', '', NULL, '{\"by\": \"sec@un.example.org\"}',"
            " NULL),"
            "('2017-02-22 10:00:00.000000', 'outbox_held', 'hlpf', 'draft', '{\"by\": \"sec@un.example.org\"}', NULL)"
        )
    engine.dispose()

    engine = open_store(url)
    assert stored_revision(engine) == HEAD_REVISION
    with engine.connect() as connection:
        actors = connection.exec_driver_sql("SELECT kind, actor FROM events ORDER BY id").all()
    assert [tuple(row) for row in actors] == [
        ("added", "sync"), ("completed", "cli:alice"), ("rescheduled", "cli:alice"), ("delivery_failed", "mailer"),
        ("subscriber_added", ""), ("subscriber_suspended", "console:sec@un.example.org"),
        ("outbox_held", "console:sec@un.example.org"),
    ]  # fmt: skip
    tables = set(inspect(engine).get_table_names())
    assert {"users", "sign_in_links", "console_sessions", "erasures", "api_tokens"} <= tables
    assert "calendar" in {column["name"] for column in inspect(engine).get_columns("timelines")}
    assert {"roll", "rolled_from"} <= {c["name"] for c in inspect(engine).get_columns("milestones")}
    assert "revision" in {column["name"] for column in inspect(engine).get_columns("deliveries")}
    assert "overdue" in {c["name"] for c in inspect(engine).get_columns("milestones")}
    assert "change_set" in {c["name"] for c in inspect(engine).get_columns("events")}
