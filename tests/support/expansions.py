"""The dates of a repeating item as each reader expands it: Tracker, recurring_ical_events, ical.js, libical.

Each returns the same kind of key for an occurrence, so that the lists compare as they are: the
local date for an all-day item (a date floats, it has no instant), the UTC instant otherwise.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
from datetime import UTC, date, datetime, time
from pathlib import Path

import recurring_ical_events  # type: ignore[import-untyped]
from icalendar import Calendar

from tests.support.libical import occurrence_starts
from tracker.timelines.dates import get_zone
from tracker.timelines.views import MilestoneView, expand

Start = date | datetime

# ical.js as Thunderbird runs it: the event's own iterator, the feed's VTIMEZONEs registered.
_ICALJS_SCRIPT = """
import ICAL from 'ical.js';
import { readFileSync } from 'node:fs';
const [ics, until] = [readFileSync(process.argv[2], 'utf8'), process.argv[3]];
const calendar = new ICAL.Component(ICAL.parse(ics));
for (const zone of calendar.getAllSubcomponents('vtimezone')) ICAL.TimezoneService.register(zone);
const out = [];
const iterator = new ICAL.Event(calendar.getFirstSubcomponent('vevent')).iterator();
for (let start = iterator.next(); start && start.toString() < until; start = iterator.next()) {
  out.push(start.isDate ? start.toString() : start.toUnixTime());
}
process.stdout.write(JSON.stringify(out));
"""


def tracker_starts(view: MilestoneView, since: date, until: date) -> list[Start]:
    """Return the occurrences `tracker upcoming`, the planner and the pages work from."""
    zone = get_zone(view.zone)
    window = [datetime.combine(day, time(0), tzinfo=zone) for day in (since, until)]
    found = [item for item in expand(view, *window) if item.at < window[1]]
    return [date.fromisoformat(item.occurrence) if view.all_day else item.at.astimezone(UTC) for item in found]


def library_starts(ics: bytes, since: date, until: date) -> list[Start]:
    """Return the occurrences recurring_ical_events (on icalendar) finds in [since, until)."""
    events = recurring_ical_events.of(Calendar.from_ical(ics)).between(since, until)
    return sorted(_key(event["DTSTART"].dt) for event in events)


def write_icaljs_script(folder: Path) -> None:
    """Put the expansion script next to an ical.js installed by tests.support.alarms.install_icaljs."""
    (folder / "starts.mjs").write_text(_ICALJS_SCRIPT, encoding="utf-8")


def icaljs_starts(folder: Path, ics: bytes, until: date) -> list[Start]:
    """Return the occurrences ical.js (Thunderbird) expands from the first one to before *until*."""
    path = folder / "series.ics"
    path.write_bytes(ics)
    node = ["node", str(folder / "starts.mjs"), str(path), until.isoformat()]
    done = subprocess.run(node, capture_output=True, text=True, timeout=120, check=True)
    found = json.loads(done.stdout)
    return [date.fromisoformat(at) if isinstance(at, str) else datetime.fromtimestamp(at, UTC) for at in found]


def libical_starts(lib: ctypes.CDLL, ics: bytes, since: date, until: date, all_day: bool) -> list[Start]:
    """Return the occurrences libical (Evolution) expands in [since, until)."""
    found = occurrence_starts(lib, ics, since, until)
    return [at.date() if all_day else at for at in found]


def _key(start: Start) -> Start:
    return start.astimezone(UTC) if isinstance(start, datetime) else start
