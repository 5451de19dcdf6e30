"""What validates, runs: generated timeline files that `tracker validate` accepts work everywhere, quickly.

Each example writes one or two timeline files that are valid by construction (absolute and
relative dates, spans, repeat rules from the supported subset with edge BY* values, reminders,
zones with DST, dates near 1900 and near 2200), checks that validation accepts them, then
syncs them into a real store and exercises every reader of timelines: the feeds (parsed and
expanded by a calendar library, as a client would), `upcoming` (table and JSON), the pages,
the API and reminder planning. Hypothesis's deadline bounds each example's time.
"""

from __future__ import annotations

import calendar
import io
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import recurring_ical_events  # type: ignore[import-untyped]
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icalendar import Calendar
from rich.console import Console
from sqlalchemy import Engine, delete
from starlette.testclient import TestClient

from tracker.config import Settings
from tracker.delivery.planning import plan_reminders
from tracker.display import upcoming_json, upcoming_table
from tracker.feeds.calendars import Calendars
from tracker.store.engine import transaction
from tracker.store.models import CompletionRecord, Event, Milestone, SyncState, Timeline
from tracker.subscribers.readers import Reader
from tracker.timelines.pipeline import sync_folder
from tracker.timelines.repeats import check_first_date, read_repeat
from tracker.timelines.states import Process
from tracker.timelines.stored import load_views
from tracker.timelines.validation import validate_paths
from tracker.timelines.views import list_upcoming, nearest_occurrence
from tracker.web.app import create_app

ZONES = ["Europe/Zurich", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "Pacific/Chatham",
         "America/Sao_Paulo", "Pacific/Apia", "Europe/London", "America/St_Johns", "Asia/Tokyo", "UTC"]  # fmt: skip
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# Dates near both ends of the calendar and around today, each far enough from its end for offsets.
ERAS = {
    "first years": (date(1900, 1, 1), date(1901, 6, 30), +1),
    "today": (date(2024, 1, 1), date(2030, 12, 31), 0),
    "last years": (date(2199, 7, 1), date(2200, 12, 31), -1),
}
LAST_DAY = date(2200, 12, 31)
AUDIENCES = ("membership", "secretariat")


@dataclass
class Draft:
    """A milestone as written, with the facts the generator builds on."""

    id: str
    lines: list[str] = field(default_factory=list)
    day: date | None = None  # its absolute first date, when it has one
    repeats: bool = False


# --- strategies -----------------------------------------------------------------------------


@st.composite
def slugs(draw: st.DrawFn, prefix: str) -> str:
    """A unique id (*prefix* makes it so), sometimes as long as the store allows."""
    tail = draw(st.sampled_from(["", "-draft", "-" + "x" * (99 - len(prefix))]))
    return (prefix + tail)[:100]


@st.composite
def clocks(draw: st.DrawFn) -> time | None:
    if draw(st.booleans()):
        return None
    # 02:30 falls in a spring-forward gap in several of the zones.
    return draw(st.one_of(st.just(time(2, 30)), st.builds(time, st.integers(0, 23), st.integers(0, 59))))


def written(day: date, clock: time | None) -> str:
    return day.isoformat() if clock is None else f"{day.isoformat()} {clock:%H:%M}"


@st.composite
def reminder_lists(draw: st.DrawFn) -> str:
    offsets = st.one_of(
        st.integers(1, 366).map(lambda n: f"{n}d"),
        st.integers(1, 52).map(lambda n: f"{n}w"),
        st.integers(1, 8784).map(lambda n: f"{n}h"),
        st.integers(60, 527_040).map(lambda n: f"{n}m"),
    )
    return "[" + ", ".join(draw(st.lists(offsets, max_size=4))) + "]"


def nth_in_month(day: date) -> tuple[int, int]:
    """Return which of its weekday in its month *day* is, from the start and (negative) from the end."""
    last = calendar.monthrange(day.year, day.month)[1]
    return (day.day - 1) // 7 + 1, -((last - day.day) // 7 + 1)


def nth_in_year(day: date) -> tuple[int, int]:
    last = date(day.year, 12, 31)
    return (day.timetuple().tm_yday - 1) // 7 + 1, -((last - day).days // 7 + 1)


