"""What `tracker validate` accepts runs: hostile or careless timeline files are refused, quickly, at their line.

Each test is one way a file that once validated (or crashed validation) took the main job
down: deep nesting, rules that never end or never match, offsets beyond the calendar,
files that are not files. Every refusal reads `FILE:LINE: message` and names the fix.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.cli import TRACKER
from tests.support.factories import milestone_yaml, timeline_yaml, validate, write


def problems_in(folder: Path, text: str) -> list[str]:
    write(folder, "forum.yaml", text)
    return validate(folder)


def run_validate(folder: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    """Run `tracker validate` as the secretariat does, in its own process (a crash shows as a signal)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env["TRACKER_SCHEDULES"] = str(folder)
    return subprocess.run(
        [TRACKER, "validate", *paths], env=env, cwd=folder.resolve().parent, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def repeating(rule: str, first: str = "2027-03-15", field: str = "starts") -> str:
    """A one-milestone timeline whose milestone (on line 7) repeats by *rule* from *first*."""
    return f"""\
        id: wsis-forum
        title: WSIS Forum
        timezone: Europe/Zurich
        milestones:
          - id: forum
            title: WSIS Forum
            repeat: {rule}
            {field}: {first}
        """


# The files themselves


@pytest.mark.slow
def test_50000_nested_brackets_are_refused_at_their_line_not_a_crash(folder: Path) -> None:
    write(folder, "deep.yaml", "id: deep\ntitle: Deep\nmilestones: " + "[" * 50_000 + "\n")

    result = run_validate(folder)

    assert result.returncode == 1, f"exit {result.returncode}: {result.stderr[-500:]}"
    assert "schedules/deep.yaml:3: lists and mappings nest more than 100 levels deep" in result.stderr


def test_deep_block_nesting_is_refused_too(folder: Path) -> None:
    text = "id: deep\ntitle: Deep\nmilestones:\n" + "".join(f"{' ' * i}- \n" for i in range(0, 400, 2)) + "  x\n"

    problems = problems_in(folder, text)

    assert problems == ["schedules/forum.yaml:103: lists and mappings nest more than 100 levels deep; "
                        "a timeline file needs 4 at most"]  # fmt: skip


@pytest.mark.slow
def test_validate_refuses_a_device_instead_of_reading_it_for_ever(folder: Path) -> None:
    result = run_validate(folder, "/dev/zero")

    assert result.returncode == 1
    assert "/dev/zero:1: not a regular file" in result.stderr


@pytest.mark.slow
def test_validate_refuses_a_named_pipe_instead_of_waiting_on_it(folder: Path) -> None:
    os.mkfifo(folder / "pipe.yaml")

    result = run_validate(folder, "schedules/pipe.yaml")

    assert result.returncode == 1
    assert "schedules/pipe.yaml:1: not a regular file" in result.stderr


def test_a_named_pipe_in_the_folder_is_reported_not_skipped(folder: Path) -> None:
    write(folder, "prizes.yaml", timeline_yaml())
    os.mkfifo(folder / "pipe.yaml")

    assert validate(folder) == [
        "schedules/pipe.yaml:1: not a regular file: a timeline file must be a plain file in the schedules folder"
    ]


def test_a_link_out_of_the_schedules_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(timeline_yaml(), encoding="utf-8")
    (folder / "prizes.yaml").symlink_to(outside)

    assert validate(folder) == [
        "schedules/prizes.yaml:1: links to a file outside the schedules folder, whose changes would go unseen: "
        "copy the file into the folder"
    ]


def test_a_link_to_itself_is_reported_not_a_crash(folder: Path) -> None:
    write(folder, "prizes.yaml", timeline_yaml())
    (folder / "loop.yaml").symlink_to("loop.yaml")

    assert validate(folder) == ["schedules/loop.yaml:1: cannot read file: Too many levels of symbolic links"]


def test_a_file_over_one_megabyte_is_refused_without_being_parsed(folder: Path) -> None:
    write(folder, "big.yaml", timeline_yaml(summary="x" * 1_100_000))

    assert validate(folder) == [
        "schedules/big.yaml:1: the file has more than 1,000,000 bytes (1 MB), the most a timeline file may have: "
        "split it into several timelines"
    ]


def test_more_than_1000_milestones_in_one_file_are_refused(folder: Path) -> None:
    many = [milestone_yaml(f"m{i}", due="2027-03-10") for i in range(1001)]
    write(folder, "many.yaml", timeline_yaml(*many))

    assert validate(folder) == [
        "schedules/many.yaml:6: 1001 milestones; split the file into several timelines: one may have at most 1000"
    ]


def test_an_alias_repeated_many_times_is_refused_in_bounded_time(folder: Path) -> None:
    offsets = ", ".join(["1d"] * 20_000)
    items = "".join("  - *m\n" for _ in range(900))
    first = f"  - &m {{id: a, title: A, due: 2027-03-10, reminders: [{offsets}]}}\n"
    text = f"id: wsis-forum\ntitle: Forum\nmilestones:\n{first}{items}"
    write(folder, "forum.yaml", text)

    started = time.process_time()
    problems = validate(folder)

    assert time.process_time() - started < 2
    assert problems[0] == "schedules/forum.yaml:4: 20000 reminders; list at most 10"


def test_an_id_longer_than_the_store_holds_is_refused(folder: Path) -> None:
    long_id = "a" * 101

    assert problems_in(folder, timeline_yaml(id=long_id)) == [
        f"schedules/forum.yaml:1: id '{'a' * 39}…' is 101 characters long; keep it to 100"
    ]


# Repeating milestones


@pytest.mark.parametrize("frequency", ["SECONDLY", "MINUTELY", "HOURLY"])
def test_a_rule_more_frequent_than_daily_is_refused(folder: Path, frequency: str) -> None:
    assert problems_in(folder, repeating(f"FREQ={frequency}")) == [
        f"schedules/forum.yaml:7: repeat: FREQ={frequency} is too frequent: repeat DAILY, WEEKLY, MONTHLY or YEARLY"
    ]


@pytest.mark.parametrize("count", ["999999999999", "1001", "0"])
def test_a_count_beyond_1000_is_refused(folder: Path, count: str) -> None:
    assert problems_in(folder, repeating(f"FREQ=YEARLY;COUNT={count}")) == [
        f"schedules/forum.yaml:7: repeat: COUNT={count} is out of range: count from 1 to 1000 occurrences"
    ]


def test_each_out_of_range_part_of_a_rule_is_named(folder: Path) -> None:
    assert problems_in(folder, repeating("FREQ=YEARLY;BYMONTH=13;BYDAY=99MO;INTERVAL=0")) == [
        "schedules/forum.yaml:7: repeat: BYDAY=99MO is out of range: number a weekday from 1 to 5 "
        "(or -1 to -5 from the end) within a month",
        "schedules/forum.yaml:7: repeat: BYMONTH=13 is out of range: months are 1 to 12",
        "schedules/forum.yaml:7: repeat: INTERVAL=0 is out of range: repeat every 1 to 1000 periods",
    ]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=YEARLY;BYHOUR=9", "BYHOUR is not supported: a repeating milestone keeps the time of its first date"),
        (
            "FREQ=YEARLY;BYEASTER=0",
            "unknown part 'BYEASTER': use FREQ, INTERVAL, COUNT, UNTIL, BYMONTH, BYMONTHDAY, "
            "BYDAY, BYYEARDAY, BYWEEKNO, BYSETPOS or WKST",
        ),
        ("FREQ=YEARLY;FREQ=MONTHLY", "FREQ is given twice"),
        ("COUNT=5", "FREQ is missing: e.g. FREQ=YEARLY;COUNT=5"),
        ("FREQ=YEARLY;COUNT=5;UNTIL=20300101", "give COUNT or UNTIL, not both"),
        ("FREQ=WEEKLY;BYDAY=2MO", "BYDAY=2MO: a weekly rule takes plain weekdays (MO, TU, ...), not numbered ones"),
        ("FREQ=MONTHLY;BYWEEKNO=3", "BYWEEKNO needs FREQ=YEARLY"),
        ("FREQ=YEARLY;BYMONTHDAY=0", "BYMONTHDAY=0 is out of range: days of the month are 1 to 31 (or -1 to -31)"),
        ("FREQ=YEARLY;BYSETPOS=1", "BYSETPOS needs another BY part to pick from, e.g. BYDAY=MO,TU,WE,TH,FR"),
        ("FREQ=YEARLY;" + "BYMONTH=3;" * 30, "the rule is 312 characters long; write it in at most 200"),
        ("FREQ=DAILY", "a daily rule needs an end (COUNT or UNTIL), e.g. FREQ=DAILY;COUNT=30"),
        ("FREQ=YEARLY;UNTIL=20270301", "UNTIL=20270301 is before the first date, 2027-03-15: the rule yields no date"),
        ("FREQ=YEARLY;UNTIL=20800101", "UNTIL=20800101 is more than 50 years after the first date, 2027-03-15"),
        (
            "FREQ=DAILY;UNTIL=20300315",
            "UNTIL=20300315 lets a daily rule run 1097 times; "
            "end it within 1000 days of the first date, or write COUNT",
        ),
        (
            "FREQ=YEARLY;UNTIL=20300101T000000Z",
            "UNTIL=20300101T000000Z: write UNTIL as YYYYMMDD or YYYYMMDDTHHMMSS in the timeline's zone, without Z",
        ),
    ],
)
def test_a_rule_outside_the_supported_subset_is_refused_with_the_fix(folder: Path, rule: str, message: str) -> None:
    assert problems_in(folder, repeating(rule)) == [f"schedules/forum.yaml:7: repeat: {message}"]


