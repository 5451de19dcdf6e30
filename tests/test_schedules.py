"""Loading and validating timeline files: every problem as `FILE:LINE: message`, all at once.

Pure: files in a temporary folder, no store. Each test writes the smallest file
that shows one kind of problem and asserts what the secretariat reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.factories import GOOD_TIMELINES, REPO_SCHEDULES, milestone_yaml, timeline_yaml, validate, write
from tracker.timelines.dates import Offset
from tracker.timelines.files import find_files, load_schedules, load_text, read_files
from tracker.timelines.validation import validate_paths


def problems_in(folder: Path, text: str, name: str = "prizes.yaml") -> list[str]:
    write(folder, name, text)
    return validate(folder)


# Files that are not timelines at all


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            """\
            id: wsis-prizes
            title: WSIS Prizes
             milestones:
            """,
            "schedules/prizes.yaml:3: YAML syntax: mapping values are not allowed in this context",
        ),
        (
            "id: wsis-prizes\n\ttitle: WSIS Prizes\n",
            "schedules/prizes.yaml:2: YAML syntax: found a tab character that violates indentation",
        ),
        (
            """\
            id: wsis-prizes
            title: WSIS Prizes
            audiences: [membership, secretariat
            milestones:
            """,
            "schedules/prizes.yaml:4: YAML syntax: did not find expected ',' or ']'",
        ),
    ],
    ids=["indentation", "tab", "unclosed-bracket"],
)
def test_it_points_at_the_line_of_a_yaml_syntax_error(folder: Path, text: str, expected: str) -> None:
    assert problems_in(folder, text) == [expected]


def test_it_points_at_a_character_yaml_does_not_accept_on_one_line(folder: Path) -> None:
    text = "id: wsis-prizes\ntitle: Prix é WSIS\nsummary: pasted\x1ftext\nmilestones: []\n"

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:3: YAML syntax: control characters are not allowed (U+001F)"
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "# WSIS Prizes: to be written\n"])
def test_it_says_an_empty_file_is_empty(folder: Path, text: str) -> None:
    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:1: empty file: a timeline needs at least id, title and milestones"
    ]


@pytest.mark.parametrize("text", ["- id: wsis-prizes\n- title: WSIS Prizes\n", "WSIS Prizes\n", "null\n"])
def test_it_rejects_a_file_whose_top_level_is_not_a_mapping(folder: Path, text: str) -> None:
    assert problems_in(folder, text) == ["schedules/prizes.yaml:1: timeline must be a mapping of keys to values"]


def test_it_rejects_several_documents_in_one_file(folder: Path) -> None:
    text = timeline_yaml() + "---\n" + timeline_yaml(id="other")

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:10: YAML syntax: expected a single document in the stream, but found another document"
    ]


# Keys


def test_it_rejects_an_unknown_key_and_suggests_the_one_meant(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        remiders: [7d]
        milestones:
          - id: nominations
            titel: Nominations
            due: 2027-03-10
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:3: unknown key 'remiders' in timeline (did you mean 'reminders'?)",
        "schedules/prizes.yaml:5: milestone is missing 'title'",
        "schedules/prizes.yaml:6: unknown key 'titel' in milestone (did you mean 'title'?)",
    ]


def test_it_names_every_missing_required_key(folder: Path) -> None:
    text = """\
        summary: Prizes for WSIS projects
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:1: timeline is missing 'id'",
        "schedules/prizes.yaml:1: timeline is missing 'milestones'",
        "schedules/prizes.yaml:1: timeline is missing 'title'",
    ]


def test_it_names_a_milestone_missing_its_id_or_title_at_the_milestone(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        milestones:
          - id: nominations
            title: Nominations
            due: 2027-03-10
          - due: 2027-04-10
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:7: milestone is missing 'id'",
        "schedules/prizes.yaml:7: milestone is missing 'title'",
    ]


def test_a_reference_to_a_milestone_that_could_not_be_read_reports_only_the_milestone(folder: Path) -> None:
    text = """\
        id: cwg-wsis-32
        title: 32nd meeting
        milestones:
          - id: meeting
            starts: 2018-01-24
          - id: documents
            title: Documents available
            due: meeting - 30d
        """

    assert problems_in(folder, text) == ["schedules/prizes.yaml:4: milestone is missing 'title'"]


