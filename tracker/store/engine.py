"""Open the store: engine, schema migrations (Alembic), sessions."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

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
# a store already there opens without importing Alembic, which every command would pay for.
HEAD_REVISION = "0016"


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
