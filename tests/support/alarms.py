"""When a calendar fires an alarm: RFC 5545 by hand, recurring_ical_events, and ical.js under node."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import recurring_ical_events  # type: ignore[import-untyped]
from icalendar import Calendar

from tracker.timelines.dates import get_zone

_DURATION = re.compile(r"([+-]?)P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def parse_trigger(text: str) -> tuple[int, timedelta]:
    """Return a TRIGGER's signed nominal days and signed elapsed time, as RFC 5545 3.3.6 splits them."""
    match = _DURATION.fullmatch(text)
    assert match is not None, text
    sign = -1 if match.group(1) == "-" else 1
    weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups()[1:])
    return sign * (7 * weeks + days), sign * timedelta(hours=hours, minutes=minutes, seconds=seconds)


def rfc_instant(start: date | datetime, trigger: str, zone: str) -> datetime:
    """Return when an alarm fires by RFC 5545: nominal days on the local calendar, then elapsed time.

    A date (all-day) start floats: it has no clock changes, so the whole duration is added on
    the clock and the result read in *zone*, the zone the reader's calendar shows.
    """
    days, exact = parse_trigger(trigger)
    if not isinstance(start, datetime):
        naive = datetime.combine(start, time(0)) + timedelta(days=days) + exact
        return naive.replace(tzinfo=get_zone(zone)).astimezone(UTC)
    local = start.astimezone(get_zone(zone))
    shifted = datetime.combine(local.date() + timedelta(days=days), local.time(), tzinfo=get_zone(zone))
    return shifted.astimezone(UTC) + exact


def occurrence_alarms(ics: bytes, zone: str, since: date, until: date) -> dict[date, list[datetime]]:
    """Return, by the local date of each occurrence recurring_ical_events expands, its alarms by RFC 5545.

    The TRIGGERs are read from the bytes of the calendar's one VEVENT: icalendar parses them to a
    timedelta, which forgets where nominal days end and elapsed time begins.
    """
    assert ics.count(b"BEGIN:VEVENT") == 1
    triggers = re.findall(r"^TRIGGER[^:]*:(\S+)\r$", ics.decode(), flags=re.MULTILINE)
    found: dict[date, list[datetime]] = {}
    for event in recurring_ical_events.of(Calendar.from_ical(ics)).between(since, until):
        start = event["DTSTART"].dt
        day = start.astimezone(get_zone(zone)).date() if isinstance(start, datetime) else start
        found[day] = [rfc_instant(start, trigger, zone) for trigger in triggers]
    return found


def library_alarms(ics: bytes, since: date, until: date) -> set[datetime]:
    """Return every alarm instant recurring_ical_events computes itself between *since* and *until* (UTC)."""
    query = recurring_ical_events.of(Calendar.from_ical(ics), components=["VALARM"])
    return {
        alarm["TRIGGER"].dt.astimezone(UTC) for event in query.between(since, until) for alarm in event.walk("VALARM")
    }


# ical.js adds a duration on the wall clock of the start's zone; a date start is made a floating
# midnight first, as Thunderbird does, and printed unzoned for the caller to read in its zone.
_ICALJS_SCRIPT = """
import ICAL from 'ical.js';
import { readFileSync } from 'node:fs';
const [ics, until] = [readFileSync(process.argv[2], 'utf8'), process.argv[3]];
const calendar = new ICAL.Component(ICAL.parse(ics));
for (const zone of calendar.getAllSubcomponents('vtimezone')) ICAL.TimezoneService.register(zone);
const out = [];
for (const vevent of calendar.getAllSubcomponents('vevent')) {
  const event = new ICAL.Event(vevent);
  const triggers = vevent.getAllSubcomponents('valarm').map((a) => a.getFirstPropertyValue('trigger'));
  const iterator = event.iterator();
  for (let start = iterator.next(); start && start.toString() < until; start = iterator.next()) {
    const fired = triggers.map((trigger) => {
      const at = start.clone();
      if (at.isDate) { at.isDate = false; }
      at.addDuration(trigger);
      return at.zone === ICAL.Timezone.localTimezone || at.zone.tzid === 'floating'
        ? { floating: at.toString() } : { utc: at.toUnixTime() };
    });
    out.push({ day: start.toString().slice(0, 10), fired });
  }
}
process.stdout.write(JSON.stringify(out));
"""


def install_icaljs(folder: Path) -> str | None:
    """Install ical.js from npm into *folder*; return why not when node or the package cannot be had."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not installed"
    command = ["npm", "install", "--no-audit", "--no-fund", "--silent", "ical.js@2"]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        return f"npm install ical.js failed: {done.stderr.strip()[-300:]}"
    (folder / "alarms.mjs").write_text(_ICALJS_SCRIPT, encoding="utf-8")
    return None


def icaljs_alarms(folder: Path, ics: bytes, zone: str, until: date) -> dict[date, list[datetime]]:
    """Return, by local date of each occurrence ical.js expands before *until*, when it fires each alarm."""
    path = folder / "calendar.ics"
    path.write_bytes(ics)
    node = ["node", str(folder / "alarms.mjs"), str(path), until.isoformat()]
    done = subprocess.run(node, capture_output=True, text=True, timeout=120, check=True)
    found: dict[date, list[datetime]] = {}
    for row in json.loads(done.stdout):
        found[date.fromisoformat(row["day"])] = [_instant(fired, zone) for fired in row["fired"]]
    return found


def _instant(fired: dict[str, Any], zone: str) -> datetime:
    if "utc" in fired:
        return datetime.fromtimestamp(fired["utc"], UTC)
    return datetime.fromisoformat(fired["floating"]).replace(tzinfo=get_zone(zone)).astimezone(UTC)