def test_it_rejects_a_key_written_twice_at_the_second_one(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        milestones:
          - id: nominations
            title: Nominations
            due: 2027-03-10
            due: 2027-03-17
        """

    assert problems_in(folder, text) == ["schedules/prizes.yaml:7: duplicate key 'due' in milestone"]


@pytest.mark.parametrize(
    ("key", "value", "line", "message"),
    [
        (
            "kind",
            "meting",
            3,
            "kind 'meting' is not one of consultation, drafting, nomination, meeting, forum, other"
            " (did you mean 'meeting'?)",
        ),
        ("status", "canceled", 7, "status 'canceled' is not one of active, cancelled (did you mean 'cancelled'?)"),
    ],
)
def test_it_rejects_an_unknown_kind_or_status_and_suggests_the_one_meant(
    folder: Path, key: str, value: str, line: int, message: str
) -> None:
    text = f"""\
        id: wsis-prizes
        title: WSIS Prizes
        {"kind: " + value if key == "kind" else "kind: nomination"}
        milestones:
          - id: nominations
            title: Nominations
            {"status: " + value if key == "status" else "status: active"}
            due: 2027-03-10
        """

    assert problems_in(folder, text) == [f"schedules/prizes.yaml:{line}: {message}"]


def test_it_rejects_a_list_written_as_a_mapping_instead_of_turning_reminders_off(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        milestones:
          - id: nominations
            title: Nominations
            due: 2027-03-10
            reminders: {14d: x, 7d: y}
        """

    assert problems_in(folder, text) == ["schedules/prizes.yaml:7: 'reminders' must be a list, e.g. [a, b]"]


# Dates, zones and offsets


def test_it_rejects_an_impossible_date_at_its_line(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        milestones:
          - id: nominations
            title: Nominations
            due: 2027-02-30
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:6: due: 2027-02-30 is not a date: day is out of range for month"
    ]


def test_it_rejects_a_date_too_far_away_instead_of_crashing(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        timezone: America/New_York
        milestones:
          - id: nominations
            title: Nominations
            starts: 9999-12-31
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:7: starts: 9999-12-31 is out of range: write a year from 1900 to 2200"
    ]


def test_it_rejects_an_unknown_time_zone_and_suggests_the_one_meant(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        timezone: Europe/Zurch
        milestones:
          - id: nominations
            title: Nominations
            due: 2027-03-10
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:3: unknown time zone 'Europe/Zurch' (did you mean 'Europe/Zurich'?)"
    ]


def test_it_rejects_each_bad_reminder_offset_at_its_own_line(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        reminders: [14d, 1 day]
        milestones:
          - id: nominations
            title: Nominations
            due: 2027-03-10
            reminders:
              - 7d
              - 2 weeks
              - 3x
        """
    how = "write a number and a unit, d (days), w (weeks), h (hours) or m (minutes), e.g. 14d"

    assert problems_in(folder, text) == [
        f"schedules/prizes.yaml:3: bad offset '1 day': {how}",
        f"schedules/prizes.yaml:10: bad offset '2 weeks': {how}",
        f"schedules/prizes.yaml:11: bad offset '3x': {how}",
    ]


def test_it_rejects_a_completion_written_as_a_relative_date(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        milestones:
          - id: nominations
            title: Nominations
            due: 2027-03-10
          - id: shortlist
            title: Shortlist
            due: nominations + 2w
            done: nominations + 1w
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:10: done must be a date (YYYY-MM-DD) or date and time, not a relative date"
    ]


# Milestone shape


def test_it_rejects_a_milestone_with_both_due_and_starts_at_starts(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        milestones:
          - id: ceremony
            title: Prize ceremony
            due: 2027-03-10
            starts: 2027-03-10
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:7: a milestone has either 'due' (a deadline) or 'starts' (a span), not both"
    ]


def test_it_rejects_a_milestone_with_no_date_or_an_end_without_a_start(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        milestones:
          - id: ceremony
            title: Prize ceremony
            ends: 2027-03-10
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:4: milestone needs 'due' (a deadline) or 'starts' (a span such as a meeting)",
        "schedules/prizes.yaml:6: 'ends' needs 'starts': only spans end",
    ]


def test_it_rejects_a_span_that_ends_before_it_starts_at_ends(folder: Path) -> None:
    text = """\
        id: cwg-wsis-32
        title: 32nd meeting
        milestones:
          - id: meeting
            title: CWG-WSIS-32
            starts: 2018-01-25
            ends: 2018-01-24
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:7: the span ends (2018-01-24) before it starts (2018-01-25)"
    ]


def test_it_rejects_a_span_mixing_a_date_and_a_time(folder: Path) -> None:
    text = """\
        id: cwg-wsis-32
        title: 32nd meeting
        milestones:
          - id: meeting
            title: CWG-WSIS-32
            starts: 2018-01-24 09:30
            ends: 2018-01-25
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:7: starts and ends must both be dates or both be dates with a time"
    ]


def test_it_rejects_an_owner_that_is_not_among_the_audiences(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        audiences: [membership, secretariat]
        milestones:
          - id: nominations
            title: Nominations
            owner: members
            due: 2027-03-10
          - id: jury
            title: Jury decision
            owner: jury
            due: 2027-04-09
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:7: owner 'members' is not one of the timeline's audiences (did you mean 'membership'?)",
        "schedules/prizes.yaml:11: owner 'jury' is not one of the timeline's audiences (membership, secretariat)",
    ]


def test_it_rejects_the_same_milestone_id_twice_at_the_second(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        milestones:
          - id: nominations
            title: Nominations
            due: 2027-03-10
          - id: nominations
            title: Late nominations
            due: 2027-03-17
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:7: duplicate milestone id 'nominations' (first at line 4)"
    ]


# Repeating milestones


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=SOMETIMES", "repeat: FREQ=SOMETIMES is not a frequency: repeat DAILY, WEEKLY, MONTHLY or YEARLY"),
        ("FREQ=YEARLY;COUNT=five", "repeat: COUNT=FIVE is not a number"),
        (
            "DTSTART=20270310;FREQ=YEARLY",
            "repeat: DTSTART must not be set: the milestone's own date is the first occurrence",
        ),
    ],
)
def test_it_rejects_a_repeat_that_is_not_an_rrule(folder: Path, rule: str, message: str) -> None:
    text = f"""\
        id: wsis-forum
        title: WSIS Forum
        milestones:
          - id: forum
            title: WSIS Forum
            starts: 2027-03-15
            repeat: {rule}
        """

    assert problems_in(folder, text) == [f"schedules/prizes.yaml:7: {message}"]


def test_it_rejects_a_relative_first_date_on_a_repeating_milestone(folder: Path) -> None:
    text = """\
        id: wsis-forum
        title: WSIS Forum
        milestones:
          - id: forum
            title: WSIS Forum
            starts: 2027-03-15
          - id: contributions
            title: Contributions
            due: forum - 6w
            repeat: FREQ=YEARLY
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:10: a repeating milestone needs an absolute first date, not a relative one"
    ]