def test_a_rule_that_never_yields_a_date_is_refused_at_once(folder: Path) -> None:
    started = time.process_time()
    problems = problems_in(folder, repeating("FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30", first="2027-02-27"))

    assert time.process_time() - started < 1
    assert problems == [
        "schedules/forum.yaml:7: repeat: 2027-02-27 is not a date of FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30: "
        "start the milestone on a date the rule yields"
    ]


def test_a_daily_rule_stepping_whole_weeks_past_its_weekdays_yields_nothing(folder: Path) -> None:
    assert problems_in(folder, repeating("FREQ=DAILY;INTERVAL=14;BYDAY=TU;COUNT=5")) == [
        "schedules/forum.yaml:7: repeat: FREQ=DAILY;INTERVAL=14;BYDAY=TU;COUNT=5 yields no date at all: "
        "every step lands on Monday, which its BYDAY leaves out"
    ]


def test_a_rule_whose_first_date_is_not_an_occurrence_is_refused_with_the_date_it_means(folder: Path) -> None:
    # Calendars show the first date as an occurrence, reminders would not: the two must agree.
    assert problems_in(folder, repeating("FREQ=YEARLY;BYMONTH=2;BYDAY=-1MO", first="2027-02-25")) == [
        "schedules/forum.yaml:7: repeat: 2027-02-25 is not a date of FREQ=YEARLY;BYMONTH=2;BYDAY=-1MO "
        "(its first date after that is 2028-02-28): start the milestone on a date the rule yields"
    ]


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=YEARLY",
        "FREQ=YEARLY;BYMONTH=3;BYDAY=3MO",
        "freq=monthly;byday=3mo;count=12",
        "FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20270601",
        "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=30",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=11",
        "FREQ=YEARLY;BYWEEKNO=11;BYDAY=MO",
        "FREQ=YEARLY;BYYEARDAY=74;INTERVAL=2",
        "RRULE:FREQ=YEARLY;BYMONTHDAY=15,-17;BYMONTH=3;WKST=SU",
    ],
)
def test_a_rule_in_the_supported_subset_validates(folder: Path, rule: str) -> None:
    assert problems_in(folder, repeating(rule, first="2027-03-15")) == []


