"""The time zones the subscribe and preferences forms offer: places' zones only, by region, in the reader's words.

Each zone reads as its country and city in the page's language (CLDR's names, through Babel) with its
offset from UTC now, so a reader finds "Suisse (Zurich) — UTC+01:00" without knowing the tz database.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from babel import Locale

from tracker.i18n.languages import N_, Language
from tracker.timelines.dates import get_zone
from tracker.timelines.zones import UNIVERSAL, aliases_of, canonical_zone, place_zones

# Regions by the first part of a zone's name: a CLDR region code (named by Babel) or our own words.
REGIONS = {
    "Africa": "002", "America": "019", "Antarctica": "AQ", "Asia": "142", "Europe": "150", "Arctic": "150",
    "Atlantic": N_("Atlantic Ocean"), "Indian": N_("Indian Ocean"), "Australia": "009", "Pacific": "009",
}  # fmt: skip
_ISOLATE, _POP = "\u2066", "\u2069"  # keep "UTC+01:00" one left-to-right piece in an Arabic label


@dataclass(frozen=True)
class ZoneOption:
    value: str
    label: str
    aliases: str = ""  # other names of the zone a browser may report ('Asia/Calcutta'), space-separated


@dataclass(frozen=True)
class ZoneGroup:
    label: str
    options: tuple[ZoneOption, ...]


def zone_groups(language: Language, chosen: str, now: datetime) -> tuple[list[ZoneOption], list[ZoneGroup]]:
    """Return the options outside any group (UTC, and a chosen zone no group has) and the regions' groups."""
    loose = [ZoneOption("UTC", f"UTC — {offset_text(now, 'UTC')}")]
    if chosen and canonical_zone(chosen) not in place_zones() and canonical_zone(chosen) not in UNIVERSAL:
        loose.insert(0, ZoneOption(chosen, chosen))  # shown back as sent, so the form says what is wrong
    groups = []
    for region, zones in named_zones(str(language.locale)).items():
        options = (ZoneOption(zone, f"{name} — {offset_text(now, zone)}", aliases) for zone, name, aliases in zones)
        groups.append(ZoneGroup(region_name(language, region), tuple(options)))
    return loose, sorted(groups, key=lambda group: reading_order(group.label))


def region_name(language: Language, region: str) -> str:
    return language.locale.territories.get(region) or language.gettext(region)


def offset_text(now: datetime, zone: str) -> str:
    offset = now.astimezone(get_zone(zone)).utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return f"{_ISOLATE}UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}{_POP}"


@lru_cache(maxsize=8)  # one per language: the names do not change, only the offsets do
def named_zones(locale_name: str) -> dict[str, tuple[tuple[str, str, str], ...]]:
    """Zones by region (a CLDR code or our msgid) as (zone, "Country (City)", aliases), sorted by their name."""
    locale = Locale.parse(locale_name)
    by_region: dict[str, list[tuple[str, str, str]]] = {}
    for zone, country in place_zones().items():
        region = REGIONS.get(zone.split("/", 1)[0])
        if region is not None:
            item = (zone, place_name(locale, zone, country), " ".join(aliases_of().get(zone, ())))
            by_region.setdefault(region, []).append(item)
    return {
        region: tuple(sorted(zones, key=lambda item: reading_order(item[1]))) for region, zones in by_region.items()
    }


def reading_order(name: str) -> tuple[str, str]:
    """Sort key close to the reader's alphabet without ICU: letters first, their accents only to break ties.

    'Égypte' files under E, between 'Djibouti' and 'Érythrée', not after 'Zimbabwe'. Russian й is a
    letter of its own (after и) and keeps its mark; Han characters have no marks and keep their order.
    """
    folded = name.casefold()
    letters = "".join(
        char
        if char == "й"
        else "".join(part for part in unicodedata.normalize("NFKD", char) if not unicodedata.combining(part))
        for char in folded
    )
    return letters, folded


def place_name(locale: Locale, zone: str, country: str) -> str:
    """'Suisse (Zurich)': the country and the zone's city as CLDR names them in *locale*."""
    city = next(
        (
            locale.time_zones[name]["city"]
            for name in (zone, *aliases_of().get(zone, ()))
            if "city" in locale.time_zones.get(name, {})
        ),
        zone.rsplit("/", 1)[-1].replace("_", " "),
    )
    name = str(locale.territories.get(country, country))
    if city == name:  # 'Cabo Verde', not 'Cabo Verde (Cabo Verde)'
        return name
    return str(locale.zone_formats.get("fallback", "%(1)s (%(0)s)")) % {"0": city, "1": name}
