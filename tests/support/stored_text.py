"""Every value the store holds, as text: to find what an erasure must have taken out."""

from __future__ import annotations

import json
from collections.abc import Iterator

from sqlalchemy import Engine, select
from sqlmodel import SQLModel


def every_text(engine: Engine) -> Iterator[tuple[str, str, str]]:
    """(table, column, value) for every value of every column of every table, as text."""
    with engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            for row in connection.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is not None:
                        shown = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
                        yield table.name, column, shown


def traces(engine: Engine, *needles: str) -> list[tuple[str, str, str]]:
    """Where any of *needles* (any case) is still stored."""
    lowered = [n.lower() for n in needles]
    return [found for found in every_text(engine) if any(n in found[2].lower() for n in lowered)]