# Dates and offsets


def test_an_offset_of_5000_digits_is_a_problem_not_a_crash(folder: Path) -> None:
    text = timeline_yaml(
        milestone_yaml("meeting", starts="2027-03-15"),
        milestone_yaml("documents", due="meeting - " + "9" * 5000 + "d"),
    )

    assert problems_in(folder, text) == [
        "schedules/forum.yaml:11: due: the date is 5011 characters long; write it in at most 200 (e.g. 'meeting - 30d')"
    ]


def test_a_36kb_due_expression_is_refused_at_once(folder: Path) -> None:
    # Each dash could end the name or start an offset: a backtracking pattern tried both, quadratically.
    expression = "meeting" + "-1d" * 12_000 + "!"
    text = timeline_yaml(milestone_yaml("meeting", starts="2027-03-15"), milestone_yaml("documents", due=expression))

    started = time.process_time()
    problems = problems_in(folder, text)

    assert time.process_time() - started < 0.5
    assert problems == [
        "schedules/forum.yaml:11: due: the date is 36008 characters long; write it in at most 200 "
        "(e.g. 'meeting - 30d')"
    ]


def test_an_expression_with_too_many_terms_is_refused(folder: Path) -> None:
    text = timeline_yaml(
        milestone_yaml("meeting", starts="2027-03-15"), milestone_yaml("documents", due="meeting" + " + 1d" * 11)
    )

    assert problems_in(folder, text) == [
        "schedules/forum.yaml:11: due: 11 offsets; a relative date adds at most 10 (e.g. 'meeting - 30d')"
    ]


