"""The two settings `tracker validate` needs, the schedules folder and the default zone, read without pydantic.

The settings (tracker/config.py) are read by pydantic-settings, whose import alone takes longer than
all the rest of `tracker validate`, which runs in pre-commit hooks and CI on every save. These two
are plain strings, so they are read here as pydantic-settings reads them: a `TRACKER_*` variable
first, then `tracker.toml` in the working folder, then the default. Whenever anything is not
plainly so (a variable spelled in another case, a value that is empty, not a string or not a known
zone, a tracker.toml that does not parse), this gives up and the caller reads the full settings,
so the result, and any error, is theirs. tests/test_startup.py checks both give the same values.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tracker.timelines.dates import DateError, get_zone
from tracker.timelines.workdays import DEFAULT_CALENDAR, WorkCalendar
from tracker.timelines.zones import zone_warning

# As in tracker.config.Settings: its defaults and its `toml_file`.
DEFAULTS = {"schedules": "schedules", "timezone": "Europe/Zurich"}
TOML_FILE = Path("tracker.toml")


@dataclass(frozen=True)
class TimelineSettings:
    schedules: Path
    timezone: str
    calendar: WorkCalendar = DEFAULT_CALENDAR
    channels: Path | None = None  # the channels file (docs/channels.md); None: beside the schedules folder

    @property
    def channels_path(self) -> Path:
        return self.channels or self.schedules.parent / "channels.toml"


class _UndecidedError(Exception):
    """A value only the full settings can decide."""


def read_timeline_settings() -> TimelineSettings | None:
    """The schedules folder and default zone, or None when only the full settings can say."""
    try:
        toml = _toml_values()
        schedules, zone = (_value(name, toml) for name in ("schedules", "timezone"))
        if any(_given(name, toml) for name in ("weekend", "holidays", "closures", "channels_file")):
            raise _UndecidedError  # a calendar of one's own: the full settings read and check it
        get_zone(zone)  # the check Settings makes; its error message is the full settings' to give
        if zone_warning(zone) is not None:
            raise _UndecidedError  # 'EST', 'US/Eastern': the full settings warn of it at start
    except (_UndecidedError, DateError):
        return None
    folder = Path(schedules)
    return TimelineSettings(folder, zone, channels=folder.parent / "channels.toml")  # as Settings.channels_path


def _toml_values() -> dict[str, object]:
    if not TOML_FILE.expanduser().is_file():
        return {}
    try:
        with TOML_FILE.expanduser().open("rb") as file:
            return tomllib.load(file)
    except (OSError, ValueError) as exc:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        raise _UndecidedError from exc


def _given(name: str, toml: dict[str, object]) -> bool:
    return any(key.lower() == f"tracker_{name}" for key in os.environ) or any(key.lower() == name for key in toml)


def _value(name: str, toml: dict[str, object]) -> str:
    """The variable TRACKER_NAME, else the tracker.toml key, else the default; names match in any case."""
    variables = [key for key in os.environ if key.lower() == f"tracker_{name}"]
    keys = [key for key in toml if key.lower() == name]
    if variables:
        if variables != [f"TRACKER_{name.upper()}"]:
            raise _UndecidedError  # spelled otherwise, or twice: which one wins is pydantic-settings' business
        value: object = os.environ[variables[0]]
    elif keys:
        if keys != [name]:
            raise _UndecidedError
        value = toml[name]
    else:
        return DEFAULTS[name]
    if not isinstance(value, str) or not value:
        raise _UndecidedError
    return value