def weekday_position(day: date, first: date, last: date) -> tuple[int, int]:
    """Return *day*'s position among the weekdays (Monday to Friday) from *first* to *last*, both ways."""
    days = [first + timedelta(n) for n in range((last - first).days + 1)]
    weekdays = [d for d in days if d.weekday() < 5]
    index = weekdays.index(day)
    return index + 1, index - len(weekdays)


@st.composite
def selectors(draw: st.DrawFn, freq: str, day: date) -> list[str]:
    """BY parts that *day* satisfies, for *freq*: the edge values (negative, 5th, 53rd, 366th) included."""
    weekday = WEEKDAYS[day.weekday()]
    plain_days = ",".join(dict.fromkeys([weekday, *draw(st.lists(st.sampled_from(WEEKDAYS), max_size=3))]))
    months = ",".join(map(str, sorted({day.month, *draw(st.lists(st.integers(1, 12), max_size=2))})))
    last = calendar.monthrange(day.year, day.month)[1]
    if freq in ("MONTHLY", "YEARLY") and day.weekday() < 5 and draw(st.booleans()):
        # Its place among the month's weekdays (Monday to Friday), picked by BYSETPOS.
        month_span = (date(day.year, day.month, 1), date(day.year, day.month, last))
        position = draw(st.sampled_from(weekday_position(day, *month_span)))
        return [f"BYMONTH={day.month}"] * (freq == "YEARLY") + ["BYDAY=MO,TU,WE,TH,FR", f"BYSETPOS={position}"]
    if freq in ("DAILY", "WEEKLY"):
        plain = [f"BYMONTH={months}", f"BYDAY={plain_days}", f"WKST={WEEKDAYS[-1]}"]
        return draw(st.sampled_from([[], plain[:1], plain[1:2], plain]))
    in_month = draw(st.sampled_from(nth_in_month(day)))
    if freq == "MONTHLY":
        monthly = [[f"BYMONTHDAY={day.day}"], [f"BYMONTHDAY={day.day - last - 1}"], [f"BYDAY={in_month}{weekday}"]]
        return draw(st.sampled_from([[], *monthly, [f"BYMONTH={months}", f"BYMONTHDAY={day.day}"]]))
    return draw(st.sampled_from(yearly_selectors(day, months, f"{in_month}{weekday}", day.day - last - 1)))


def yearly_selectors(day: date, months: str, nth_weekday: str, from_end: int) -> list[list[str]]:
    weekday = WEEKDAYS[day.weekday()]
    number, negative = yearday(day)
    found = [[], [f"BYMONTH={months}"], [f"BYMONTH={day.month}", f"BYMONTHDAY={from_end}"],
             [f"BYMONTH={day.month}", f"BYDAY={nth_weekday}"], [f"BYYEARDAY={number}"], [f"BYYEARDAY={negative}"],
             *([f"BYDAY={n}{weekday}"] for n in nth_in_year(day))]  # fmt: skip
    if day.isocalendar()[0] == day.year:  # a week number counts within its own year only
        found.append([f"BYWEEKNO={day.isocalendar()[1]}", f"BYDAY={weekday}"])
    return found


def yearday(day: date) -> tuple[int, int]:
    number = day.timetuple().tm_yday
    return number, number - (366 if calendar.isleap(day.year) else 365) - 1


@st.composite
def rules(draw: st.DrawFn, day: date, clock: time | None) -> str:
    """A rule from the supported subset whose first date is *day* (its own first occurrence)."""
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = [f"FREQ={freq}", *draw(selectors(freq, day))]
    interval = draw(st.sampled_from([1, 1, 2, 3, 7, 1000]))
    if interval > 1:
        parts.append(f"INTERVAL={interval}")
    parts += draw(ends(freq, interval, day, clock))
    return ";".join(draw(st.permutations(within_reach(parts, day))))


