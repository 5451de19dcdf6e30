"""Time zones as people name them, and the local times a zone skips or repeats.

Pure code over the tz database the `tzdata` package ships (`zone.tab`, `iso3166.tab`, the links of
`tzdata.zi`): no clock, no I/O beyond reading those files once.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

# Cities that have no zone of their own but that a secretariat writes, mostly where UN bodies meet.
CITIES = {
    "geneva": "Europe/Zurich", "bern": "Europe/Zurich", "basel": "Europe/Zurich", "lausanne": "Europe/Zurich",
    "washington": "America/New_York", "washington dc": "America/New_York", "boston": "America/New_York",
    "miami": "America/New_York", "atlanta": "America/New_York", "ottawa": "America/Toronto",
    "montreal": "America/Toronto", "san francisco": "America/Los_Angeles", "seattle": "America/Los_Angeles",
    "the hague": "Europe/Amsterdam", "bonn": "Europe/Berlin", "frankfurt": "Europe/Berlin",
    "munich": "Europe/Berlin", "milan": "Europe/Rome", "barcelona": "Europe/Madrid", "strasbourg": "Europe/Paris",
    "new delhi": "Asia/Kolkata", "delhi": "Asia/Kolkata", "mumbai": "Asia/Kolkata", "bangalore": "Asia/Kolkata",
    "calcutta": "Asia/Kolkata", "beijing": "Asia/Shanghai", "rio de janeiro": "America/Sao_Paulo",
    "brasilia": "America/Sao_Paulo", "canberra": "Australia/Sydney", "wellington": "Pacific/Auckland",
    "uk": "Europe/London", "england": "Europe/London", "britain": "Europe/London", "kiev": "Europe/Kyiv",
    "saigon": "Asia/Ho_Chi_Minh", "rangoon": "Asia/Yangon", "bombay": "Asia/Kolkata",
}  # fmt: skip
# Abbreviations are no zones (EST is one offset all year, and IST means India, Ireland or Israel):
# each points at the zone most people who write it mean.
ABBREVIATIONS = {
    "est": "America/New_York", "edt": "America/New_York", "et": "America/New_York",
    "cst": "America/Chicago", "cdt": "America/Chicago", "ct": "America/Chicago",
    "mst": "America/Denver", "mdt": "America/Denver", "mt": "America/Denver",
    "pst": "America/Los_Angeles", "pdt": "America/Los_Angeles", "pt": "America/Los_Angeles",
    "akst": "America/Anchorage", "hst": "Pacific/Honolulu",
    "gmt": "Europe/London", "bst": "Europe/London", "wet": "Europe/Lisbon", "west": "Europe/Lisbon",
    "cet": "Europe/Zurich", "cest": "Europe/Zurich", "met": "Europe/Zurich",
    "eet": "Europe/Athens", "eest": "Europe/Athens", "msk": "Europe/Moscow",
    "ist": "Asia/Kolkata", "pkt": "Asia/Karachi", "jst": "Asia/Tokyo", "kst": "Asia/Seoul",
    "hkt": "Asia/Hong_Kong", "sgt": "Asia/Singapore", "aest": "Australia/Sydney", "aedt": "Australia/Sydney",
    "awst": "Australia/Perth", "nzst": "Pacific/Auckland", "nzdt": "Pacific/Auckland",
    "wat": "Africa/Lagos", "cat": "Africa/Maputo", "eat": "Africa/Nairobi", "sast": "Africa/Johannesburg",
}  # fmt: skip
# Old names of places the tz database now links to another country's zone with the same clocks
# ('Pacific/Truk' → Port Moresby): its `backward` file names the place's own zone in a comment that
# tzdata.zi drops. A browser reporting the old name means that place, listed under its new name.
SAME_PLACE = {
    "Africa/Asmera": "Africa/Asmara", "Africa/Timbuktu": "Africa/Bamako", "America/Coral_Harbour": "America/Atikokan",
    "America/Virgin": "America/St_Thomas", "Antarctica/South_Pole": "Antarctica/McMurdo",
    "Atlantic/Jan_Mayen": "Arctic/Longyearbyen", "Iceland": "Atlantic/Reykjavik", "Pacific/Truk": "Pacific/Chuuk",
    "Pacific/Yap": "Pacific/Chuuk", "Pacific/Ponape": "Pacific/Pohnpei",
}  # fmt: skip
UNIVERSAL = ("UTC", "Etc/UTC")  # no place's zone, but a choice people make on purpose
_MOST_NAMED = 3  # zones named when a country has several


def _read(name: str) -> list[list[str]]:
    text = resources.files("tzdata.zoneinfo").joinpath(name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


@lru_cache(maxsize=1)
def place_zones() -> dict[str, str]:
    """Every zone of a place (zone.tab), with its country's code: what a reader picks from."""
    return {row[2]: row[0] for row in _read("zone.tab")}


