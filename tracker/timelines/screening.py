"""Stored milestones that do not read, set aside with the reason; the rest goes on.

A hand-edited row or a value from an older version must not stop every other timeline: each
view is checked once, and what cannot be planned or shown is left out and described.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache

from tracker.text import describe_text
from tracker.timelines.dates import DateError, get_zone, parse_reminder
from tracker.timelines.views import MilestoneView, Problems, reference, repeat_problem


def readable_offsets(stored: object, field: str = "reminders") -> tuple[tuple[str, ...], str]:
    """The offsets of a stored list that read back within bounds, and what was wrong ('' if nothing)."""
    if not isinstance(stored, list | tuple) or not all(isinstance(o, str) for o in stored):
        return (), describe_value(field, stored, "is not a list of offsets")
    return read_offsets(tuple(stored), field)


@lru_cache(maxsize=4096)  # thousands of subscribers share a few lists of offsets
def read_offsets(stored: tuple[str, ...], field: str = "reminders") -> tuple[tuple[str, ...], str]:
    kept, wrong = [], []
    for offset in stored:
        try:
            parse_reminder(offset)
        except DateError:
            wrong.append(offset)
        else:
            kept.append(offset)
    if not wrong:
        return tuple(kept), ""
    return tuple(kept), describe_value(field, wrong, "cannot be used (from 1h to 366d)")


def describe_value(field: str, value: object, problem: str) -> str:
    text = f"{field} {value!r}"
    text = text if len(text) <= 100 else text[:99] + "…"
    return describe_text(f"{text} {problem}")


def view_problem(view: MilestoneView) -> str | None:
    """Return why a stored milestone cannot be planned or shown at all, or None when it can."""
    if view.due_at is None and view.starts_at is None:
        return "it has no date"
    try:
        get_zone(view.zone)
    except DateError as exc:
        return describe_text(str(exc))
    if view.repeat is not None:
        return repeat_problem(view.repeat)
    return None


def screen_views(views: Iterable[MilestoneView], set_aside: Problems | None = None) -> list[MilestoneView]:
    """The views every part of Tracker can use: unreadable ones left out, unreadable offsets dropped.

    *set_aside* learns what was left out or changed, and why.
    """
    usable = []
    for view in views:
        problem = view_problem(view)
        if problem is None:
            readable, problem = readable_view(view)
            usable.append(readable)
        if problem and set_aside is not None:
            set_aside[reference(view)] = problem
    return usable


def readable_view(view: MilestoneView) -> tuple[MilestoneView, str]:
    """*view* without the offsets that do not read, and what was left out ('' if nothing)."""
    reminders, wrong = readable_offsets(list(view.reminders))
    problems = [f"{wrong}: left out"] if wrong else []
    overdue = view.overdue
    if overdue is not None:
        kept, wrong = readable_offsets(list(overdue), "overdue")
        # Nothing left that reads: the setting's offsets, not silence, for a step that may be late.
        overdue = kept if kept or not wrong else None
        problems += [f"{wrong}: left out{'' if kept else ', TRACKER_OVERDUE used'}"] if wrong else []
    if not problems:
        return view, ""
    return replace(view, reminders=reminders, overdue=overdue), "; ".join(problems)


@lru_cache(maxsize=512)
def readable_zone(name: str) -> str:
    """*name* if it is a zone this machine knows, else UTC: a message in UTC is better than none."""
    try:
        get_zone(name)
    except DateError:
        return "UTC"
    return name


def read_names(stored: object) -> tuple[str, ...] | None:
    """A stored list of names (audiences, timelines; None: every one); raise ValueError if it is not one."""
    if stored is None:
        return None
    if not isinstance(stored, list | tuple) or not all(isinstance(name, str) for name in stored):
        raise ValueError(describe_value("", stored, "is not a list of names").strip())
    return tuple(stored)