def within_reach(parts: list[str], day: date) -> list[str]:
    """*parts* with COUNT=1 in place of an end that lets a sparse or dense rule run past 2200 or 40,000 dates."""
    start = datetime.combine(day, time(0))
    dates = iter(rrulestr(";".join(parts), dtstart=start))
    if any(p.startswith("COUNT=") for p in parts):
        if all(at.date() <= LAST_DAY for at in dates):
            return parts
    elif not any(p.startswith("UNTIL=") for p in parts):
        try:  # the same day a year later, as validation counts (28 February for the 29th)
            year_later = start.replace(year=start.year + 1)
        except ValueError:
            year_later = start.replace(year=start.year + 1, day=28)
        first_year = sum(1 for _ in itertools.takewhile(lambda at: at < year_later, dates))
        if first_year * (LAST_DAY.year - day.year + 1) <= 40_000:
            return parts
    else:
        return parts
    return [p for p in parts if not p.startswith("COUNT=")] + ["COUNT=1"]


@st.composite
def ends(draw: st.DrawFn, freq: str, interval: int, day: date, clock: time | None) -> list[str]:
    # Endless daily or weekly rules give more dates by 2200 than planning walks: they need an end.
    kinds = ["count", "until"] if freq in ("DAILY", "WEEKLY") else ["count", "until", "none"]
    kind = draw(st.sampled_from(kinds))
    period = {"DAILY": 1, "WEEKLY": 7}.get(freq, 366) * interval
    if kind == "count":  # no date past 2200: a period each at most
        periods = (LAST_DAY - day).days // period + 1
        return [f"COUNT={draw(st.sampled_from([c for c in (1, 2, 12, 1000) if c <= periods] or [1]))}"]
    if kind == "none":
        return []
    try:
        fifty = day.replace(year=day.year + 50)
    except ValueError:  # 29 February
        fifty = day.replace(year=day.year + 50, day=28)
    latest = min(LAST_DAY, fifty - timedelta(days=1), day + timedelta(days=min(999 * period - 1, 20_000)))
    until = draw(st.dates(min_value=day, max_value=max(day, latest)))
    stamp = f"{until:%Y%m%d}" + ("T235959" if clock is not None or draw(st.booleans()) else "")
    return [f"UNTIL={stamp}"]


@st.composite
def milestones(draw: st.DrawFn, index: int, era: str, earlier: list[Draft]) -> Draft:
    """One milestone: a deadline or a span, absolute, relative to an earlier one, or repeating."""
    draft = Draft(draw(slugs(f"m{index}")))
    title = draw(st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=30))
    draft.lines += [f"id: {draft.id}", f"title: {json.dumps(title.strip() or 'x', ensure_ascii=False)}"]
    low, high, _ = ERAS[era]
    anchors = [m for m in earlier if not m.repeats]
    shape = draw(st.sampled_from(["deadline", "span", "relative", "repeating"] if anchors else
                                 ["deadline", "span", "repeating"]))  # fmt: skip
    if shape == "relative":
        draft.lines.append(f"due: {draw(relative_dates(era, anchors))}")
    else:
        draft.day, clock = draw(st.dates(low, high)), draw(clocks())
        draft.lines += dated_lines(draw, shape, draft.day, clock)
        if shape == "repeating":
            draft.repeats = True
            draft.lines.append(f"repeat: {draw(rules(draft.day, clock))}")
    draft.lines += draw(extras(earlier))
    return draft


def dated_lines(draw: st.DrawFn, shape: str, day: date, clock: time | None) -> list[str]:
    if shape == "deadline" or (shape == "repeating" and draw(st.booleans())):
        return [f"due: {written(day, clock)}"]
    end = min(LAST_DAY, day + timedelta(days=draw(st.integers(0, 4))))
    end_clock = None if clock is None else time(23, 59)
    return [f"starts: {written(day, clock)}", f"ends: {written(end, end_clock)}"]


@st.composite
def relative_dates(draw: st.DrawFn, era: str, anchors: list[Draft]) -> str:
    """'anchor[.edge] ± offsets', moving into the calendar from its ends (chains stay within a year)."""
    anchor = draw(st.sampled_from(anchors))
    edge = draw(st.sampled_from(["", ".start", ".end", ".done"]))
    direction = ERAS[era][2] or draw(st.sampled_from([1, -1]))
    sign = "+" if direction > 0 else "-"
    amounts = st.one_of(st.integers(0, 60).map(lambda n: f"{n}d"), st.integers(0, 8).map(lambda n: f"{n}w"),
                        st.integers(0, 1000).map(lambda n: f"{n}h"))  # fmt: skip
    terms = draw(st.lists(amounts, max_size=2))
    return anchor.id + edge + "".join(f" {sign} {term}" for term in terms)


