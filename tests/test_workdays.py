"""Working days: `wd` offsets, holidays, `roll`, and the warning for a deadline on a day off.

The calendars are those of Geneva (the `holidays` package's CH-GE: 25 and 31 December, 1 January…)
and the seed's rule "documents at least 30 days before the meeting" (WG-WSIS report, para v).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import select

from tests.support.cli import tracker
from tests.support.factories import REPO, make_view, milestone_yaml, timeline_yaml, validate, write
from tests.support.timelines import NOW, WriteTimeline
from tests.support.web import serving, subscribe, sync
from tracker.delivery.notices import handle_events
from tracker.feeds.builder import item_description
from tracker.i18n.languages import load_language
from tracker.i18n.wording import describe_item
from tracker.store.engine import transaction
from tracker.store.models import Delivery
from tracker.timelines.completions import DoneRequest, record_done
from tracker.timelines.dates import DateError, Offset, Relative, parse_expr, parse_stored_expr
from tracker.timelines.diff import expr_text
from tracker.timelines.files import load_schedules
from tracker.timelines.pipeline import sync_folder
from tracker.timelines.resolve import DateRule, resolve_dates, rules_from_specs
from tracker.timelines.stored import load_views
from tracker.timelines.views import MilestoneView, Occurrence
from tracker.timelines.workdays import WorkCalendar, WorkdayError, add_workdays, read_calendar, roll_day
from tracker.web.layout import PageLanguage, languages
from tracker.web.pages import render_timeline
from tracker.web.picture import link_words, read_link

GENEVA = WorkCalendar(country="CH", subdivision="GE")
GENEVA_CLOSED_24TH = WorkCalendar(country="CH", subdivision="GE", closed=frozenset({date(2018, 12, 24)}))
GENEVA_HOLIDAYS = "holidays: {country: CH, subdivision: GE}"
ZURICH = ZoneInfo("Europe/Zurich")


# Arithmetic


@pytest.mark.parametrize(
    ("day", "count", "expected"),
    [
        (date(2018, 9, 24), -1, date(2018, 9, 21)),  # Monday - 1wd: the Friday before
        (date(2018, 9, 24), -10, date(2018, 9, 10)),  # two working weeks back
        (date(2018, 9, 21), 1, date(2018, 9, 24)),  # Friday + 1wd: Monday
        (date(2018, 9, 23), -1, date(2018, 9, 21)),  # from a Sunday: the Friday before
        (date(2018, 9, 22), 1, date(2018, 9, 24)),  # from a Saturday: the Monday after
        (date(2018, 9, 24), 0, date(2018, 9, 24)),
    ],
)
def test_working_days_skip_weekends(day: date, count: int, expected: date) -> None:
    assert add_workdays(WorkCalendar(), day, count) == expected


def test_working_days_skip_holidays_and_closures_across_the_year_end() -> None:
    # 3 Jan 2019 back: 2 Jan, (1 Jan, 31 Dec holidays; a weekend) 28, 27, 26 Dec, (25 holiday, 24 closed) 21 Dec.
    assert add_workdays(GENEVA_CLOSED_24TH, date(2019, 1, 3), -5) == date(2018, 12, 21)
    assert add_workdays(GENEVA_CLOSED_24TH, date(2018, 12, 28), 1) == date(2019, 1, 2)


def test_working_days_from_a_holiday_count_from_the_holiday_itself() -> None:
    assert add_workdays(GENEVA, date(2018, 12, 25), -1) == date(2018, 12, 24)
    assert add_workdays(GENEVA, date(2018, 12, 25), 1) == date(2018, 12, 26)
    assert add_workdays(GENEVA_CLOSED_24TH, date(2018, 12, 25), -1) == date(2018, 12, 21)


def test_a_roll_passes_over_holidays_on_its_target() -> None:
    # Sunday 30 December 2018: Monday 31 (Restoration Day) and Tuesday 1 January are holidays in Geneva.
    assert roll_day(GENEVA, date(2018, 12, 30), "next") == date(2019, 1, 2)
    closed_friday = WorkCalendar(country="CH", subdivision="GE", closed=frozenset({date(2018, 12, 28)}))
    assert roll_day(closed_friday, date(2018, 12, 30), "previous") == date(2018, 12, 27)
    assert roll_day(GENEVA, date(2018, 12, 27), "previous") == date(2018, 12, 27)  # a working day stays


def test_another_working_week_rolls_to_its_own_working_days() -> None:
    friday_saturday = WorkCalendar(weekend=frozenset({4, 5}))

    assert roll_day(friday_saturday, date(2018, 9, 21), "previous") == date(2018, 9, 20)
    assert roll_day(friday_saturday, date(2018, 9, 23), "previous") == date(2018, 9, 23)  # Sunday works


def test_a_calendar_without_working_days_is_an_error_not_a_hang() -> None:
    everything = WorkCalendar(weekend=frozenset(range(7)))

    with pytest.raises(WorkdayError, match="no working day"):
        add_workdays(everything, date(2018, 9, 24), 1)


def test_a_calendar_with_no_working_day_near_a_date_is_a_problem_at_its_line() -> None:
    rule = DateRule(("t", "m"), "Europe/Zurich", due=parse_expr("2018-09-22"), path="t.yaml", lines={"due": 7},
                    calendar=WorkCalendar(weekend=frozenset(range(7))), roll="next")  # fmt: skip

    _, problems = resolve_dates({rule.key: rule}, {})

    assert [str(p) for p in problems] == [
        "t.yaml:7: due: no working day within 4000 days after 2018-09-22: check the weekend"
    ]


# Expressions


def test_it_reads_working_day_offsets_and_writes_them_back() -> None:
    expr = parse_expr("meeting - 10wd + 1d")

    assert expr == Relative("meeting", offsets=(Offset(workdays=-10), Offset(days=1)))
    assert expr_text(expr) == "meeting - 10wd + 1d"
    assert parse_stored_expr("meeting - 10wd + 1d") == expr


def test_it_bounds_working_day_offsets() -> None:
    with pytest.raises(DateError, match="at most 1000wd"):
        parse_expr("meeting - 1001wd")


# Timeline files


def resolve_file(folder: Path, text: str) -> tuple[dict[str, str], dict[str, date | None], list[str]]:
    """Load and resolve one timeline: main dates and rolled-from dates by milestone, and problems as printed."""
    write(folder, "meeting.yaml", text)
    specs, problems = load_schedules([folder], "Europe/Zurich")
    dates, date_problems = resolve_dates(rules_from_specs(specs), {})
    mains = {key[1]: d.main.day.isoformat() for key, d in dates.items()}
    rolled = {key[1]: d.rolled_from for key, d in dates.items()}
    return mains, rolled, [str(p) for p in problems + date_problems]


SEED_MEETING = timeline_yaml(
    milestone_yaml("meeting", "CWG-WSIS-30, Geneva", starts="2017-02-07", ends="2017-02-08"),
    milestone_yaml("documents", owner="secretariat", due="meeting - 30d", roll="previous"),
    milestone_yaml("check", owner="secretariat", due="documents - 2wd"),
    id="cwg-wsis-30",
    title="30th meeting",
    holidays="{country: CH, subdivision: GE}",
)


def test_documents_30_days_before_a_meeting_move_to_the_working_day_before(folder: Path) -> None:
    # 7 February 2017 - 30 days is Sunday 8 January: the documents are due on Friday 6 January.
    mains, rolled, problems = resolve_file(folder, SEED_MEETING)

    assert mains["documents"] == "2017-01-06"
    assert rolled["documents"] == date(2017, 1, 8)
    assert mains["check"] == "2017-01-04"  # counts from the rolled date
    assert problems == []


def test_a_date_in_another_timeline_counts_from_the_rolled_date(folder: Path) -> None:
    write(folder, "follow.yaml", timeline_yaml(milestone_yaml("brief", due="cwg-wsis-30/documents + 3d"), id="f"))

    mains, _, problems = resolve_file(folder, SEED_MEETING)

    assert mains["brief"] == "2017-01-09"
    assert problems == []


def test_a_span_rolls_its_start_and_its_end(folder: Path) -> None:
    text = timeline_yaml(
        milestone_yaml("draft", due="2018-12-20"),
        milestone_yaml("window", starts="draft + 10d", ends="draft + 11d", roll="next"),
        holidays="{country: CH, subdivision: GE}",
    )

    write(folder, "t.yaml", text)
    specs, _ = load_schedules([folder], "Europe/Zurich")
    dates, problems = resolve_dates(rules_from_specs(specs), {})

    window = dates[("wsis-prizes", "window")]
    assert window.starts is not None and window.ends is not None
    assert (window.starts.day, window.ends.day) == (date(2019, 1, 2), date(2019, 1, 2))  # 30, 31 Dec: both off
    assert window.rolled_from == date(2018, 12, 30)
    assert problems == []


def test_a_deadline_on_a_day_off_without_roll_is_a_warning_at_its_line(folder: Path) -> None:
    text = timeline_yaml(
        milestone_yaml("meeting", starts="2017-02-07"),
        milestone_yaml("documents", owner="secretariat", due="meeting - 30d"),
        milestone_yaml("restoration", owner="secretariat", due="2018-12-31"),
        milestone_yaml("cancelled", due="2018-12-30", status="cancelled"),
        holidays="{country: CH, subdivision: GE}",
    )

    assert validate(folder) == []  # nothing before the file is written
    write(folder, "prizes.yaml", text)

    assert validate(folder) == [
        "schedules/prizes.yaml:13: warning: due: Sunday 8 January 2017 is not a working day; add 'roll: previous' "
        "(or 'roll: next') to move it to a working day, or count in working days ('meeting - 10wd')",
        "schedules/prizes.yaml:17: warning: due: Monday 31 December 2018 is not a working day; add 'roll: previous' "
        "(or 'roll: next') to move it to a working day, or count in working days ('meeting - 10wd')",
    ]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"holidays": "{country: XX}"}, "5: holidays: unknown country 'XX'"),
        ({"holidays": "{country: ch}"}, "5: holidays: unknown country 'ch' (did you mean 'CH'?)"),
        ({"holidays": "{country: CH, subdivision: GV}"}, "5: holidays: CH has no subdivision 'GV'"),
        ({"holidays": "{subdivision: GE}"}, "5: holidays: a subdivision needs its country, e.g. country: CH"),
        ({"holidays": "{country: CH, region: GE}"}, "5: unknown key 'region' in holidays"),
        ({"holidays": "{dates: [2018-12-24 12:00]}"}, "5: holidays: each date is a day (YYYY-MM-DD)"),
        ({"holidays": "{dates: [2018-02-30]}"}, "5: holidays: 2018-02-30 is not a date"),
        ({"weekend": "[sat, sunday]"}, "5: weekend: 'sunday' is not a day of the week (did you mean 'sun'?)"),
        ({"weekend": "[mon, tue, wed, thu, fri, sat, sun]"}, "5: 7 weekend days; a week needs a working day"),
    ],
)
def test_it_refuses_a_calendar_it_cannot_use_at_its_line(folder: Path, keys: dict[str, str], expected: str) -> None:
    write(folder, "prizes.yaml", timeline_yaml(milestone_yaml(due="2027-03-10"), **keys))

    problems = validate(folder)

    assert len(problems) == 1 and problems[0].startswith(f"schedules/prizes.yaml:{expected}")


def test_it_bounds_the_explicit_holiday_dates(folder: Path) -> None:
    many = ", ".join((date(2027, 1, 1) + timedelta(days=n)).isoformat() for n in range(501))
    write(folder, "prizes.yaml", timeline_yaml(milestone_yaml(due="2030-03-11"), holidays=f"{{dates: [{many}]}}"))

    assert validate(folder) == ["schedules/prizes.yaml:5: 501 holiday dates; list at most 500"]


def test_it_suggests_the_roll_it_knows_and_refuses_a_roll_on_a_repeat(folder: Path) -> None:
    text = timeline_yaml(
        milestone_yaml(due="2027-03-10", roll="prev"),
        milestone_yaml("yearly", due="2027-03-10", repeat="FREQ=YEARLY", roll="next"),
    )
    write(folder, "prizes.yaml", text)

    assert validate(folder) == [
        "schedules/prizes.yaml:9: roll 'prev' is not previous (the working day before) or next (the working day "
        "after) (did you mean 'previous'?)",
        "schedules/prizes.yaml:14: roll: a repeating milestone's dates are not rolled; give each date its own "
        "milestone",
    ]


def test_settings_give_every_timeline_a_calendar_and_refuse_what_they_cannot_use() -> None:
    calendar = read_calendar("fri,sat", "CH-GE", "2018-12-24")

    assert calendar == WorkCalendar(frozenset({4, 5}), "CH", "GE", frozenset({date(2018, 12, 24)}))
    for weekend, holidays, closures in [("sun,funday", "", ""), ("", "CH-XX", ""), ("", "", "24.12.2018")]:
        with pytest.raises(WorkdayError):
            read_calendar(weekend, holidays, closures)


# Sync, completions and the plan


DRAFTING = f"""
    id: drafting
    title: Drafting
    timezone: Europe/Zurich
    {GENEVA_HOLIDAYS}
    milestones:
      - id: draft
        title: Draft posted
        due: 2018-12-20
      - id: comments
        title: Comments
        due: draft.done + 3wd
      - id: review
        title: Review
        due: draft.done + 2d
        roll: next