def test_it_rejects_a_date_relative_to_a_repeating_milestone(folder: Path) -> None:
    text = """\
        id: wsis-forum
        title: WSIS Forum
        milestones:
          - id: forum
            title: WSIS Forum
            starts: 2027-03-15
            repeat: FREQ=YEARLY
          - id: contributions
            title: Contributions
            due: forum - 6w
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:10: due: 'forum' repeats; a date cannot be relative to a repeating milestone"
    ]


# References between milestones


@pytest.mark.parametrize(
    ("due", "message"),
    [
        ("meting - 30d", "no milestone 'meting' in this timeline (did you mean 'meeting'?)"),
        ("cwg-wsis-31/meeting - 7d", "no timeline 'cwg-wsis-31' (did you mean 'cwg-wsis-32'?)"),
        ("cwg-wsis-32/meting - 7d", "no milestone 'meting' in this timeline (did you mean 'meeting'?)"),
        ("hlpf-2017/submision + 2w", "no milestone 'submision' in timeline 'hlpf-2017' (did you mean 'submission'?)"),
        ("wsis-forum/forum - 1d", "no timeline 'wsis-forum'"),
    ],
    ids=["same-timeline", "unknown-timeline", "own-timeline-by-name", "other-timeline", "no-suggestion"],
)
def test_it_rejects_a_reference_to_nothing_and_suggests_the_one_meant(folder: Path, due: str, message: str) -> None:
    write(folder, "hlpf-2017.yaml", GOOD_TIMELINES["hlpf-2017.yaml"])
    text = f"""\
        id: cwg-wsis-32
        title: 32nd meeting
        milestones:
          - id: meeting
            title: CWG-WSIS-32
            starts: 2018-01-24
          - id: documents
            title: Documents available
            due: {due}
        """

    assert problems_in(folder, text, "cwg-wsis-32.yaml") == [f"schedules/cwg-wsis-32.yaml:9: due: {message}"]


def test_it_rejects_a_milestone_dated_relative_to_itself(folder: Path) -> None:
    text = """\
        id: cwg-wsis-32
        title: 32nd meeting
        milestones:
          - id: documents
            title: Documents available
            due: documents - 30d
        """

    assert problems_in(folder, text) == ["schedules/prizes.yaml:6: due: 'documents' refers to itself"]


def test_it_reports_a_span_ending_relative_to_itself_only_as_a_self_reference(folder: Path) -> None:
    text = """\
        id: cwg-wsis-32
        title: 32nd meeting
        milestones:
          - id: meeting
            title: CWG-WSIS-32
            starts: 2018-01-24
            ends: meeting + 1d
        """

    assert problems_in(folder, text) == ["schedules/prizes.yaml:7: ends: 'meeting' refers to itself"]


@pytest.mark.parametrize(
    ("dues", "line", "cycle"),
    [
        (["b - 1d", "a + 1d"], 9, "a → b → a"),
        (["b - 1d", "c - 1w", "a + 2w"], 12, "a → b → c → a"),
    ],
    ids=["two", "three"],
)
def test_it_rejects_dates_that_depend_on_each_other_and_names_the_cycle(
    folder: Path, dues: list[str], line: int, cycle: str
) -> None:
    milestones = "".join(milestone_yaml(name, due=due) for name, due in zip("abc", dues, strict=False))
    text = f"id: wsis-prizes\ntitle: WSIS Prizes\nmilestones:\n{milestones}"

    assert problems_in(folder, text) == [
        f"schedules/prizes.yaml:{line}: due: dates depend on each other in a cycle: {cycle}"
    ]


def test_it_names_a_cycle_across_timelines_with_the_other_timeline(folder: Path) -> None:
    write(folder, "a.yaml", timeline_yaml(milestone_yaml("x", due="b/y - 1d"), id="a"))
    write(folder, "b.yaml", timeline_yaml(milestone_yaml("y", due="a/x + 1d"), id="b"))

    assert validate(folder) == [
        "schedules/a.yaml:8: due: dates depend on each other in a cycle: x → b/y → x",
        "schedules/b.yaml:8: due: dates depend on each other in a cycle: a/x → y → a/x",
    ]


def test_it_reports_a_cycle_across_timelines_when_validating_either_file(folder: Path) -> None:
    a = write(folder, "a.yaml", timeline_yaml(milestone_yaml("x", due="b/y - 1d"), id="a"))
    b = write(folder, "b.yaml", timeline_yaml(milestone_yaml("y", due="a/x + 1d"), id="b"))

    assert validate(folder, a) != []
    assert validate(folder, b) != []


def test_it_rejects_a_window_opened_by_a_milestone_that_does_not_exist(folder: Path) -> None:
    text = """\
        id: hlpf-2017
        title: HLPF-17 contribution
        milestones:
          - id: revised-draft
            title: Revised draft
            due: 2017-02-24
          - id: comments
            title: Comments
            due: 2017-03-10
            opens_after: revised-draf
        """

    problems = problems_in(folder, text)

    assert problems == [
        "schedules/prizes.yaml:10: opens_after: no milestone 'revised-draf' in this timeline"
        " (did you mean 'revised-draft'?)"
    ]


def test_it_reports_an_offset_that_leaves_the_calendar_instead_of_crashing(folder: Path) -> None:
    text = """\
        id: cwg-wsis-32
        title: 32nd meeting
        milestones:
          - id: meeting
            title: CWG-WSIS-32
            starts: 2018-01-24
          - id: far-away
            title: Far away
            due: meeting + 5000w + 5000w + 5000w + 5000w + 5000w
        """

    assert problems_in(folder, text) == ["schedules/prizes.yaml:9: due: the date falls outside the years 1900 to 2200"]


# Several files


def test_it_rejects_one_timeline_id_in_two_files_and_names_both(folder: Path) -> None:
    write(folder, "prizes-2027.yaml", timeline_yaml(title="WSIS Prizes 2027"))
    write(folder, "prizes-2028.yaml", timeline_yaml(title="WSIS Prizes 2028"))

    assert validate(folder) == [
        "schedules/prizes-2027.yaml:1: duplicate timeline id 'wsis-prizes' (also in schedules/prizes-2028.yaml:1)",
        "schedules/prizes-2028.yaml:1: duplicate timeline id 'wsis-prizes' (also in schedules/prizes-2027.yaml:1)",
    ]


def test_it_reports_a_duplicate_timeline_id_when_validating_only_one_of_the_files(folder: Path) -> None:
    write(folder, "prizes-2027.yaml", timeline_yaml(title="WSIS Prizes 2027"))
    later = write(folder, "prizes-2028.yaml", timeline_yaml(title="WSIS Prizes 2028"))

    assert validate(folder, later) == [
        "schedules/prizes-2028.yaml:1: duplicate timeline id 'wsis-prizes' (also in schedules/prizes-2027.yaml:1)"
    ]


def test_it_reports_every_problem_of_a_file_at_once_in_line_order(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        timezone: Europe/Zurch
        milestones:
          - id: nominations
            title: Nominations
            due: 2027-02-30
            remiders: [7d]
        """

    problems = problems_in(folder, text)

    assert problems == [
        "schedules/prizes.yaml:3: unknown time zone 'Europe/Zurch' (did you mean 'Europe/Zurich'?)",
        "schedules/prizes.yaml:7: due: 2027-02-30 is not a date: day is out of range for month",
        "schedules/prizes.yaml:8: unknown key 'remiders' in milestone (did you mean 'reminders'?)",
    ]


