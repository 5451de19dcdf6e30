"""Whatever a secretariat does to a good timeline file, validation answers with `FILE:LINE: message`.

Start from valid files (the repository's `schedules/` and the factories'),
damage them the way editing by hand does, and check that validation never
raises and that every problem names the file and a line that exists.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.factories import GOOD_TIMELINES, MEETING, REPO_SCHEDULES, milestone_yaml, timeline_yaml
from tracker.timelines.validation import validate_paths

SEEDS = [
    *(path.read_text(encoding="utf-8") for path in sorted(REPO_SCHEDULES.glob("*.yaml"))),
    *GOOD_TIMELINES.values(),
    timeline_yaml(),
    timeline_yaml(
        milestone_yaml("meeting", starts="2027-03-28 09:00", ends="2027-03-28 17:00"),
        milestone_yaml("agenda", owner="secretariat", due="meeting - 1w"),
        milestone_yaml("slides", owner="membership", due="agenda.done + 36h", reminders="[1d, 1h]"),
        timezone="Australia/Sydney",
    ),
]
# What hand edits and bad pastes bring into YAML: structure characters, tabs, odd unicode.
NASTY = st.sampled_from([*":-[]{}#&*!|>'\"%@`,?\t \n/.+", "\u00a0", "\u2028", "\ufeff", "é", "→", "\x85"])
CHARACTERS = st.one_of(NASTY, st.characters(codec="utf-8"))
RANDOM_TEXT = st.text(CHARACTERS, min_size=1, max_size=12)
REFERENCE = re.compile(r"^(\s*-?\s*(?:due|starts|ends|done|opens_after):).*$", re.MULTILINE)
IDS = re.compile(r"\bid: ([a-z0-9-]+)")

Mutation = Callable[[st.DataObject, str], str]


def _index(data: st.DataObject, items: list[str] | str) -> int:
    return data.draw(st.integers(0, max(len(items) - 1, 0)))


def delete_line(data: st.DataObject, text: str) -> str:
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    del lines[_index(data, lines)]
    return "".join(lines)


def duplicate_line(data: st.DataObject, text: str) -> str:
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    i = _index(data, lines)
    lines.insert(i, lines[i])
    return "".join(lines)


def swap_lines(data: st.DataObject, text: str) -> str:
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    i, j = _index(data, lines), _index(data, lines)
    lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)


def replace_character(data: st.DataObject, text: str) -> str:
    if not text:
        return text
    i = _index(data, text)
    return text[:i] + data.draw(CHARACTERS) + text[i + 1 :]


def insert_text(data: st.DataObject, text: str) -> str:
    i = data.draw(st.integers(0, len(text)))
    return text[:i] + data.draw(RANDOM_TEXT) + text[i:]


def reindent_line(data: st.DataObject, text: str) -> str:
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    i = _index(data, lines)
    indent = data.draw(st.sampled_from(["", " ", "  ", "    ", "      ", "\t"]))
    lines[i] = indent + lines[i].lstrip(" ")
    return "".join(lines)


def truncate(data: st.DataObject, text: str) -> str:
    return text[: data.draw(st.integers(0, len(text)))]


def rewire_date(data: st.DataObject, text: str) -> str:
    """Point a date at another milestone of the file: cycles, self references, repeats, spans."""
    fields = list(REFERENCE.finditer(text))
    if not fields:
        return text
    field = fields[_index(data, [f.group(0) for f in fields])]
    target = data.draw(st.sampled_from([*IDS.findall(text), "nowhere", "other-timeline/meeting"]))
    anchor = data.draw(st.sampled_from(["", ".end", ".start", ".done"]))
    # 5000w (~96 years) chained four times stays inside datetime's years; leaving them is covered in test_schedules.
    offset = data.draw(st.sampled_from([" - 30d", " + 2w", " - 4h", " + 90m", "", " - 5000w", " + 1d - 25h"]))
    return text[: field.start()] + f"{field.group(1)} {target}{anchor}{offset}" + text[field.end() :]


MUTATIONS: list[Mutation] = [
    delete_line,
    duplicate_line,
    swap_lines,
    replace_character,
    insert_text,
    reindent_line,
    truncate,
    rewire_date,
]


@st.composite
def damaged_timelines(draw: st.DrawFn) -> str:
    data = draw(st.data())
    text = draw(st.sampled_from(SEEDS))
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=4)):
        text = mutation(data, text)
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_timelines())
@example(MEETING.replace("    title: CWG-WSIS-32, Geneva\n", ""))  # a referenced milestone that cannot be read
@example(MEETING.replace("title: Summary posted", "title: Summary\x1fposted"))  # a control character
@example(MEETING + "---\n" + MEETING)  # two documents
@example(  # a title by language with keys and values of every wrong shape
    MEETING.replace(
        "title: 32nd meeting of the Council Working Group on WSIS",
        'title: {? [fr]: x, ru: {a: b}, ~: y, "": z, 1: w, zh-Hans: 会议, ? {en: a}: b}',
    )
)
@example(MEETING.replace("meeting - 30d", "summary-posted - 30d").replace("meeting.end", "secretariat-documents"))
def test_validation_of_a_damaged_file_never_raises_and_every_problem_names_a_real_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "damaged.yaml"
        path.write_text(text, encoding="utf-8")
        lines = len(path.read_text(encoding="utf-8").splitlines())

        specs, problems = validate_paths([folder], folder, "Europe/Zurich")

    shape = re.compile(rf"{re.escape(str(path))}:(\d+): [^\n]+")
    for problem in problems:
        match = shape.fullmatch(str(problem))
        assert match is not None, str(problem)
        assert 1 <= int(match.group(1)) <= lines + 1, str(problem)
    assert problems or [spec.path for spec in specs] == [str(path)]


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(SEEDS))
def test_every_seed_is_a_valid_timeline_on_its_own_or_only_misses_other_timelines(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "seed.yaml").write_text(text, encoding="utf-8")

        _, problems = validate_paths([folder], folder, "Europe/Zurich")

    # Warnings (a deadline on a weekend) block nothing: the seed is valid with them.
    assert [p.message for p in problems if "no timeline" not in p.message and not p.warning] == []