"""


def test_a_completion_moves_dates_on_the_timeline_s_own_working_days(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("drafting", DRAFTING)
    outcome = sync_folder(
        engine, schedules, zone="Europe/Zurich", reminders=["1d"], now=datetime(2018, 12, 1, tzinfo=UTC)
    )
    assert outcome.ok, outcome.problems
    assert local_days(engine) == {"draft": "2018-12-20", "comments": "2018-12-26", "review": "2018-12-24"}

    done_at = datetime(2018, 12, 27, 9, 0, tzinfo=UTC)
    with transaction(engine, write=True) as session:
        views = {f"{v.timeline_id}/{v.key}": v for v in load_views(session)}
        record_done(session, DoneRequest("drafting/draft", done_at), views["drafting/draft"], now=done_at)

    # Done on Thursday 27 December: + 3wd skips 31 December and 1 January (Geneva holidays): 3 January;
    # + 2d is Saturday 29 December, rolled to the next working day after the holidays: 2 January.
    assert local_days(engine) == {"draft": "2018-12-20", "comments": "2019-01-03", "review": "2019-01-02"}


def local_days(engine: Engine) -> dict[str, str]:
    with transaction(engine) as session:
        views = load_views(session)
    return {v.key: v.main_at.astimezone(ZURICH).date().isoformat() for v in views}


def test_plan_and_validate_say_why_a_date_moved(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("cwg-wsis-30", SEED_MEETING)
    write_timeline("late", timeline_yaml(milestone_yaml(due="2017-01-08"), id="late", title="Late"))

    validated = tracker("validate", env=env, cwd=tmp_path)
    strict = tracker("validate", "--strict", env=env, cwd=tmp_path)
    planned = tracker("plan", env=env, cwd=tmp_path)

    assert validated.returncode == 0 and "late.yaml:8: warning: due: Sunday 8 January 2017" in validated.stderr
    assert strict.returncode == 1
    assert planned.returncode == 0, planned.stderr
    line = next(line for line in planned.stdout.splitlines() if "cwg-wsis-30/documents" in line)
    assert line.rstrip().endswith("Fri, 6 Jan 2017  (moved from Sunday, 8 January 2017, a non-working day)")


# What members read: pages, feeds and emails say why the date moved


ROLLED = {"rolled_from": date(2017, 3, 11), "summary": "Comments go to the secretariat."}


def test_the_timeline_page_says_why_the_date_moved_in_the_reader_s_language() -> None:
    view = make_view(**ROLLED)
    chosen = PageLanguage(languages()["fr"], explicit=True)

    page = render_timeline([view], base_url="https://tracker.example.org", now=NOW, chosen=chosen, where=("/", {}))

    assert "Date déplacée : le samedi 11 mars 2017 est un jour non ouvré." in page


def test_a_feed_item_says_why_the_date_moved_before_its_summary() -> None:
    view = make_view(**ROLLED)

    description = item_description(view, expand_once(view), "https://tracker.example.org")

    assert description.startswith(
        "Moved from Saturday, 11 March 2017, a non-working day.\nComments go to the secretariat."
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("en", "Moved from Saturday, 11 March 2017, a non-working day."),
        ("ru", "Дата перенесена: суббота, 11 марта 2017\u202fг. — нерабочий день."),  # Babel's narrow space
        ("zh", "日期已调整：2017年3月11日星期六为非工作日。"),
    ],
)
def test_an_email_says_why_the_date_moved_in_the_reader_s_language(code: str, expected: str) -> None:
    view = make_view(**ROLLED)

    text = describe_item(expand_once(view), load_language(REPO / "locale", code), "Europe/Zurich", "https://x.org")

    assert text.summary == f"{expected}\nComments go to the secretariat."


def expand_once(view: MilestoneView) -> Occurrence:
    return Occurrence(view, "", view.due_at, view.starts_at, view.ends_at)


def test_the_documented_example_moves_the_documents_to_the_friday_before(folder: Path) -> None:
    docs = (REPO / "docs" / "timelines.md").read_text(encoding="utf-8")
    section = docs[docs.index("## Working days") :]
    example = section[section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml"))]

    mains, rolled, problems = resolve_file(folder, example)

    assert mains == {"meeting": "2017-02-07", "secretariat-documents": "2017-01-06", "documents-check": "2017-01-04"}
    assert rolled["secretariat-documents"] == date(2017, 1, 8)
    assert problems == []


RESTORATION = timeline_yaml(milestone_yaml("closing", due="2018-12-31", roll="next"), id="closing", title="Closing")


def test_tracker_toml_gives_every_timeline_its_holidays(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("closing", RESTORATION.replace("    roll: next\n", ""))
    plain = tracker("validate", env=env, cwd=tmp_path)
    (tmp_path / "tracker.toml").write_text('holidays = "CH-GE"\n', encoding="utf-8")
    geneva = tracker("validate", env=env, cwd=tmp_path)
    (tmp_path / "tracker.toml").write_text('holidays = "CH-XX"\n', encoding="utf-8")
    unknown = tracker("validate", env=env, cwd=tmp_path)

    assert plain.returncode == 0 and "warning" not in plain.stderr  # 31 December 2018 is a Monday
    assert geneva.returncode == 0 and "closing.yaml:8: warning: due: Monday 31 December 2018" in geneva.stderr
    assert unknown.returncode == 2 and "holidays: Value error, CH has no subdivision 'XX'; it has: AG, AI" in " ".join(
        unknown.stderr.split()
    )


def test_a_sync_with_other_default_holidays_is_no_no_op(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("closing", RESTORATION)
    now = datetime(2018, 12, 1, tzinfo=UTC)
    sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["1d"], now=now)

    again = sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["1d"], now=now, calendar=GENEVA)

    assert again.plan is not None
    assert [(c.kind, c.rolled_from) for c in again.plan.changes] == [("rescheduled", date(2018, 12, 31))]
    assert local_days(engine) == {"closing": "2019-01-02"}


def rolled_deadline(due: str) -> str:
    return timeline_yaml(milestone_yaml("closing", due=due, roll="previous"), id="closing", title="Closing")


def test_a_new_reason_for_the_same_date_reaches_the_feed_without_a_changed_notice(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    # Saturday 22, then Sunday 23 December 2018: both roll to Friday 21; only the reason changes.
    write_timeline("closing", rolled_deadline("2018-12-22"))
    now = datetime(2018, 12, 1, tzinfo=UTC)
    sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["1d"], now=now)
    subscribe(engine, "amina@mission.example.org")
    with transaction(engine, write=True) as session:
        handle_events(session, now)  # the first pass: what came before is history

    with serving(engine, 0, REPO / "locale") as (http, _):
        before = unfold(http.get("/feeds/closing.ics").text)
        write_timeline("closing", rolled_deadline("2018-12-23"))
        again = sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["1d"], now=now)
        after = unfold(http.get("/feeds/closing.ics").text)
    with transaction(engine, write=True) as session:
        handle_events(session, now)
        notices = session.exec(select(Delivery).where(Delivery.kind == "changed")).all()

    assert again.plan is not None
    assert [(c.kind, c.fields) for c in again.plan.changes] == [("updated", ("rolled_from",))]
    assert "Moved from Saturday, 22 December 2018" in before and "SEQUENCE:0" in before
    assert "Moved from Sunday, 23 December 2018" in after and "SEQUENCE:1" in after
    assert "DTSTART;VALUE=DATE:20181221" in after
    assert notices == []  # the date did not move: nothing to tell members by email


def unfold(ics: str) -> str:
    """The feed's lines unfolded, with its escaped commas read as commas."""
    return ics.replace("\r\n ", "").replace("\r\n", "\n").replace("\\,", ",")


