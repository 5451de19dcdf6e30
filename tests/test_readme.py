"""The README's tour, run as a new user runs it: every `$ tracker …` line in a fresh folder, its output compared.

The tour (from "## A five-minute tour" to the end of README.md) is read from the README itself:

* a ```yaml block after a sentence ending in "Save this as `PATH`:" is written to PATH;
* a ```console block is a list of commands, `$ tracker …`, each followed by the lines it prints;
  a line holding only "…" stands for one or more lines left out of the README;
* an HTML comment `<!-- tour: … -->` (GitHub does not show it) says what the reader does by hand
  before the next block; the one form known is an edit, undone after that block:

      <!-- tour: edit PATH for the next block, then undo:
      "old text" → "new text"
      -->

The folder starts as a copy of the repository's schedules/, as after a clone and `make install`,
with the default settings (no TRACKER_* variable: the store is var/tracker.db in the folder).
Nothing the tour prints depends on the clock or the machine (every command that looks at time is
given --now or --at, the store starts empty, no path is absolute), so nothing is masked: only the
spaces rich pads table lines with are stripped. Tables are as wide as COLUMNS=100 makes them.

The addresses the tour gives (http:// and webcal:// on 127.0.0.1:8000) are fetched from a
`tracker serve` on a free port, after the tour's files are saved and synced.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.cli import TRACKER
from tests.support.processes import free_port, tracker_serve

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
TOUR_START = "## A five-minute tour"
ELISION = "…"
WIDTH = "100"
README_PORT = "127.0.0.1:8000"

FENCE = re.compile(r"^```(\w*)\s*$")
SAVE_AS = re.compile(r"Save this as `([^`]+)`:\s*$")
DIRECTIVE = re.compile(r"^<!-- tour: (.*?)(?:-->)?\s*$")
EDIT_HEADER = re.compile(r"edit (\S+) for the next block, then undo:")
EDIT_LINE = re.compile(r'^"(.+)" → "(.*)"$')
ADDRESS = re.compile(r"(?:http|webcal)://127\.0\.0\.1:8000(/[^\s`)|]*)")


@dataclass
class Edit:
    path: str
    old: str
    new: str


@dataclass
class Command:
    line: int  # README line of the `$ ` command
    text: str
    expected: list[str] = field(default_factory=list)


@dataclass
class SaveFile:
    path: str
    text: str


@dataclass
class Block:
    commands: list[Command]
    edits: list[Edit]


Step = SaveFile | Block


def read_tour() -> tuple[list[str], int]:
    """Return the README's lines from the tour's heading on, and the line number of that heading."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(TOUR_START)
    return lines[start:], start + 1


def parse_tour() -> list[Step]:
    """Read the tour's steps, in order: files to save and blocks of commands (with their edits)."""
    lines, first = read_tour()
    steps: list[Step] = []
    edits: list[Edit] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("<!-- tour:"):
            index, edits = parse_directive(lines, index, first)
            continue
        fence = FENCE.match(line)
        if not fence or not fence.group(1):
            index += 1
            continue
        end = lines.index("```", index + 1)
        body = lines[index + 1 : end]
        if fence.group(1) == "console":
            steps.append(Block(parse_console(body, first + index + 1), edits))
            edits = []
        elif fence.group(1) == "yaml" and (saved := SAVE_AS.search(previous_text(lines, index))):
            steps.append(SaveFile(saved.group(1), "\n".join(body) + "\n"))
        index = end + 1
    assert not edits, "a `<!-- tour: edit … -->` comment with no ```console block after it"
    return steps


def previous_text(lines: list[str], index: int) -> str:
    """The last non-blank line before *index*."""
    return next((line for line in reversed(lines[:index]) if line.strip()), "")


def parse_directive(lines: list[str], index: int, first: int) -> tuple[int, list[Edit]]:
    """Read one `<!-- tour: … -->` comment; return the index after it and the edits it gives."""
    header = DIRECTIVE.match(lines[index])
    edit = EDIT_HEADER.fullmatch(header.group(1).strip()) if header else None
    assert edit, f"README.md:{first + index}: a tour comment the test does not know: {lines[index]!r}"
    edits = []
    index += 1
    while lines[index].strip() != "-->":
        pair = EDIT_LINE.match(lines[index].strip())
        assert pair, f'README.md:{first + index}: expected "old" → "new" or -->, got {lines[index]!r}'
        edits.append(Edit(edit.group(1), pair.group(1), pair.group(2)))
        index += 1
    return index + 1, edits


def parse_console(body: list[str], first: int) -> list[Command]:
    """Split a console block into commands, each with the lines the README shows it printing."""
    assert body and body[0].startswith("$ "), f"README.md:{first}: a console block starts with a `$ ` command"
    commands: list[Command] = []
    for offset, line in enumerate(body):
        if line.startswith("$ "):
            commands.append(Command(first + offset, line[2:]))
        else:
            commands[-1].expected.append(line)
    return commands