def test_it_reports_the_problems_of_every_file_in_one_run(folder: Path) -> None:
    write(folder, "a.yaml", timeline_yaml(milestone_yaml(due="2027-02-30"), id="a"))
    write(folder, "b.yaml", timeline_yaml(timezone="Mars/Olympus", id="b"))
    write(folder, "c.yaml", timeline_yaml(id="c"))

    assert validate(folder) == [
        "schedules/a.yaml:8: due: 2027-02-30 is not a date: day is out of range for month",
        "schedules/b.yaml:3: unknown time zone 'Mars/Olympus'",
    ]


def test_it_accepts_a_folder_of_good_files(folder: Path) -> None:
    for name, text in GOOD_TIMELINES.items():
        write(folder, name, text)

    specs, problems = validate_paths([folder], folder, "Europe/Zurich")

    assert problems == []
    assert sorted(spec.id for spec in specs) == ["cwg-wsis-32", "follow-up", "hlpf-2017", "wsis-forum-yearly"]


def test_it_checks_one_file_against_the_others_without_reporting_theirs(folder: Path) -> None:
    for name, text in GOOD_TIMELINES.items():
        write(folder, name, text)
    write(folder, "broken.yaml", timeline_yaml(milestone_yaml(due="2027-02-30"), id="broken"))

    specs, problems = validate_paths([folder / "follow-up.yaml"], folder, "Europe/Zurich")

    assert problems == []
    assert [spec.id for spec in specs] == ["follow-up"]