# A closures file shared by timelines

CLOSURES = """\
# ITU closures
2018-12-24  Christmas Eve
2018-12-27
"""


def shared_closures(name: str, due: str) -> str:
    return timeline_yaml(milestone_yaml(due=due, roll="previous"), id=name, title=name, holidays="{file: closures.txt}")


def test_timelines_share_a_file_of_closed_days(folder: Path) -> None:
    write(folder, "closures.txt", CLOSURES)
    write(folder, "other.yaml", shared_closures("other", "2018-12-24").replace("nominations", "eve"))
    meeting = timeline_yaml(
        milestone_yaml("meeting", starts="2018-12-28"),
        milestone_yaml("documents", due="meeting - 1wd"),
        holidays="{file: closures.txt}",
    )

    mains, rolled, problems = resolve_file(folder, meeting)

    assert mains["documents"] == "2018-12-26"  # the 27th is closed (no country: the 25th is not a holiday here)
    assert (mains["eve"], rolled["eve"]) == ("2018-12-21", date(2018, 12, 24))  # the closed 24th, rolled back
    assert problems == []


def test_a_bad_closures_file_is_reported_at_its_own_line_and_a_bad_name_at_the_timeline_s(folder: Path) -> None:
    write(folder, "closures.txt", CLOSURES + "24.12.2018\n")
    write(folder, "a.yaml", shared_closures("a", "2018-12-21"))
    write(folder, "b.yaml", shared_closures("b", "2018-12-21"))
    write(folder, "c.yaml", shared_closures("c", "2018-12-21").replace("closures.txt", "../closures.txt"))
    write(folder, "d.yaml", shared_closures("d", "2018-12-21").replace("closures.txt", "missing.txt"))

    problems = validate(folder)

    assert problems[0] == (
        "schedules/c.yaml:5: holidays: file '../closures.txt' must be the name of a .txt file in the schedules "
        "folder, e.g. closures.txt"
    )
    assert problems[1].startswith("schedules/closures.txt:4: '24.12.2018' is not a date: write one closed day a line")
    assert problems[2].startswith("schedules/d.yaml:5: holidays: missing.txt: cannot read file")
    assert len(problems) == 3  # the closures file's problem once, though two timelines share it


