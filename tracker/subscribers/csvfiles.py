"""Subscriber CSV files, read and written as streams: a chunk of rows at a time, never the whole file.

Reading is by header: `email` and any of the other columns, in any order (`timezone` included);
a column the file does not have leaves that choice as stored. A file whose first row is not a
header is read in the original fixed order (email, name, language, audiences, timelines).

Writing neutralises what a spreadsheet would run: a cell starting with =, +, -, @, a tab or a
carriage return gets a leading apostrophe (the OWASP advice for CSV injection). Reading takes
that apostrophe off again, so an export imports back as it was.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol, TextIO

from tracker.subscribers.registry import (
    CHOICES,
    Known,
    SubscriberError,
    SubscriberInput,
    check_input,
)
from tracker.timelines.dates import suggest
from tracker.timelines.files import FileProblem

FIXED = ("email", "name", "language", "audiences", "timelines")  # a file without a header
MAX_CSV_LINE = 4096  # eight fields of addresses, a name and lists of ids: a longer line is not a subscriber
EXPORTED = ("email", *CHOICES, "state", "created_at", "confirmed_at")
IGNORED = frozenset({"state", "created_at", "confirmed_at", "changed_at"})  # an export's, not choices
CHUNK = 1000  # rows checked and saved together: one transaction each, memory bounded by it
FORMULA = ("=", "+", "-", "@", "\t", "\r")


class Lines(Protocol):
    """What the reader needs of a file opened as text."""

    def readline(self, size: int = -1, /) -> str: ...
    def seekable(self) -> bool: ...
    def tell(self) -> int: ...


@dataclass
class Chunk:
    """Good rows (with their lines) and the problems of one stretch of the file."""

    rows: list[tuple[int, SubscriberInput]] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    read: int = 0  # characters of the file read so far, for progress


def read_lines(stream: Lines, path: str) -> Iterator[tuple[int, list[str] | FileProblem]]:
    """Yield each line's fields with its number, or the problem that line has.

    One row per line: no field of ours may hold a line break, so a quote left open is an error
    of its own line, not a field that swallows the rows after it (and is reported where it ends).
    A line is read at most MAX_CSV_LINE characters at a time: a file of one endless line is not
    read into memory.
    """
    line = 0
    while chunk := stream.readline(MAX_CSV_LINE + 1):
        line += 1
        if len(chunk) > MAX_CSV_LINE and not chunk.endswith("\n"):
            length = len(chunk) + skip_rest(stream)
            yield line, FileProblem(path, line, f"the line is {length:,} characters long; at most {MAX_CSV_LINE:,}")
            continue
        try:
            yield line, next(csv.reader([chunk], strict=True), [])
        except csv.Error as exc:
            advice = 'a field with a comma or a quote goes in quotes, a quote inside it doubled: "Smith, ""Bob"""'
            yield line, FileProblem(path, line, f"{csv_problem(exc)} ({advice})")


def skip_rest(stream: Lines) -> int:
    """Read past the rest of an over-long line; return how many characters it had."""
    skipped = 0
    while part := stream.readline(MAX_CSV_LINE):
        skipped += len(part)
        if part.endswith("\n"):
            break
    return skipped


def csv_problem(exc: csv.Error) -> str:
    text = str(exc)
    if "unexpected end of data" in text or "newline inside string" in text:
        return "a quote opens a field that is not closed on this line"
    return f"this line is not valid CSV: {text}"


def header_of(values: list[str], path: str, line: int) -> tuple[str | None, ...] | FileProblem:
    """The field each column holds (None: a column of an export that is no choice), or the problem with it."""
    names = [value.strip().lower() for value in values]
    known = {"email", *CHOICES}
    for name in names:
        if name not in known and name not in IGNORED:
            hint = suggest(name, known) or " (columns: " + ", ".join(("email", *CHOICES)) + ")"
            return FileProblem(path, line, f"unknown column {name!r}{hint}")
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        return FileProblem(path, line, f"the column {doubled[0]!r} is there twice; keep one")
    if "email" not in names:
        return FileProblem(path, line, "the header has no 'email' column; every row needs an address")
    return tuple(None if name in IGNORED else name for name in names)


def is_header(values: list[str]) -> bool:
    """A first row that starts with a column's name is a header; one that starts with anything else is a row."""
    return bool(values) and values[0].strip().lower() in {"email", *CHOICES, *IGNORED}