def test_it_says_when_a_file_to_validate_does_not_exist(folder: Path) -> None:
    assert "schedules/prizes.yaml:1: no such file or folder" in validate(folder, folder / "prizes.yaml")


def test_it_says_once_when_a_file_to_validate_does_not_exist(folder: Path) -> None:
    assert validate(folder, folder / "prizes.yaml") == ["schedules/prizes.yaml:1: no such file or folder"]


def test_every_timeline_in_the_repository_is_valid() -> None:
    files = sorted(REPO_SCHEDULES.glob("*.yaml"))

    specs, problems = validate_paths([REPO_SCHEDULES], REPO_SCHEDULES, "Europe/Zurich")

    assert [str(problem) for problem in problems] == []
    assert len(files) >= 14
    assert sorted(Path(spec.path).name for spec in specs) == [path.name for path in files]


@pytest.mark.parametrize("path", sorted(REPO_SCHEDULES.glob("*.yaml")), ids=lambda path: path.name)
def test_each_repository_timeline_loads_on_its_own_without_problems(path: Path) -> None:
    spec, problems = load_text(path.read_text(encoding="utf-8"), path.name, "Europe/Zurich")

    assert problems == []
    assert spec is not None
    assert spec.milestones
    assert all(m.due is not None or m.starts is not None for m in spec.milestones)


