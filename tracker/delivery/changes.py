"""The lines of a `changed` message: what one change set did to each milestone, and how later ones fold in.

Pure: notices turn events into lines and keep them on the outbox row; compose reads them back.
A member gets one message per change set, one line per milestone of theirs; a milestone
changed again before its line went out updates that line, from what the member last heard
to what holds now, and a line that ends where it started is dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

Change = Literal["moved", "cancelled", "removed", "restored"]
OFF: tuple[Change, ...] = ("cancelled", "removed")  # after these, the milestone is no longer on the calendar
CHANGES: tuple[Change, ...] = ("moved", "cancelled", "removed", "restored")


@dataclass(frozen=True)
class Line:
    """One milestone in a changed message: moved (old → new), cancelled or removed (old), restored (new)."""

    timeline_id: str
    key: str
    change: Change
    old_at: datetime | None
    new_at: datetime | None
    revision: int | None = None  # the milestone's revision the line tells of

    @property
    def at(self) -> datetime:
        """The date the line is listed by: the new one, or the one given up."""
        at = self.old_at if self.change in OFF else self.new_at
        assert at is not None
        return at

    @property
    def milestone(self) -> tuple[str, str]:
        return (self.timeline_id, self.key)

    def to_json(self) -> list[Any]:
        return [self.timeline_id, self.key, self.change, iso(self.old_at), iso(self.new_at), self.revision]


def read_line(value: list[Any]) -> Line:
    """Return the line stored as *value* (Line.to_json); ValueError if it does not read."""
    timeline_id, key, change, old_at, new_at, revision = value
    if change not in CHANGES:
        raise ValueError(f"unknown change {change!r}")
    line = Line(str(timeline_id), str(key), change, instant(old_at), instant(new_at), revision)
    _ = line.at  # a line without the date it is listed by does not read
    return line


def stored_lines(
    lines: list[Any] | str | None, timeline_id: str, key: str, old_at: datetime | None, new_at: datetime | None
) -> list[Line]:
    """The lines of a stored changed row (as JSON values, or the column's text as a claim reads it);
    a row planned before change sets tells of its one milestone's move."""
    if lines == "null":  # JSON null, as a claim reads it: a row from before change sets
        lines = None
    if isinstance(lines, str):
        return list(read_text(lines))
    if lines is not None:
        return [read_stored(tuple(value)) for value in lines]
    return [Line(timeline_id, key, "moved", old_at, new_at)]


@lru_cache(maxsize=256)
def read_text(text: str) -> tuple[Line, ...]:
    """The lines of a row as the claim reads them, its column's text: decoded once for every reader of a change set.

    A change set of fifty lines sent to 10,000 members was 10,000 decodings of the same 6 KB of
    JSON in the sending process, and as many lists pickled to the render helper.
    """
    values = json.loads(text)
    if not isinstance(values, list):
        raise ValueError("the lines are not a list")
    return tuple(read_stored(tuple(value)) for value in values)


@lru_cache(maxsize=4096)
def read_stored(value: tuple[Any, ...]) -> Line:
    """read_line, once for each line: a change set's lines repeat in the messages of all its readers."""
    return read_line(list(value))


def fold(earlier: Line, later: Line) -> tuple[Line | None, str]:
    """Return the line that tells both changes at once, from what the member last heard; None and why if none does."""
    was_on = earlier.change != "restored"  # before the earlier change, the member knew it on the calendar
    if later.change in OFF:
        if not was_on:
            return None, f"{later.change} again"
        return replace(later, old_at=earlier.old_at), ""
    assert later.new_at is not None
    if not was_on:
        return replace(later, change="restored", old_at=earlier.old_at), ""
    if later.new_at == earlier.old_at:
        both_moves = earlier.change == later.change == "moved"
        return None, "moved back to its earlier date" if both_moves else "back as it was"
    return Line(later.timeline_id, later.key, "moved", earlier.old_at, later.new_at, later.revision), ""


def in_date_order(lines: list[Line]) -> list[Line]:
    return sorted(lines, key=lambda line: (line.at, line.timeline_id, line.key))


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def instant(text: object) -> datetime | None:
    if text is None:
        return None
    at = datetime.fromisoformat(str(text))
    if at.tzinfo is None:
        raise ValueError(f"{text!r} has no offset")
    return at
