"""Many rows at once: COPY on PostgreSQL, executemany on the driver for SQLite."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Table, insert
from sqlalchemy.engine import Dialect
from sqlmodel import Session


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
    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    names = ", ".join(f'"{name}"' for name in columns)
    driver = session.connection().connection.driver_connection
    assert driver is not None  # a live connection inside the session's transaction
    texts: dict[int, str] = {}  # by id: a list shared by many rows (a change set's lines) is serialized once
    with driver.cursor() as cursor, cursor.copy(f'COPY "{into or table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([json_of(row[c], texts) if c in json_columns else row[c] for c in columns])


def json_of(value: Any, texts: dict[int, str]) -> str | None:
    """*value* as the JSON text COPY writes into a JSON column, serialized once per object; None as NULL."""
    if value is None:
        return None
    found = texts.get(id(value))
    if found is None:
        found = texts[id(value)] = json.dumps(value)
    return found


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