def test_loading_reports_problems_sorted_by_file_and_line(folder: Path) -> None:
    write(folder, "b.yaml", timeline_yaml(milestone_yaml(due="2027-02-30"), id="b"))
    write(folder, "a.yaml", timeline_yaml(milestone_yaml(due="2027-02-31"), timezone="Europe/Zurch", id="a"))

    _, problems = load_schedules([folder], "Europe/Zurich")

    assert [(p.path, p.line) for p in problems] == [
        ("schedules/a.yaml", 3),
        ("schedules/a.yaml", 8),
        ("schedules/b.yaml", 8),
    ]


def test_it_says_how_to_write_an_offset_glued_to_the_name(folder: Path) -> None:
    text = """\
        id: cwg-wsis-32
        title: 32nd meeting
        milestones:
          - id: meeting
            title: CWG-WSIS-32
            starts: 2018-01-24
          - id: documents
            title: Documents available
            due: meeting-30d
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:9: due: no milestone 'meeting-30d' in this timeline (did you mean 'meeting - 30d'?)"
    ]


def test_an_empty_reminders_key_is_an_error_not_a_silent_off_switch(folder: Path) -> None:
    text = """\
        id: wsis-prizes
        title: WSIS Prizes
        reminders:
        milestones:
          - id: nominations
            title: Nominations
            due: 2018-01-02
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:3: 'reminders' is empty: list offsets such as [14d, 7d, 1d], or write [] for none"
    ]


# Titles in several languages


def test_it_accepts_a_title_by_language_with_english_as_the_title(folder: Path) -> None:
    text = """\
        id: hlpf-2017
        title:
          en: ITU Council contribution to HLPF-17
          fr: Contribution du Conseil de l’UIT au Forum politique de haut niveau de 2017
          zh: 国际电联理事会向2017年高级别政治论坛提交的文稿
        milestones:
          - id: submission
            title: {en: Final text submitted to the UN, ar: تقديم النص النهائي إلى الأمم المتحدة}
            due: 2017-04-28 12:00
          - id: side-event
            title: {en: Side event}
            due: 2017-07-12
        """
    write(folder, "hlpf.yaml", text)

    (spec,), problems = load_schedules([folder], "Europe/Zurich")

    assert problems == []
    assert spec.title == "ITU Council contribution to HLPF-17"
    assert spec.titles == (
        ("fr", "Contribution du Conseil de l’UIT au Forum politique de haut niveau de 2017"),
        ("zh", "国际电联理事会向2017年高级别政治论坛提交的文稿"),
    )
    submission, side_event = spec.milestones
    assert (submission.title, submission.titles) == (
        "Final text submitted to the UN",
        (("ar", "تقديم النص النهائي إلى الأمم المتحدة"),),
    )
    assert (side_event.title, side_event.titles) == ("Side event", ())


def test_it_rejects_an_unknown_title_language_and_suggests_the_code_meant(folder: Path) -> None:
    text = """\
        id: hlpf-2017
        title:
          en: ITU Council contribution to HLPF-17
          fra: Contribution du Conseil de l’UIT
          zh-Hans: 国际电联理事会的文稿
          de: Beitrag des ITU-Rates
        milestones:
          - id: submission
            title: {en: Final text submitted to the UN, FR: Texte final soumis à l’ONU}
            due: 2017-04-28 12:00
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:4: title language 'fra' is not one of ar, zh, en, fr, ru, es (did you mean 'fr'?)",
        "schedules/prizes.yaml:5: title language 'zh-Hans' is not one of ar, zh, en, fr, ru, es (did you mean 'zh'?)",
        "schedules/prizes.yaml:6: title language 'de' is not one of ar, zh, en, fr, ru, es",
        "schedules/prizes.yaml:9: title language 'FR' is not one of ar, zh, en, fr, ru, es (did you mean 'fr'?)",
    ]


def test_it_rejects_a_title_by_language_without_english_at_the_title(folder: Path) -> None:
    text = """\
        id: hlpf-2017
        title: ITU Council contribution to HLPF-17
        milestones:
          - id: submission
            title:
              fr: Texte final soumis à l’ONU
              es: Texto final presentado a las Naciones Unidas
            due: 2017-04-28 12:00
          - id: report
            title: {}
            due: submission + 2w
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:6: 'title' needs 'en': the English title shows wherever there is no translation",
        "schedules/prizes.yaml:10: 'title' needs 'en': the English title shows wherever there is no translation",
    ]


