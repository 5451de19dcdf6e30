"""Resolve relative dates across all timelines into local points and UTC instants.

Pure: the rules and the completions come in, dates or problems go out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

from tracker.timelines.dates import (
    FIRST_YEAR,
    LAST_YEAR,
    Absolute,
    Edge,
    Expr,
    LocalPoint,
    Relative,
    move_to_zone,
    shift,
    suggest,
    to_local,
)
from tracker.timelines.files import FileProblem, TimelineSpec
from tracker.timelines.repeats import clock_changes_text
from tracker.timelines.workdays import DEFAULT_CALENDAR, Roll, WorkCalendar, WorkdayError, roll_day
from tracker.timelines.zones import Change, clock_change, fold_text, gap_choices, gap_text, is_gap

Key = tuple[str, str]  # (timeline id, milestone id)


@dataclass(frozen=True)
class DateRule:
    """What a milestone's dates are made of, and where to point at when they are wrong."""

    key: Key
    zone: str
    due: Expr | None = None
    starts: Expr | None = None
    ends: Expr | None = None
    repeat: str | None = None
    path: str = ""
    lines: Mapping[str, int] = field(default_factory=dict, compare=False)
    opens_after: str | None = None  # not a date, but a reference checked with the others
    calendar: WorkCalendar = DEFAULT_CALENDAR  # the timeline's working days, for `wd` offsets and `roll`
    roll: Roll | None = None  # a date on a day off moves to the previous or next working day
    cancelled: bool = False  # no warning of a day off for what does not take place
    # (field, referenced milestone) for each relative date; asked for several times per sync
    dependencies: tuple[tuple[str, Key], ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        home = self.key[0]
        found: tuple[tuple[str, Key], ...] = ()
        if isinstance(self.due, Relative):
            found += (("due", reference_key(self.due, home)),)
        if isinstance(self.starts, Relative):
            found += (("starts", reference_key(self.starts, home)),)
        if isinstance(self.ends, Relative):
            found += (("ends", reference_key(self.ends, home)),)
        object.__setattr__(self, "dependencies", found)

    def line_of(self, name: str) -> int:
        return self.lines.get(name, self.lines.get("id", 1))


@dataclass(frozen=True)
class Completion:
    done_at: datetime
    day: date | None = None  # set when the completion was recorded as a plain date


@dataclass(frozen=True)
class ResolvedDates:
    due: LocalPoint | None = None
    starts: LocalPoint | None = None
    ends: LocalPoint | None = None
    rolled_from: date | None = None  # the main date as written, when `roll` moved it off a day off

    @property
    def main(self) -> LocalPoint:
        point = self.due or self.starts
        assert point is not None
        return point


def label(key: Key, home: str) -> str:
    return key[1] if key[0] == home else f"{key[0]}/{key[1]}"


def reference_key(expr: Relative, home: str) -> Key:
    return (expr.timeline or home, expr.milestone)


def rules_from_specs(specs: Sequence[TimelineSpec]) -> dict[Key, DateRule]:
    """The date rule of every milestone in *specs*, as resolve_dates takes them."""
    return {
        (tl.id, m.id): DateRule(
            (tl.id, m.id),
            tl.timezone,
            m.due,
            m.starts,
            m.ends,
            m.repeat,
            tl.path,
            m.lines,
            m.opens_after,
            calendar=tl.calendar,
            roll=m.roll,
            cancelled=m.status == "cancelled",
        )
        for tl in specs
        for m in tl.milestones
    }


def resolve_dates(
    rules: Mapping[Key, DateRule],
    completions: Mapping[Key, Completion],
    incomplete: frozenset[str] = frozenset(),
) -> tuple[dict[Key, ResolvedDates], list[FileProblem]]:
    """Resolve every rule in dependency order; return dates and problems.

    *incomplete* names timelines that lost milestones to other problems: a reference
    into them that finds nothing is not reported, it may point at a lost milestone.
    """
    problems = check_references(rules, incomplete)
    if problems:
        return {}, problems
    order, problems = order_by_dependency(rules)
    resolved: dict[Key, ResolvedDates] = {}
    for key in order:
        rule = rules[key]
        # Undated rules (their date had its own problem) and rules in a cycle stay unresolved.
        if (rule.due or rule.starts) is None or any(t not in resolved for _, t in dependencies(rule)):
            continue
        dates, found = resolve_checked(rule, resolved, rules, completions)
        problems.extend(found)
        if dates is not None:
            resolved[key] = dates
    return resolved, problems


def resolve_checked(
    rule: DateRule,
    resolved: Mapping[Key, ResolvedDates],
    rules: Mapping[Key, DateRule],
    completions: Mapping[Key, Completion],
) -> tuple[ResolvedDates | None, list[FileProblem]]:
    """Resolve one rule; dates outside the calendar are a problem, not a crash; skipped or repeated times are told."""
    name = "due" if rule.due is not None else "starts"
    try:
        written = resolve_rule(rule, resolved, rules, completions)
        out_of_range = check_range(rule, written)
        if out_of_range:
            return None, [out_of_range]
        dates = settle_clocks(written)
    except WorkdayError as exc:  # no working day near the date: said as such
        return None, [FileProblem(rule.path, rule.line_of(name), f"{name}: {exc}")]
    except (OverflowError, ValueError):
        return None, [FileProblem(rule.path, rule.line_of(name), f"{name}: {RANGE_MESSAGE}")]
    span = check_span(rule, dates) or check_day_off(rule, dates)
    return dates, check_clocks(rule, written, dates) + check_repeat_clocks(rule, written) + ([span] if span else [])


def dependencies(rule: DateRule) -> tuple[tuple[str, Key], ...]:
    return rule.dependencies


def check_references(rules: Mapping[Key, DateRule], incomplete: frozenset[str] = frozenset()) -> list[FileProblem]:
    problems = []
    timelines = {key[0] for key in rules}
    for rule in rules.values():
        for name, target in dependencies(rule):
            if target[0] in incomplete and target not in rules:
                continue
            message = dangling(rule.key, target, rules, timelines)
            if message is None and rules[target].repeat is not None:
                message = f"{label(target, rule.key[0])!r} repeats; a date cannot be relative to a repeating milestone"
            if message:
                problems.append(FileProblem(rule.path, rule.line_of(name), f"{name}: {message}"))
        problems.extend(check_opens_after(rule, rules, timelines, incomplete))
    return problems


def check_opens_after(
    rule: DateRule, rules: Mapping[Key, DateRule], timelines: set[str], incomplete: frozenset[str]
) -> list[FileProblem]:
    if rule.opens_after is None:
        return []
    timeline, _, milestone = rule.opens_after.rpartition("/")
    target = (timeline or rule.key[0], milestone)
    message = "a milestone cannot open after itself" if target == rule.key else None
    if message is None and not (target[0] in incomplete and target not in rules):
        message = dangling(rule.key, target, rules, timelines)
    return [FileProblem(rule.path, rule.line_of("opens_after"), f"opens_after: {message}")] if message else []


def dangling(source: Key, target: Key, rules: Mapping[Key, DateRule], timelines: set[str]) -> str | None:
    """Explain why *target* does not exist, or return None when it does."""
    if target in rules:
        return None
    if target[0] not in timelines:
        return f"no timeline {target[0]!r}{suggest(target[0], timelines)}"
    names = [key[1] for key in rules if key[0] == target[0]]
    where = "this timeline" if target[0] == source[0] else f"timeline {target[0]!r}"
    glued = re.fullmatch(r"(.+?)-(\d+[dwhm])", target[1])
    if glued and glued.group(1) in names:  # 'meeting-30d' reads as one name: say how to write it
        return f"no milestone {target[1]!r} in {where} (did you mean '{glued.group(1)} - {glued.group(2)}'?)"
    return f"no milestone {target[1]!r} in {where}{suggest(target[1], names)}"


def order_by_dependency(rules: Mapping[Key, DateRule]) -> tuple[list[Key], list[FileProblem]]:
    """Order keys so each comes after what it refers to; report each cycle once."""
    state: dict[Key, int] = {}  # 1: on the path, 2: finished
    order: list[Key] = []
    problems: list[FileProblem] = []
    for start in rules:
        if start in state:
            continue
        path: list[Key] = [start]
        pending = [iter(dependencies(rules[start]))]
        state[start] = 1
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
                done = path.pop()
                state[done] = 2
                order.append(done)
                continue
            name, target = step
            if target not in rules:  # a reference into a timeline with problems of its own
                continue
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                problems.extend(cycle_problems(rules, rules[path[-1]], name, cycle))
            elif target not in state:
                state[target] = 1
                path.append(target)
                pending.append(iter(dependencies(rules[target])))
    return order, problems


def cycle_problems(rules: Mapping[Key, DateRule], closing: DateRule, name: str, cycle: list[Key]) -> list[FileProblem]:
    """Report a cycle on the edge that closes it, and once in every other file it runs through."""
    found = [cycle_problem(closing, name, cycle)]
    reported = {closing.path}
    for position, key in enumerate(cycle[:-1]):
        rule = rules[key]
        if rule.path in reported:
            continue
        reported.add(rule.path)
        field = next(n for n, target in dependencies(rule) if target == cycle[position + 1])
        rotated = [*cycle[position:-1], *cycle[:position], key]
        found.append(cycle_problem(rule, field, rotated))
    return found


def cycle_problem(rule: DateRule, name: str, cycle: list[Key]) -> FileProblem:
    home = rule.key[0]
    if len(cycle) == 2:
        return FileProblem(rule.path, rule.line_of(name), f"{name}: {label(cycle[0], home)!r} refers to itself")
    names = " → ".join(label(key, home) for key in cycle)
    return FileProblem(rule.path, rule.line_of(name), f"{name}: dates depend on each other in a cycle: {names}")


def resolve_rule(
    rule: DateRule,
    resolved: Mapping[Key, ResolvedDates],
    rules: Mapping[Key, DateRule],
    completions: Mapping[Key, Completion],
) -> ResolvedDates:
    def point(expr: Expr | None, edge: Edge) -> LocalPoint | None:
        if expr is None:
            return None
        if isinstance(expr, Absolute):
            return LocalPoint(expr.day, expr.clock, rule.zone, edge)
        target = reference_key(expr, rule.key[0])
        base = anchor_point(resolved.get(target), expr, rules[target], completions.get(target))
        moved = shift(move_to_zone(base, rule.zone), expr.offsets, rule.calendar)
        return LocalPoint(moved.day, moved.clock, moved.zone, edge)

    if rule.due is not None:
        return rolled(rule, ResolvedDates(due=point(rule.due, "end")))
    starts = point(rule.starts, "start")
    ends = point(rule.ends, "end") if rule.ends is not None else None
    if ends is None and starts is not None:
        ends = LocalPoint(starts.day, starts.clock, starts.zone, "end")
    return rolled(rule, ResolvedDates(starts=starts, ends=ends))


def rolled(rule: DateRule, dates: ResolvedDates) -> ResolvedDates:
    """Apply the rule's `roll` to each of its dates, after the expression, keeping what the main date was."""
    if rule.roll is None:
        return dates
    roll = rule.roll

    def move(point: LocalPoint | None) -> LocalPoint | None:
        # Rolling is monotone: a span's start and end move the same way and keep their order.
        return point and replace(point, day=roll_day(rule.calendar, point.day, roll))

    moved = ResolvedDates(move(dates.due), move(dates.starts), move(dates.ends))
    was = dates.main.day
    return replace(moved, rolled_from=was if moved.main.day != was else None)


def anchor_point(
    dates: ResolvedDates | None, expr: Relative, target: DateRule, completion: Completion | None
) -> LocalPoint:
    """Return the point of the referenced milestone that *expr* counts from."""
    assert dates is not None, "resolve_dates resolves references first"
    if expr.anchor == "end":
        return dates.due or dates.ends or dates.main
    if expr.anchor == "start":
        return dates.due or dates.starts or dates.main
    if expr.anchor == "done":
        planned = dates.due or dates.ends or dates.main
        return completion_point(completion, planned) if completion else planned
    return dates.main


def completion_point(completion: Completion, planned: LocalPoint) -> LocalPoint:
    """Express a completion like the milestone it completes: a date or a time."""
    if planned.clock is None:
        day = completion.day or to_local(completion.done_at, planned.zone).day
        return LocalPoint(day, None, planned.zone, "end")
    return to_local(completion.done_at, planned.zone)


RANGE_MESSAGE = f"the date falls outside the years {FIRST_YEAR} to {LAST_YEAR}"


def check_range(rule: DateRule, dates: ResolvedDates) -> FileProblem | None:
    """Keep every date in the years a timeline may use, counted on its own calendar (its local day)."""
    for name, point in (("due", dates.due), ("starts", dates.starts), ("ends", dates.ends)):
        if point is not None and not FIRST_YEAR <= point.day.year <= LAST_YEAR:
            return FileProblem(rule.path, rule.line_of(name), f"{name}: {RANGE_MESSAGE}")
    return None


def check_day_off(rule: DateRule, dates: ResolvedDates) -> FileProblem | None:
    """Warn of a deadline on a day off that no `roll` moves: it may well be a mistake, but may be meant."""
    # A repeating milestone's occurrences fall on other weekdays each year: its first date alone says little.
    if dates.due is None or rule.roll is not None or rule.repeat is not None or rule.cancelled:
        return None
    day = dates.due.day
    if rule.calendar.is_working(day):
        return None
    message = (
        f"due: {day:%A} {day.day} {day:%B %Y} is not a working day; add 'roll: previous' (or 'roll: next') "
        "to move it to a working day, or count in working days ('meeting - 10wd')"
    )
    return FileProblem(rule.path, rule.line_of("due"), message, warning=True)


def settle_clocks(dates: ResolvedDates) -> ResolvedDates:
    """Read a time the clocks skip as RFC 5545 does (02:30 → 03:30); a span so moved keeps its length.

    Without the second rule a meeting 02:30–03:30 on the night the clocks go forward would
    start and end at 03:30, and calendars would show an instant instead of an hour.
    """
    starts, ends = settled(dates.starts), settled(dates.ends)
    if dates.starts and dates.ends and starts and ends and starts.clock is not None and ends.at() <= starts.at():
        length = wall_time(dates.ends) - wall_time(dates.starts)
        if starts != dates.starts and length > timedelta(0):
            ends = replace(to_local(starts.at() + length, ends.zone), edge=ends.edge)
    return ResolvedDates(settled(dates.due), starts, ends, rolled_from=dates.rolled_from)


def settled(point: LocalPoint | None) -> LocalPoint | None:
    """The point at the wall time its instant shows: itself, unless the clocks skip its time."""
    if point is None or point.clock is None:
        return point
    change = clock_change(point.day, point.clock, point.zone)
    if change is None or not is_gap(change):
        return point
    return replace(to_local(point.at(), point.zone), edge=point.edge)


def wall_time(point: LocalPoint) -> datetime:
    return datetime.combine(point.day, point.clock or time(0, 0))


def check_clocks(rule: DateRule, written: ResolvedDates, dates: ResolvedDates) -> list[FileProblem]:
    """Tell of each time the clocks skip (an error when written so, a warning when counted) or repeat (a warning)."""
    found = []
    fields = (("due", rule.due, written.due, dates.due), ("starts", rule.starts, written.starts, dates.starts),
              ("ends", rule.ends, written.ends, dates.ends))  # fmt: skip
    for name, expr, point, now_at in fields:
        if expr is None or point is None or point.clock is None or now_at is None:
            continue
        change = clock_change(point.day, point.clock, point.zone)
        if change is None:
            continue
        message, warning = clock_message(expr, point, now_at, change)
        moved = warning and is_gap(change) and name == "starts"  # a written gap is an error: nothing moves
        if moved and written.ends and dates.ends and dates.ends.at() > written.ends.at():
            message += f"; the span keeps its length and ends at {dates.ends.text()}"
        found.append(FileProblem(rule.path, rule.line_of(name), f"{name}: {message}", warning=warning))
    return found


def check_repeat_clocks(rule: DateRule, written: ResolvedDates) -> list[FileProblem]:
    """Warn once of the later dates of a timed repeat that the clocks skip or repeat (its first: check_clocks)."""
    point = written.main
    if rule.repeat is None or point.clock is None:
        return []
    message = clock_changes_text(rule.repeat, wall_time(point), point.zone)
    return [FileProblem(rule.path, rule.line_of("repeat"), f"repeat: {message}", warning=True)] if message else []


def clock_message(expr: Expr, point: LocalPoint, settled_point: LocalPoint, change: Change) -> tuple[str, bool]:
    """The message about a skipped or repeated local time, and whether it is only a warning."""
    assert point.clock is not None
    if not is_gap(change):
        fold = fold_text(point.day, point.clock, point.zone, change)
        advice = "Tracker takes the first, as RFC 5545 does: write another time so no reader takes the other"
        return f"{fold}; {advice}", True
    gap = gap_text(point.day, point.clock, point.zone, change)
    if isinstance(expr, Absolute):
        earlier, later = gap_choices(point.day, point.clock, change)
        return f"{gap}; write {earlier} or {later}", False
    moved = f"it is read as {settled_point.text()}, as calendars read it (RFC 5545)"
    return f"{expr_text(expr)!r} falls in the time the clocks skip: {gap}; {moved}", True


def expr_text(expr: Relative) -> str:
    where = f"{expr.timeline}/" if expr.timeline else ""
    anchor = f".{expr.anchor}" if expr.anchor else ""
    terms = "".join(f" {'-' if o.days < 0 or o.minutes < 0 else '+'} {o}" for o in expr.offsets)
    return f"{where}{expr.milestone}{anchor}{terms}"


def check_span(rule: DateRule, dates: ResolvedDates) -> FileProblem | None:
    if dates.starts is None or dates.ends is None or rule.ends is None:
        return None
    if dates.starts.all_day != dates.ends.all_day:
        return FileProblem(
            rule.path, rule.line_of("ends"), "starts and ends must both be dates or both be dates with a time"
        )
    if dates.ends.at() < dates.starts.at():
        message = f"the span ends ({dates.ends.text()}) before it starts ({dates.starts.text()})"
        return FileProblem(rule.path, rule.line_of("ends"), message)
    return None