@st.composite
def extras(draw: st.DrawFn, earlier: list[Draft]) -> list[str]:
    lines = []
    if draw(st.booleans()):
        lines.append(f"owner: {draw(st.sampled_from(AUDIENCES))}")
    if draw(st.booleans()):
        lines.append(f"reminders: {draw(reminder_lists())}")
    if draw(st.integers(0, 5)) == 0:
        lines.append("status: cancelled")
    plain = [m for m in earlier if not m.repeats]
    if draw(st.booleans()) and plain:
        lines.append(f"opens_after: {draw(st.sampled_from(plain)).id}")
    return lines


@st.composite
def timeline_files(draw: st.DrawFn, index: int) -> tuple[str, str]:
    """Return a timeline's id and its YAML text."""
    timeline_id = draw(slugs(f"t{index}"))
    era = draw(st.sampled_from(list(ERAS)))
    drafts: list[Draft] = []
    for number in range(draw(st.integers(1, 5))):
        drafts.append(draw(milestones(number, era, drafts)))
    done = [m for m in drafts if m.day is not None and not m.repeats]
    if draw(st.booleans()) and done:
        chosen = draw(st.sampled_from(done))
        assert chosen.day is not None
        chosen.lines.append(f"done: {chosen.day.isoformat()}")
    head = [f"id: {timeline_id}", f"title: Timeline {index}", f"timezone: {draw(st.sampled_from(ZONES))}",
            f"audiences: [{', '.join(AUDIENCES)}]"]  # fmt: skip
    if draw(st.booleans()):
        head.append(f"reminders: {draw(reminder_lists())}")
    body = "".join("  - " + "\n    ".join(m.lines) + "\n" for m in drafts)
    return timeline_id, "\n".join(head) + "\nmilestones:\n" + body


@st.composite
def folders(draw: st.DrawFn) -> dict[str, str]:
    count = draw(st.integers(1, 2))
    return dict(draw(timeline_files(index)) for index in range(count))


# --- the property -----------------------------------------------------------------------------


def empty_store(engine: Engine) -> None:
    """Remove every timeline, milestone, completion, event and sync mark: each example starts afresh."""
    with transaction(engine, write=True) as session:
        for model in (SyncState, Event, CompletionRecord, Milestone, Timeline):
            session.execute(delete(model))