def test_it_rejects_an_empty_or_non_text_translation_and_a_language_given_twice(folder: Path) -> None:
    text = """\
        id: hlpf-2017
        title:
          en: ITU Council contribution to HLPF-17
          ru: ""
          es: [Contribución, del Consejo]
          fr: Contribution du Conseil de l’UIT
          fr: Contribution du Conseil
        milestones:
          - id: submission
            title: [Final text, submitted]
            due: 2017-04-28 12:00
          - id: report
            title: {en: ~}
            due: 2017-05-12
        """

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:4: 'title.ru' is empty",
        "schedules/prizes.yaml:5: 'title.es' must be a single value, not a list or mapping",
        "schedules/prizes.yaml:7: duplicate language 'fr' in 'title'",
        "schedules/prizes.yaml:10: 'title' must be text, or languages and their text (en: ..., fr: ...)",
        "schedules/prizes.yaml:13: 'title.en' is empty",
    ]


def test_files_read_ahead_load_exactly_as_files_read_here(folder: Path) -> None:
    crlf = timeline_yaml(milestone_yaml(due="2027-02-30"), id="crlf").replace("\n", "\r\n")
    (folder / "crlf.yaml").write_bytes(crlf.encode())
    (folder / "latin1.yaml").write_bytes("id: caf\xe9\n".encode("latin-1"))
    write(folder, "good.yaml", timeline_yaml(id="good"))
    files = [*find_files([folder]), folder / "gone.yaml"]

    read_ahead = load_schedules(files, "Europe/Zurich", contents=read_files(files))
    read_here = load_schedules(files, "Europe/Zurich")

    assert read_ahead == read_here
    assert [(p.path, p.line, p.message.split(":")[0]) for p in read_ahead[1]] == [
        ("schedules/crlf.yaml", 8, "due"),
        ("schedules/gone.yaml", 1, "cannot read file"),
        ("schedules/latin1.yaml", 1, "cannot read file"),
    ]


# Escalation offsets of late steps (`overdue:`)


def test_it_accepts_overdue_offsets_on_a_timeline_and_a_milestone_and_none_as_off(folder: Path) -> None:
    text = timeline_yaml(
        milestone_yaml(owner="membership", due="2027-03-10", overdue="[2d, 12h]"),
        milestone_yaml("results", owner="secretariat", due="2027-04-09", overdue="[]"),
        overdue="[1d, 3d, 7d]",
    )

    assert problems_in(folder, text) == []
    specs, _ = load_schedules([folder], "Europe/Zurich")
    assert [str(o) for o in specs[0].overdue or ()] == ["7d", "3d", "1d"]
    assert [m.overdue for m in specs[0].milestones] == [(Offset(days=2), Offset(minutes=720)), ()]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "[1d, 2 days]",
            "overdue: bad offset '2 days': write a number and a unit, d (days), w (weeks), h (hours) or m (minutes),"
            " e.g. 14d",
        ),
        ("[1d, 400d]", "overdue: '400d' is out of range: chase from 1h to 366d (about a year) after the due day"),
        ("[1d, 2d, 3d, 4d, 5d, 6d]", "overdue: 6 offsets; list at most 5, e.g. [1d, 3d, 7d]"),
        (
            "{1d: x, 3d: y}",
            "overdue: must be a list of offsets after the due day such as [1d, 3d, 7d], or [] for no overdue notices",
        ),
        (
            "",
            "overdue: is empty: list offsets after the due day such as [1d, 3d, 7d], or [] for no overdue notices",
        ),
    ],
    ids=["bad-offset", "out-of-range", "too-many", "mapping", "empty"],
)
def test_it_rejects_bad_overdue_offsets_at_their_line_with_the_fix(folder: Path, value: str, message: str) -> None:
    on_milestone = timeline_yaml(milestone_yaml(owner="membership", due="2027-03-10", overdue=value))
    on_timeline = timeline_yaml(overdue=value)

    assert problems_in(folder, on_milestone) == [f"schedules/prizes.yaml:10: {message}"]
    assert problems_in(folder, on_timeline) == [f"schedules/prizes.yaml:5: {message}"]


def test_it_rejects_overdue_offsets_on_a_span_which_is_never_late(folder: Path) -> None:
    text = timeline_yaml(milestone_yaml("meeting", starts="2027-03-10", overdue="[1d]"))

    assert problems_in(folder, text) == [
        "schedules/prizes.yaml:9: overdue: only deadlines ('due') are late and chased; remove it from this span"
    ]
