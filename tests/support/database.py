"""An empty database for a test: a SQLite file, or a fresh PostgreSQL schema when TRACKER_TEST_DATABASE_URL is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

PG_URL = os.environ.get("TRACKER_TEST_DATABASE_URL", "")


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
