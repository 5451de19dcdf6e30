"""Open the store: engine, schema migrations (Alembic), sessions."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Engine, Table, create_engine, event, insert, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from tracker.models import CompletionRecord, Milestone, Timeline
from tracker.planning import CompletionView, MilestoneView

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)
_LOCK_KEY = 0x7472_6163_6B65  # "tracke": one advisory lock shared by every instance


def make_engine(url: str) -> Engine:
    """Create an engine; for SQLite make the folder and turn on WAL and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:" and not parsed.query.get("uri"):
        make_private(Path(parsed.database))
    engine = create_engine(url, connect_args={"timeout": 30})
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def make_private(database: Path) -> None:
    """Make the database's folder (0700) and file (0600) before SQLite opens it.

    The store holds every subscriber's address and the delivery log. SQLite creates its -wal and
    -shm files with the database file's mode, so a file made here with 0600 keeps all three
    private; under the usual umask SQLite would make them readable by every local user.
    """
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
    for path in (database, database.with_name(f"{database.name}-wal"), database.with_name(f"{database.name}-shm")):
        try:
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(0o600)  # made by an earlier version, or by hand
        except OSError as exc:
            log.warning("cannot make %s private (mode 0600): %s", path, exc)


def _sqlite_begin(connection: Any) -> None:
    # pysqlite defers BEGIN until the first write, so a read-then-write transaction
    # can fail to upgrade its lock; writers take the write lock up front instead.
    immediate = connection.get_execution_options().get("write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun by _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL syncs at checkpoints, not at every commit: a commit survives a crash of
    # the process (what the outbox guards against); only a power cut can undo the last ones,
    # and then a resent reminder carries the same Message-ID.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # The default 2 MB page cache spills a large sync's dirty pages to the WAL before it
    # commits (and writes some of them again); a cache that holds them costs only what is used.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


# The newest revision in migrations/versions, as Alembic reads it (a test keeps the two equal):
# a store already there opens without importing Alembic, a tenth of a second at every command.
HEAD_REVISION = "0005"


def head_revision() -> str:
    """The newest schema revision this code knows."""
    return HEAD_REVISION


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision; safe when several processes start at once."""
    if stored_revision(engine) == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    logging.getLogger("alembic").setLevel(logging.WARNING)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _migration_lock(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()


def stored_revision(engine: Engine) -> str | None:
    """The store's schema revision; None for a new store."""
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except DBAPIError:  # no such table yet
        return None


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Any]:
    """Serialise migrations: a PostgreSQL advisory lock, or a lock file beside the SQLite file."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
            connection.commit()
            try:
                yield connection
            finally:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        with engine.connect() as connection:
            yield connection
        return
    from filelock import FileLock

    with FileLock(f"{database}.migrate.lock", timeout=120), engine.connect() as connection:
        yield connection


def open_store(url: str) -> Engine:
    """Return an engine for *url* whose schema is current."""
    engine = make_engine(url)
    migrate(engine)
    return engine


@contextmanager
def transaction(engine: Engine, *, write: bool = False, exclusive: bool = True) -> Iterator[Session]:
    """One session, one transaction: committed on success, rolled back on any error.

    A writing transaction is serialised against other writers (BEGIN IMMEDIATE on
    SQLite, an advisory transaction lock on PostgreSQL), so two instances syncing
    at once apply one after the other instead of colliding. Outbox work passes
    exclusive=False on PostgreSQL: its row locks (SKIP LOCKED) let instances claim
    and record side by side.
    """
    bind = engine.execution_options(write=True) if write else engine
    with Session(bind, expire_on_commit=False) as session, session.begin():
        if write and exclusive and engine.dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY + 1})
        yield session


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows in the session's transaction: COPY on PostgreSQL, executemany elsewhere.

    A cold sync inserts tens of thousands of rows; COPY takes them in one stream where an
    executemany spends most of its time preparing each row's parameters.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect
    if dialect.name == "sqlite":
        insert_rows_sqlite(session, table, rows, dialect)
        return
    if dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    copy_rows(session, table, rows)


def copy_rows(session: Session, table: Table, rows: list[dict[str, Any]], into: str | None = None) -> None:
    """PostgreSQL: COPY *rows* (dicts with the same keys) into *table*, or into the table named *into*."""
    from psycopg.types.json import Json

    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    names = ", ".join(f'"{name}"' for name in columns)
    driver = session.connection().connection.driver_connection
    assert driver is not None  # a live connection inside the session's transaction
    with driver.cursor() as cursor, cursor.copy(f'COPY "{into or table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([Json(row[c]) if c in json_columns and row[c] is not None else row[c] for c in columns])


def insert_rows_sqlite(session: Session, table: Table, rows: list[dict[str, Any]], dialect: Dialect) -> None:
    """executemany on the driver, each column's own bind processor applied once per distinct value.

    Values go through the same conversions SQLAlchemy would apply; what is skipped is its
    per-row parameter bookkeeping, which was most of the time of a large insert.
    """
    columns = list(rows[0])
    # Only the columns whose type converts (dates, JSON) pay a call per value; the rest are
    # picked by one C-level itemgetter per row. A cold sync repeats the same few values
    # (its own clock, the same reminder lists), so each distinct value is converted once.
    converters: list[tuple[int, Callable[[Any], Any], dict[Any, Any]]] = [
        (i, p, {}) for i, name in enumerate(columns) if (p := table.c[name].type.bind_processor(dialect))
    ]
    pick = itemgetter(*columns)
    names = ", ".join(f'"{name}"' for name in columns)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(columns))})'
    values = []
    for row in rows:
        value = list(pick(row)) if len(columns) > 1 else [row[columns[0]]]
        for index, convert, cache in converters:
            key = memo_key(value[index])
            if key is None:
                value[index] = convert(value[index])
                continue
            found = cache.get(key, _MISSING)
            if found is _MISSING:
                found = cache[key] = convert(value[index])
            value[index] = found
        values.append(tuple(value))
    session.connection().exec_driver_sql(sql, values)


# Types whose equal values always convert alike (unlike 0.0 and -0.0, or 1 and True in a list).
_SAME_WHEN_EQUAL = frozenset({type(None), bool, int, str, date, datetime})
_ONLY_TEXT = frozenset({str})
_MISSING = object()


def memo_key(value: Any) -> tuple[type, Any] | None:
    """Return a key under which *value* converts like every equal one, or None when unsafe."""
    kind = value.__class__
    if kind in _SAME_WHEN_EQUAL:
        return (kind, value)
    if kind is list and set(map(type, value)) <= _ONLY_TEXT:
        return (kind, tuple(value))
    return None


def load_views(session: Session) -> list[MilestoneView]:
    """Read every stored milestone with its timeline and completions, for planning."""
    timelines = {t.id: t for t in session.exec(select(Timeline))}
    done: dict[tuple[str, str], dict[str, CompletionView]] = {}
    for c in session.exec(select(CompletionRecord)):
        done.setdefault((c.timeline_id, c.milestone_key), {})[c.occurrence] = CompletionView(c.done_at, c.note, c.link)
    views = []
    for m in session.exec(select(Milestone).order_by(Milestone.timeline_id, Milestone.position)):  # type: ignore[arg-type]
        timeline = timelines[m.timeline_id]
        views.append(
            MilestoneView(
                timeline_id=m.timeline_id,
                timeline_title=timeline.title,
                key=m.key,
                title=m.title,
                kind=m.kind,
                all_day=m.all_day,
                zone=m.zone,
                owner=m.owner,
                due_at=m.due_at,
                starts_at=m.starts_at,
                ends_at=m.ends_at,
                repeat=m.repeat,
                status=m.status,
                audiences=tuple(timeline.audiences or ()),
                location=m.location,
                reminders=tuple(m.reminders or ()),
                completions=done.get((m.timeline_id, m.key), {}),
                summary=m.summary,
                url=m.url,
                revision=m.revision,
                updated_at=m.updated_at,
                timeline_kind=timeline.kind,
                timeline_summary=timeline.summary,
                timeline_source=timeline.source,
                timeline_url=timeline.url,
                opens_after=m.opens_after,
                titles=m.titles or {},
                timeline_titles=timeline.titles or {},
                due_expr=m.due_expr,
            )
        )
    return views