@lru_cache(maxsize=1)
def countries() -> dict[str, str]:
    """English country names by ISO 3166 code, as the tz database spells them."""
    return {row[0]: row[1] for row in _read("iso3166.tab")}


@lru_cache(maxsize=1)
def links() -> dict[str, str]:
    """Old and other names of zones ('US/Eastern', 'Navajo', 'Asia/Calcutta') and the zone each names."""
    text = resources.files("tzdata.zoneinfo").joinpath("tzdata.zi").read_text(encoding="utf-8")
    found = {}
    for line in text.splitlines():
        if line.startswith("L "):
            _, target, name = line.split()
            found[name] = target
    return found


def canonical_zone(name: str) -> str:
    """Return the place's zone an old or other name stands for ('US/Eastern' → 'America/New_York'), else *name*."""
    if name in place_zones() or name in UNIVERSAL:
        return name
    target = SAME_PLACE.get(name) if SAME_PLACE.get(name) in place_zones() else links().get(name)
    return target if target is not None and target in place_zones() else name


def zone_meant(name: str) -> str:
    """Return the place's zone *name* is meant as: 'EST' and 'US/Eastern' → 'America/New_York', else *name*.

    An abbreviation is a zone of the tz database too ('EST' is UTC-05:00 all year), but who writes
    it means New York's clock, summer time included.
    """
    if name in place_zones() or name in UNIVERSAL:
        return name
    return ABBREVIATIONS.get(_key(name[:100])) or canonical_zone(name)


@lru_cache(maxsize=1)
def aliases_of() -> dict[str, tuple[str, ...]]:
    """The other names of each place's zone (browsers may report 'Asia/Calcutta' for 'Asia/Kolkata')."""
    found: dict[str, list[str]] = {}
    for name in links():
        # A link between two places' zones ('Pacific/Pohnpei' → 'Pacific/Guadalcanal') keeps both places.
        target = canonical_zone(name)
        if target in place_zones() and name not in place_zones():
            found.setdefault(target, []).append(name)
    return {zone: tuple(sorted(names)) for zone, names in found.items()}


def _key(text: str) -> str:
    """How a name is matched: case, accents and separators aside ('Genève' and 'geneve' are one city)."""
    plain = "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))
    return " ".join(plain.casefold().replace("_", " ").replace("-", " ").replace(".", " ").split())


@lru_cache(maxsize=1)
def _by_words() -> dict[str, tuple[str, ...]]:
    """Zones by what a reader may call them: their city, their country's name and code."""
    found: dict[str, list[str]] = {}
    for zone, country in place_zones().items():
        for word in (zone.rsplit("/", 1)[-1], countries().get(country, ""), country):
            if word:
                found.setdefault(_key(word), []).append(zone)
    for city, zone in CITIES.items():
        found.setdefault(city, []).append(zone)
    return {word: tuple(zones) for word, zones in found.items()}


def zone_hint(name: str) -> str:
    """Return ' (did you mean …?)' naming the zones *name* may stand for, or ''."""
    import difflib  # only when a zone is unknown: `tracker validate` starts without it

    name = name[:100]  # a hostile name of any length stays a quick look-up
    key = _key(name)
    if key in ABBREVIATIONS:
        return f" (an abbreviation is not a zone: did you mean {ABBREVIATIONS[key]!r}?)"
    zones = _by_words().get(key) or _by_words().get(key.rsplit("/", 1)[-1])
    if not zones:
        found = difflib.get_close_matches(key, list(_by_words()), n=1, cutoff=0.75)
        zones = _by_words()[found[0]] if found else ()
    if not zones:
        found = difflib.get_close_matches(name, sorted(place_zones()), n=1, cutoff=0.6)
        return f" (did you mean {found[0]!r}?)" if found else ""
    # Zones people name first, then those most other names point at: New York before Detroit.
    often = {zone: rank for rank, zone in enumerate(dict.fromkeys([*ABBREVIATIONS.values(), *CITIES.values()]))}
    ranked = sorted(zones, key=lambda zone: (often.get(zone, len(often)), -len(aliases_of().get(zone, ()))))
    if len(ranked) == 1:
        return f" (did you mean {ranked[0]!r}?)"
    named = [repr(zone) for zone in ranked[:_MOST_NAMED]]
    if len(ranked) <= _MOST_NAMED:
        return f" (did you mean {', '.join(named[:-1])} or {named[-1]}?)"
    country = countries().get(place_zones()[ranked[0]], "")
    return f" (did you mean {', '.join(named)} or another of the {len(ranked)} zones of {country}?)"