def unquoted(value: str) -> str:
    """A cell as the export wrote it, less the apostrophe put before a formula character or an apostrophe."""
    return value[1:] if value.startswith("'") and value[1:2] in (*FORMULA, "'") else value


def row_input(values: list[str], columns: tuple[str | None, ...], *, zone: str, known: Known) -> SubscriberInput:
    raw: dict[str, object] = {}
    for name, value in zip(columns, values, strict=False):
        if name is not None:
            raw[name] = unquoted(value)
    data = check_input(raw, zone=zone, known=known)
    carried = {name for name in columns if name is not None}
    return replace(data, keep=frozenset(CHOICES) - carried)


class Seen:
    """The lines of the addresses read so far, to name a repeated one; 8 bytes and a line number per address.

    The one thing an import keeps for the whole file: about 100 bytes per row (10 MB for 100,000).
    """

    def __init__(self) -> None:
        self.lines: dict[int, int] = {}

    def first(self, key: str, line: int) -> int | None:
        digest = hash(key)  # a collision only misnames a line as a repeat; with 64 bits it does not happen
        earlier = self.lines.setdefault(digest, line)
        return None if earlier == line else earlier


def read_chunks(stream: Lines, path: str, *, zone: str, known: Known, size: int = CHUNK) -> Iterator[Chunk]:
    """Check the file a chunk at a time; a bad header stops at line 1, a bad row is a problem at its line."""
    chunk, seen = Chunk(), Seen()
    columns: tuple[str | None, ...] = FIXED
    for line, values in read_lines(stream, path):
        if isinstance(values, FileProblem):
            chunk.problems.append(values)
            continue
        if not any(value.strip() for value in values):
            continue
        if line == 1 and is_header(values):
            header = header_of(values, path, line)
            if isinstance(header, FileProblem):
                yield Chunk(problems=[*chunk.problems, header])
                return
            columns = header
            continue
        if columns is not FIXED and len(values) < len(columns):
            fields = f"the row has {len(values)} of the header's {len(columns)} fields"
            message = f"{fields}; an empty field still takes its ',' (a shorter row would empty the rest)"
            chunk.problems.append(FileProblem(path, line, message))
            continue
        check_row(chunk, seen, line, values, path, columns, zone=zone, known=known)
        if len(chunk.rows) >= size:
            chunk.read = stream.tell() if stream.seekable() else 0
            yield chunk
            chunk = Chunk()
    yield chunk


def check_row(chunk: Chunk, seen: Seen, line: int, values: list[str], path: str, columns: tuple[str | None, ...], *,
              zone: str, known: Known) -> None:  # fmt: skip
    try:
        data = row_input(values, columns, zone=zone, known=known)
    except SubscriberError as exc:
        chunk.problems.append(FileProblem(path, line, str(exc)))
        return
    earlier = seen.first(data.key, line)
    if earlier is not None:
        chunk.problems.append(FileProblem(path, line, f"{data.email} is already on line {earlier}"))
        return
    chunk.rows.append((line, data))


def parse_csv(
    text: str, path: str, *, zone: str, known: Known
) -> tuple[list[tuple[int, SubscriberInput]], list[FileProblem]]:
    """Read a whole (small) CSV text: good rows with their lines, and problems."""
    rows: list[tuple[int, SubscriberInput]] = []
    problems: list[FileProblem] = []
    for chunk in read_chunks(io.StringIO(text), path, zone=zone, known=known):
        rows += chunk.rows
        problems += chunk.problems
    return rows, problems


def neutral(value: object) -> str:
    """A cell a spreadsheet shows as text: a leading formula character gets an apostrophe."""
    if isinstance(value, datetime):
        value = value.isoformat(timespec="seconds")
    text = "" if value is None else ";".join(value) if isinstance(value, list | tuple) else str(value)
    # A text that starts with an apostrophe gets one more, which `unquoted` takes off: it keeps its own.
    return "'" + text if text.startswith((*FORMULA, "'")) else text


def write_rows(out: TextIO, rows: Iterable[Mapping[str, object]]) -> int:
    """Write the header and *rows* (mappings by EXPORTED column); return how many rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORTED)
    count = 0
    for row in rows:
        # No reminders at all is written `none`: an empty cell reads back as "the milestones' own".
        writer.writerow([neutral("none" if name == "reminders" and row.get(name) == [] else row.get(name))
                         for name in EXPORTED])  # fmt: skip
        count += 1
    return count