@pytest.mark.parametrize("offset", ["36526d", "5218w", "876601h", "52596001m", "9" * 150 + "d"])
def test_an_expression_offset_beyond_100_years_is_refused(folder: Path, offset: str) -> None:
    text = timeline_yaml(
        milestone_yaml("meeting", starts="2027-03-15"), milestone_yaml("documents", due=f"meeting - {offset}")
    )

    shown = offset if len(offset) < 14 else "999999999999…"
    assert problems_in(folder, text) == [
        f"schedules/forum.yaml:11: due: the offset {shown!r} is more than 100 years (at most 36525d, 5217w, 876600h)"
    ]


@pytest.mark.parametrize("text", ["2201-01-01", "1899-12-31", "2999-06-01"])
def test_a_year_outside_1900_to_2200_is_refused(folder: Path, text: str) -> None:
    assert problems_in(folder, timeline_yaml(milestone_yaml(due=text))) == [
        f"schedules/forum.yaml:8: due: {text} is out of range: write a year from 1900 to 2200"
    ]


def test_a_relative_date_that_leaves_1900_to_2200_is_refused_at_its_line(folder: Path) -> None:
    text = timeline_yaml(
        milestone_yaml("meeting", starts="2200-11-15"), milestone_yaml("report", due="meeting.end + 8w")
    )

    assert problems_in(folder, text) == ["schedules/forum.yaml:11: due: the date falls outside the years 1900 to 2200"]


@pytest.mark.parametrize("offset", ["99999w", "367d", "30m", "0d"])
def test_a_reminder_outside_an_hour_to_a_year_is_refused(folder: Path, offset: str) -> None:
    text = timeline_yaml(milestone_yaml(due="2027-03-10", reminders=f"[7d, {offset}]"))

    assert problems_in(folder, text) == [
        f"schedules/forum.yaml:9: reminder {offset!r} is out of range: remind from 1h to 366d (about a year) before"
    ]


# Text shown to people


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("title", '"Comments\\e[2J due"', "title: character 9 is a control character (U+001B)"),
        ("title", '"Comments \\u202edue"', "title: character 10 is a bidirectional control (U+202E)"),
        ("title", '"Comments\\0"', "title: character 9 is a control character (U+0000)"),
        ("title", '"Comments\\LBEGIN:VEVENT"', "title: character 9 is a line separator (U+2028)"),
        ("location", '"Geneva\\nBEGIN:VEVENT"', "location: character 7 is a line break (U+000A)"),
        ("title", "x" * 301, "title is 301 characters long; keep it to 300"),
    ],
)
def test_text_with_control_characters_or_beyond_its_length_is_refused_at_its_line(
    folder: Path, key: str, value: str, message: str
) -> None:
    fields = {"owner": "membership", "due": "2027-03-10", key: value}
    text = timeline_yaml(
        milestone_yaml(**fields) if key != "title" else milestone_yaml(title=value, **fields_without(fields, "title"))
    )

    problems = problems_in(folder, text)

    assert len(problems) == 1 and problems[0].startswith("schedules/forum.yaml:") and message in problems[0], problems


def fields_without(fields: dict[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k != key}


def test_a_summary_may_span_lines_but_holds_no_other_control_character(folder: Path) -> None:
    good = timeline_yaml(summary='"First paragraph.\\n\\nSecond one."')
    bad = timeline_yaml(summary='"First paragraph.\\n\\tSecond\\x07 one."')

    assert problems_in(folder, good) == []
    assert problems_in(folder, bad) == [
        "schedules/forum.yaml:5: summary: character 18 is a control character (U+0009); remove it"
    ]


def test_an_endless_rule_with_more_dates_than_planning_walks_by_2200_is_refused(folder: Path) -> None:
    every_day = milestone_yaml(owner="membership", due="1905-01-02", repeat="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU")
    twice_a_week = milestone_yaml(owner="membership", due="1905-01-02", repeat="FREQ=WEEKLY;BYDAY=MO,TH")

    assert problems_in(folder, timeline_yaml(twice_a_week)) == []
    [problem] = problems_in(folder, timeline_yaml(every_day))
    assert "gives 365 dates a year with no end, more than the 40,000 a rule may give by 2200" in problem
    assert "give it an end (COUNT, at most 1000, or UNTIL)" in problem


def test_a_counted_rule_that_runs_past_2200_is_refused(folder: Path) -> None:
    rule = milestone_yaml(owner="membership", due="1999-12-31", repeat="FREQ=YEARLY;INTERVAL=1000;COUNT=9")

    [problem] = problems_in(folder, timeline_yaml(rule))

    assert "FREQ=YEARLY;INTERVAL=1000;COUNT=9 runs past 2200 (to 2999-12-31 and on): lower COUNT or INTERVAL" in problem