def clean_env(folder: Path) -> dict[str, str]:
    """A new user's environment: no TRACKER_* setting, no colour forced, a fixed terminal width."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder),
        "LANG": "C.UTF-8",
        "COLUMNS": WIDTH,
        # Unbuffered, so stdout and stderr reach the one pipe in the order a terminal shows them.
        "PYTHONUNBUFFERED": "1",
    }


def new_folder(tmp_path: Path) -> Path:
    """A folder like a fresh clone's: the repository's schedules/ and nothing else."""
    folder = tmp_path / "checkout"
    shutil.copytree(REPO / "schedules", folder / "schedules")
    return folder


def run_command(folder: Path, command: Command) -> tuple[int, list[str]]:
    """Run one `tracker …` line of the README; return its exit status and what it printed (stdout and stderr)."""
    argv = shlex.split(command.text, comments=True)
    assert argv[0] == "tracker", f"README.md:{command.line}: the tour runs `tracker` commands only: {command.text}"
    done = subprocess.run(
        [str(TRACKER), *argv[1:]],
        cwd=folder,
        env=clean_env(folder),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    return done.returncode, [line.rstrip() for line in done.stdout.splitlines()]


def lines_match(expected: list[str], actual: list[str]) -> bool:
    """Whether *actual* reads as *expected*, where an "…" line of *expected* stands for one or more lines."""
    if not expected:
        return not actual
    if expected[0] == ELISION:
        return any(lines_match(expected[1:], actual[skip:]) for skip in range(1, len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and lines_match(expected[1:], actual[1:])


def apply_edits(folder: Path, edits: list[Edit]) -> dict[Path, str]:
    """Make the README's edits; return the files' texts before them, to put back."""
    before: dict[Path, str] = {}
    for edit in edits:
        path = folder / edit.path
        before.setdefault(path, path.read_text(encoding="utf-8"))
        text = path.read_text(encoding="utf-8")
        assert text.count(edit.old) == 1, f"the tour's edit: {edit.old!r} is not in {edit.path} exactly once"
        path.write_text(text.replace(edit.old, edit.new), encoding="utf-8")
    return before


def save_file(folder: Path, step: SaveFile) -> None:
    path = folder / step.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(step.text, encoding="utf-8")


def drift(command: Command, status: int, actual: list[str]) -> str:
    """A README-vs-actual diff of one command's output, for the failure message."""
    diff = difflib.unified_diff(command.expected, actual, "README.md", "tracker printed", lineterm="")
    return (
        f"README.md:{command.line}: `$ {command.text}` (exit status {status}) printed something else"
        f" (an '{ELISION}' line of the README stands for one or more lines):\n" + "\n".join(diff)
    )


def test_the_tour_prints_what_the_readme_shows(tmp_path: Path) -> None:
    steps = parse_tour()
    assert sum(isinstance(step, Block) for step in steps) >= 5, "the tour's console blocks were not found"
    folder = new_folder(tmp_path)
    drifts: list[str] = []
    for step in steps:
        if isinstance(step, SaveFile):
            save_file(folder, step)
            continue
        before = apply_edits(folder, step.edits)
        for command in step.commands:
            status, actual = run_command(folder, command)
            if not lines_match(command.expected, actual):
                drifts.append(drift(command, status, actual))
        for path, text in before.items():
            path.write_text(text, encoding="utf-8")
    if drifts:
        pytest.fail("\n\n".join(drifts), pytrace=False)


def tour_addresses() -> list[str]:
    """The paths of the http:// and webcal:// addresses the five-minute tour itself names (to the next heading)."""
    lines, _ = read_tour()
    section = lines[: next(i for i, line in enumerate(lines) if i and line.startswith("## "))]
    return list(dict.fromkeys(ADDRESS.findall("\n".join(section))))


def saved_milestones(steps: list[Step]) -> list[str]:
    """The milestones (TIMELINE/MILESTONE) of the timeline files the tour saves."""
    files = [yaml.safe_load(step.text) for step in steps if isinstance(step, SaveFile) and step.path.endswith(".yaml")]
    return [f"{timeline['id']}/{milestone['id']}" for timeline in files for milestone in timeline["milestones"]]


def test_the_tour_s_addresses_answer_while_tracker_serve_runs(tmp_path: Path) -> None:
    steps = parse_tour()
    folder = new_folder(tmp_path)
    for step in steps:
        if isinstance(step, SaveFile):
            save_file(folder, step)
    status, printed = run_command(folder, Command(0, "tracker sync"))
    assert status == 0, printed
    paths = tour_addresses()
    assert {"/", "/feeds/all.ics"} <= set(paths), f"the tour's addresses were not found: {paths}"
    # The commands table says `serve` also answers /metrics when a token is set.
    env = clean_env(folder) | {"TRACKER_METRICS_TOKEN": "readme-metrics-token-5b1e"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tracker_serve(TRACKER, folder, env, port, tmp_path / "serve.log"):
        for path in paths:
            answer = httpx.get(base + path, timeout=10)
            kinds = {".ics": "text/calendar", ".atom": "application/atom+xml"}
            kind = next((k for end, k in kinds.items() if path.endswith(end)), "text/html")
            assert answer.status_code == 200, f"{README_PORT}{path}, named in the tour, answers {answer.status_code}"
            assert answer.headers["content-type"].startswith(kind), (path, answer.headers["content-type"])
        everything = httpx.get(f"{base}/feeds/all.ics", timeout=10).text.replace("\r\n ", "")  # unfolded
        for milestone in saved_milestones(steps):
            assert f"UID:{milestone}@" in everything, f"the feed has no {milestone}, from the file the tour saves"
        metrics = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {env['TRACKER_METRICS_TOKEN']}"})
        assert metrics.status_code == 200
