"""How dates, changes and upcoming items look in a terminal and in `--json`."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from rich.text import Text

from tracker.text import BIDI_CONTROLS
from tracker.timelines.dates import get_zone

if TYPE_CHECKING:  # the consoles print through this module on every command: it loads only what all need
    from babel import Locale
    from rich.table import Table

    from tracker.timelines.diff import Change
    from tracker.timelines.states import Process
    from tracker.timelines.views import Occurrence

# Line and paragraph separators end a line in some terminals; bidi overrides and isolates
# reorder what follows them, so a file name or title could show as something it is not.
_INVISIBLE = ("\u2028", "\u2029", *sorted(BIDI_CONTROLS))


def _escapes() -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in range(0x100) if unicodedata.category(chr(code)) == "Cc"}
    del table[ord("\n")]  # rich's own line breaks travel as text
    table[ord("\t")] = " "
    return table | {ord(char): f"\\u{ord(char):04x}" for char in _INVISIBLE}


_ESCAPES = _escapes()


def printable(text: str) -> str:
    """Return *text* with control characters shown as escapes (`\\x1b`) rather than sent to the terminal."""
    return text.translate(_ESCAPES)


_SYMBOLS = {
    "added": ("+", "green"),
    "rescheduled": ("~", "yellow"),
    "cancelled": ("✗", "red"),
    "restored": ("↺", "green"),
    "updated": ("•", "cyan"),
    "removed": ("-", "red"),
    "completed": ("✓", "green"),
    "amended": ("✎", "cyan"),
    "reopened": ("↺", "yellow"),
}


# The terminal's words are English, so are its dates: CLDR's British English, as the emails' "en" (i18n/languages.py).
CLI_LOCALE = "en_GB"


@lru_cache(maxsize=8)
def cldr_locale(name: str) -> Locale:
    from babel import Locale  # here: commands that print no date start without Babel's data

    return Locale.parse(name)


def format_at(at: datetime | None, zone: str, all_day: bool, locale: str = CLI_LOCALE) -> str:
    """'Fri, 10 Mar 2017' for all-day items, 'Fri, 28 Apr 2017, 12:00 CEST' for timed ones, as CLDR
    writes them in *locale* ('ven. 10 mars 2017', '2017年3月10日周五')."""
    if at is None:
        return "—"
    local = at.astimezone(get_zone(zone))
    day = day_words(local.date(), locale)
    if all_day:
        return day
    return f"{clock_words(local.date(), local.time(), locale)} {local.tzname()}"


# A feed of 10,000 items writes a few hundred distinct days and times: each is worded once (Babel takes ~20 µs).
@lru_cache(maxsize=4096)
def day_words(day: date, locale: str) -> str:
    from babel.dates import format_skeleton

    return format_skeleton("yMMMEd", day, locale=cldr_locale(locale))


@lru_cache(maxsize=4096)
def clock_words(day: date, clock: time, locale: str) -> str:
    """The day and the wall-clock time joined as the locale joins them: 'Fri, 28 Apr 2017, 12:00'."""
    from babel.dates import format_time

    cldr = cldr_locale(locale)
    return str(cldr.datetime_formats["medium"]).format(format_time(clock, "short", locale=cldr), day_words(day, locale))


def format_distance(at: datetime, now: datetime) -> str:
    """'in 3 days', 'in 5 hours', 'today', '2 days ago'."""
    delta = at - now
    seconds = abs(delta.total_seconds())
    if seconds < 3600:
        amount, unit = max(1, int(seconds // 60)), "minute"
    elif seconds < 86400:
        amount, unit = int(seconds // 3600), "hour"
    else:
        amount, unit = int(seconds // 86400), "day"
    words = f"{amount} {unit}{'s' if amount != 1 else ''}"
    return f"in {words}" if delta >= timedelta(0) else f"{words} ago"


def change_line(c: Change) -> Text:
    symbol, style = _SYMBOLS.get(c.kind, ("?", "white"))
    what = f"{c.timeline_id}/{c.milestone_key}" if c.milestone_key else c.timeline_id
    line = Text(f"  {symbol} ", style=style)
    line.append(f"{c.kind:<11} ", style=style)
    line.append(printable(what), style="bold")
    line.append(f"  {printable(c.title)}")
    if c.kind == "rescheduled":
        line.append(f"  {format_at(c.old_at, c.zone, c.all_day)} → {format_at(c.new_at, c.zone, c.all_day)}")
    elif c.kind in ("added", "restored") and c.new_at:
        line.append(f"  {format_at(c.new_at, c.zone, c.all_day)}")
    elif c.kind in ("completed", "amended") and c.new_at:
        was = f"{format_at(c.old_at, c.zone, c.all_day)} → " if c.kind == "amended" and c.old_at else ""
        line.append(f"  done {was}{format_at(c.new_at, c.zone, c.all_day)}")
        if c.fields:
            line.append(f"  ({'; '.join(c.fields)})", style="dim")
    elif c.kind == "reopened":
        line.append(f"  done {format_at(c.old_at, c.zone, c.all_day)} removed")
    elif c.kind == "updated":
        line.append(f"  ({', '.join(c.fields)})", style="dim")
    if c.rolled_from is not None and (c.kind in ("added", "rescheduled", "restored") or "rolled_from" in c.fields):
        line.append(f"  ({moved_text(c.rolled_from)})", style="dim")
    return line


def moved_text(day: date) -> str:
    """Say why a date is not the one its expression gives: 'moved from Saturday, 23 August 2025, a non-working day'."""
    from babel.dates import format_date

    return f"moved from {format_date(day, 'full', locale=cldr_locale(CLI_LOCALE))}, a non-working day"


def notice_line(kind: str, count: int) -> str:
    if kind == "changed":
        return f"      → listed in the 'changed' message of {count} subscriber{'s' * (count != 1)}"
    return f"      → '{kind}' notice to {count} subscriber{'s' * (count != 1)}"


def messages_lines(messages: list[tuple[int, int]]) -> list[str]:
    """'2 subscribers get one message listing 4 changes': one changed message per subscriber for the whole sync."""
    return [
        f"{n} subscriber{'s get' if n != 1 else ' gets'} one message listing {m} change{'s' * (m != 1)}"
        for n, m in messages
    ]


def summarise(changes: Sequence[Change]) -> str:
    counts: dict[str, int] = {}
    for c in changes:
        counts[c.kind] = counts.get(c.kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "no changes"


def upcoming_table(items: Sequence[Occurrence], process: Process) -> Table:
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for name in ("When", "", "Timeline", "Milestone", "Who acts", "State"):
        table.add_column(name, overflow="fold")
    for item in items:
        m = item.milestone
        when = format_at(item.at, m.zone, m.all_day)
        if item.ends_at is not None and item.starts_at != item.ends_at:
            when += f" → {format_at(item.ends_at, m.zone, m.all_day)}"
        state = STATE_LABELS[process.state(item)]
        cells = (format_distance(item.at, process.now), m.timeline_id, m.title, m.owner or "everyone", state)
        table.add_row(when, *(Text(printable(cell)) for cell in cells))  # Text: a title's [brackets] are not markup
    return table


# The states of timelines/states.py as a terminal shows them (English, as the CLI is).
STATE_LABELS = {
    "late": "LATE",
    "due_today": "due today",
    "open": "open",
    "waiting": "waiting",
    "upcoming": "upcoming",
    "missed": "missed",
    "done": "✓ done",
    "cancelled": "cancelled",
}


def instant(at: datetime | None, zone: str) -> dict[str, str] | None:
    if at is None:
        return None
    return {"local": at.astimezone(get_zone(zone)).isoformat(), "utc": at.astimezone(UTC).isoformat()}


def upcoming_json(items: Sequence[Occurrence], process: Process) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        m, standing = item.milestone, process.standing(item)
        local_day = item.at.astimezone(get_zone(m.zone)).date().isoformat()
        rows.append(
            {
                "timeline": m.timeline_id,
                "timeline_title": m.timeline_title,
                "milestone": m.key,
                "title": m.title,
                "titles": dict(m.titles),  # translations by language code; `title` is the English one
                "timeline_titles": dict(m.timeline_titles),
                "kind": m.kind,
                "owner": m.owner,
                "all_day": m.all_day,
                "date": local_day,
                "timezone": m.zone,
                "occurrence": item.occurrence or None,
                "due": instant(item.due_at, m.zone),
                "starts": instant(item.starts_at, m.zone),
                "ends": instant(item.ends_at, m.zone),
                "state": standing.state,
                "done_at": item.done_at.isoformat() if item.done_at else None,
                "reminders": list(m.reminders),
            }
        )
    return rows


def change_json(c: Change) -> dict[str, Any]:
    return {
        "kind": c.kind,
        "timeline": c.timeline_id,
        "milestone": c.milestone_key,
        "title": c.title,
        "old": instant(c.old_at, c.zone),
        "new": instant(c.new_at, c.zone),
        "fields": list(c.fields),
        "rolled_from": c.rolled_from.isoformat() if c.rolled_from else None,
    }