def zone_warning(name: str) -> str | None:
    """Why a zone that works is still not the one to write ('EST' never has summer time), or None."""
    if name in place_zones() or name in UNIVERSAL:
        return None
    target = canonical_zone(name)
    if _key(name) in ABBREVIATIONS:
        write = ABBREVIATIONS[_key(name)]
        return f"{name!r} is an abbreviation, not a place's zone, and may not follow summer time: write {write!r}"
    if target != name:
        return f"{name!r} is an old name of {target!r}: write {target!r}"
    return f"{name!r} is no place's zone and never follows summer time: write one such as 'Europe/Zurich'"


@dataclass(frozen=True)
class Change:
    """A change of the clocks around a local time: the wall times on each side, and the offsets."""

    before: datetime  # local wall time the clocks leave (naive)
    after: datetime  # local wall time they show next (naive)
    offset_before: timedelta
    offset_after: timedelta


@lru_cache(maxsize=512)  # ZoneInfo keeps only a few zones strongly: a sync across many would read files again
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=65536)  # a sync checks every timed point, and many share a day and a time
def clock_change(day: date, clock: time, zone: str) -> Change | None:
    """Return the change that makes *clock* on *day* skipped (a gap) or repeated (a fold) in *zone*, or None."""
    info = _zone(zone)
    wall = datetime.combine(day, clock)
    first = wall.replace(tzinfo=info, fold=0)
    second = wall.replace(tzinfo=info, fold=1)
    offset_before, offset_after = first.utcoffset(), second.utcoffset()
    if offset_before is None or offset_after is None or offset_before == offset_after:
        return None
    # The switch lies between the two readings of the wall time; find its instant to the second.
    # (Aware times in one zone compare by their wall time, fold ignored: compare them in UTC.)
    low, high = sorted((first.astimezone(UTC), second.astimezone(UTC)))
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(info).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    switch = high.replace(microsecond=0)
    naive = switch.replace(tzinfo=None)
    return Change(naive + offset_before, naive + offset_after, offset_before, offset_after)


def is_gap(change: Change) -> bool:
    return change.after > change.before


def _wall(moment: datetime, day: date) -> str:
    """'03:00', or '2027-03-13 23:30' when the time falls on another day than *day*."""
    return f"{moment:%H:%M}" if moment.date() == day else f"{moment:%Y-%m-%d %H:%M}"


def _offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def gap_text(day: date, clock: time, zone: str, change: Change) -> str:
    """'02:30 on 2027-03-14 does not exist in America/New_York (clocks go from 02:00 to 03:00)'."""
    return (
        f"{clock:%H:%M} on {day} does not exist in {zone} "
        f"(clocks go from {_wall(change.before, day)} to {_wall(change.after, day)})"
    )


def gap_choices(day: date, clock: time, change: Change) -> tuple[str, str]:
    """The valid times to write instead: as far before the gap as the clocks jump, and the gap's end."""
    earlier = datetime.combine(day, clock) - (change.after - change.before)
    return _wall(earlier, day), _wall(change.after, day)


def gap_problem(day: date, clock: time, zone: str) -> str | None:
    """'02:30 on 2027-03-14 does not exist in … ; write 01:30 or 03:00' for a written time the clocks skip, or None."""
    change = clock_change(day, clock, zone)
    if change is None or not is_gap(change):
        return None
    earlier, later = gap_choices(day, clock, change)
    return f"{gap_text(day, clock, zone, change)}; write {earlier} or {later}"


def gap_reading(day: date, clock: time, change: Change) -> str:
    """The wall time a skipped *clock* is read as, forward by the gap, as RFC 5545 reads it ('03:30')."""
    return _wall(datetime.combine(day, clock) + (change.after - change.before), day)


def in_change(wall: datetime, zone: str) -> bool:
    """Whether the clocks skip or repeat the naive local *wall* time (quicker than clock_change, no cache)."""
    info = _zone(zone)
    return wall.replace(tzinfo=info, fold=0).utcoffset() != wall.replace(tzinfo=info, fold=1).utcoffset()


def fold_text(day: date, clock: time, zone: str, change: Change) -> str:
    """'01:30 on 2027-11-07 happens twice in America/New_York (…): at 05:30 UTC (UTC-04:00) and at 06:30 UTC (…)'."""
    wall = datetime.combine(day, clock)
    first, second = (wall - offset for offset in (change.offset_before, change.offset_after))
    return (
        f"{clock:%H:%M} on {day} happens twice in {zone} (clocks go back from {_wall(change.before, day)} "
        f"to {_wall(change.after, day)}): first at {_wall(first, day)} UTC ({_offset(change.offset_before)}), "
        f"then at {_wall(second, day)} UTC ({_offset(change.offset_after)})"
    )