def test_a_new_closed_day_in_the_shared_file_moves_dates_at_the_next_sync(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    (schedules / "closures.txt").write_text(CLOSURES, encoding="utf-8")
    write_timeline("meeting", shared_closures("meeting", "2018-12-20"))
    now = datetime(2018, 12, 1, tzinfo=UTC)
    sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["1d"], now=now)

    (schedules / "closures.txt").write_text(CLOSURES + "2018-12-20\n", encoding="utf-8")
    again = sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["1d"], now=now)

    assert again.plan is not None and [c.kind for c in again.plan.changes] == ["rescheduled"]
    assert local_days(engine) == {"nominations": "2018-12-19"}


@settings(max_examples=200, deadline=None)
@given(
    day=st.dates(date(2015, 1, 1), date(2030, 12, 31)),
    count=st.integers(-60, 60).filter(bool),
    weekend=st.frozensets(st.integers(0, 6), max_size=6),
)
def test_a_working_day_offset_lands_on_a_working_day_that_many_working_days_away(
    day: date, count: int, weekend: frozenset[int]
) -> None:
    calendar = WorkCalendar(weekend, "CH", "GE")

    moved = add_workdays(calendar, day, count)

    step = 1 if count > 0 else -1
    passed = [day + timedelta(days=step * n) for n in range(1, abs((moved - day).days) + 1)]  # up to moved
    assert calendar.is_working(moved) and (moved > day) == (count > 0)
    assert sum(calendar.is_working(d) for d in passed) == abs(count)


@pytest.mark.parametrize(
    ("expr", "code", "expected"),
    [
        ("meeting - 10wd", "en", "10 working days before “meeting”"),
        ("meeting - 1wd", "fr", "1 jour ouvré avant « meeting »"),
        ("meeting - 2wd - 4h", "en", "2 working days and 4 hours before “meeting”"),
    ],
)
def test_the_page_words_a_working_day_rule(expr: str, code: str, expected: str) -> None:
    link = read_link(make_view(due_expr=expr))

    assert link is not None and link_words(link, languages()[code]) == expected


def test_the_api_gives_the_date_a_roll_moved_from(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("cwg-wsis-30", SEED_MEETING)
    sync(engine, schedules)

    with serving(engine, 0, REPO / "locale") as (http, _):
        milestones = {m["key"]: m for m in http.get("/api/timelines/cwg-wsis-30").json()["milestones"]}

    documents = milestones["documents"]
    assert documents["due"]["local"] == "2017-01-06T23:59:59+01:00"
    assert (documents["rolled_from"], milestones["check"]["rolled_from"]) == ("2017-01-08", None)