def write_folder(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


def moments(engine: Engine) -> Iterator[datetime]:
    """Look at the store from today, and from a little before its first milestone."""
    with transaction(engine) as session:
        views = load_views(session)
    yield datetime.now(UTC)
    if views:
        yield min(view.main_at for view in views) - timedelta(days=3)


class Clock:
    """The time the feeds and pages see; moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def check_feeds(calendars: Calendars, now: datetime) -> None:
    for ref in calendars.refs():
        body = calendars.feed(ref)
        assert body is not None
        parsed = Calendar.from_ical(body.body)
        recurring_ical_events.of(parsed).between(now - timedelta(days=30), now + timedelta(days=400))


def check_pages(client: TestClient, timelines: list[str]) -> None:
    for path in ["/", "/api/timelines", "/api/upcoming", *(f"/timelines/{t}" for t in timelines),
                 *(f"/api/timelines/{t}" for t in timelines)]:  # fmt: skip
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:500])


def check_upcoming_and_planning(engine: Engine, now: datetime) -> None:
    with transaction(engine) as session:
        views = load_views(session)
    process = Process(views, now=now)
    items = process.late() + list_upcoming(views, now=now, window=timedelta(days=400))
    json.dumps(upcoming_json(items, process))
    Console(file=io.StringIO(), width=120).print(upcoming_table(items, process))
    reader = Reader(1, AUDIENCES, None, None, "Asia/Tokyo")
    plan_reminders(views, [reader], now=now, horizon=timedelta(days=400), reminder_hour=9)
    for view in views:
        nearest_occurrence(view, now)


@settings(max_examples=40, deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.function_scoped_fixture,
          HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(files=folders())
def test_a_folder_that_validates_syncs_and_serves_everywhere_quickly(
    engine: Engine, tmp_path: Path, files: dict[str, str]
) -> None:
    folder = tmp_path / "schedules"
    write_folder(folder, files)
    empty_store(engine)

    _, problems = validate_paths([folder], folder, "Europe/Zurich")
    assert [str(p) for p in problems if not p.warning] == [], files  # a deadline on a weekend blocks nothing
    outcome = sync_folder(engine, folder, zone="Europe/Zurich", reminders=["14d", "7d", "1d"], now=datetime.now(UTC))
    assert outcome.ok, outcome.problems
    clock = Clock()
    calendars = Calendars(engine, base_url="https://tracker.example.org", cancelled_grace=timedelta(days=30),
                          clock=clock, check_interval=0)  # fmt: skip
    with TestClient(create_app(engine, calendars, settings=Settings())) as client:
        for now in moments(engine):
            clock.now = now
            check_feeds(calendars, now)
            check_pages(client, list(files))
            check_upcoming_and_planning(engine, now)


# --- the first-date probe -----------------------------------------------------------------------


@st.composite
def any_rules(draw: st.DrawFn) -> str:
    """A rule of the subset with BY values drawn at random: most do not start on a given date."""
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = [f"FREQ={freq}", f"INTERVAL={draw(st.sampled_from([1, 2, 5, 7, 14, 52]))}", "COUNT=3"]
    days = st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=3, unique=True)
    if draw(st.booleans()):
        parts.append(f"BYMONTH={draw(st.integers(1, 12))}")
    if freq in ("MONTHLY", "YEARLY") and draw(st.booleans()):
        parts.append(f"BYMONTHDAY={draw(st.integers(1, 31)) * draw(st.sampled_from([1, -1]))}")
    if freq == "MONTHLY" and draw(st.booleans()):
        parts.append(f"BYDAY={draw(st.integers(-5, 5).filter(bool))}{draw(st.sampled_from(WEEKDAYS))}")
    elif freq == "YEARLY" and draw(st.booleans()):
        parts += [f"BYWEEKNO={draw(st.integers(-53, 53).filter(bool))}", f"BYDAY={','.join(draw(days))}"]
    elif draw(st.booleans()):
        parts.append(f"BYDAY={','.join(draw(days))}")
    picks = len(parts) > 3 and not any(part.startswith("BYMONTHDAY=") for part in parts)  # ical.js ignores those
    if freq in ("MONTHLY", "YEARLY") and picks and draw(st.booleans()):
        parts.append(f"BYSETPOS={draw(st.integers(-3, 3).filter(bool))}")
    if freq == "YEARLY" and draw(st.booleans()):
        parts = [*parts[:3], f"BYYEARDAY={draw(st.integers(-366, 366).filter(bool))}"]
    return ";".join(parts)


def first_on_or_after(rule: str, first: date) -> date | None:
    """Return dateutil's first occurrence of *rule* from *first*, walked 400-year cycles later.

    The Gregorian calendar repeats every 400 years, so this is exact; it is the slow way the
    validation's probe (a twin year with the same layout) must agree with.
    """
    cycles = (9600 - first.year) // 400
    start = datetime.combine(first.replace(year=first.year + 400 * cycles), time(0))
    found = next(iter(rrulestr(rule, dtstart=start)), None)
    return None if found is None else found.date().replace(year=found.year - 400 * cycles)


@settings(max_examples=300, deadline=None)
@given(rule=any_rules(), first=st.dates(date(1900, 1, 1), date(2200, 12, 31)))
def test_the_first_date_probe_agrees_with_a_full_walk_of_the_calendar(rule: str, first: date) -> None:
    repeat = read_repeat(rule)
    checked = check_first_date(repeat, datetime.combine(first, time(9, 0)))
    # How far a rule reaches (past 2200, more dates than planning walks) is checked once its first date is right.
    # So is a day some months lack (29 February, the 31st), which the rule must then say what to do about.
    ignored = (" runs past ", " dates a year with no end", "calendars differ there")
    problems = [p for p in checked if not any(text in p for text in ignored)]
    truth = first_on_or_after(repeat.text, first)

    assert (problems == []) == (truth == first), problems
    hint = re.search(r"its first date after that is (\d{4}-\d\d-\d\d)", " ".join(problems))
    assert hint is None or date.fromisoformat(hint.group(1)) == truth
