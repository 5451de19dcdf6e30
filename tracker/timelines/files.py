"""Load timeline files (`schedules/*.yaml`) into specs, collecting every problem.

Each problem carries the file and the line of the offending node, so the
secretariat reads `FILE:LINE: message`. Nothing here raises on bad input.
"""

from __future__ import annotations

import io
import operator
import os
import re
import stat
from collections.abc import Callable, Collection, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path

import yaml

from tracker.text import LANGUAGES, find_refused
from tracker.timelines.dates import (
    SLUG,
    Absolute,
    DateError,
    Expr,
    Offset,
    Relative,
    get_zone,
    parse_escalation,
    parse_expr,
    parse_reminder,
    shorten,
    suggest,
)
from tracker.timelines.repeats import RepeatError, check_first_date, read_repeat
from tracker.timelines.workdays import (
    DEFAULT_CALENDAR,
    MAX_CLOSED_DATES,
    ROLLS,
    WEEKDAYS,
    Roll,
    WorkCalendar,
    supported_places,
)
from tracker.timelines.zones import gap_problem, zone_warning

# The six UN languages a title may be written in: `en` is required (it is `title`), the others translate it.
Titles = tuple[tuple[str, str], ...]  # (language, text) pairs sorted by language, `en` left out
KINDS = ("consultation", "drafting", "nomination", "meeting", "forum", "other")
STATUSES = ("active", "cancelled")
TIMELINE_KEYS = (
    "id", "title", "summary", "timezone", "kind", "source", "url", "audiences", "reminders", "overdue", "milestones",
    "weekend", "holidays",
)  # fmt: skip
MILESTONE_KEYS = (
    "id", "title", "summary", "owner", "due", "starts", "ends", "opens_after",
    "reminders", "overdue", "repeat", "status", "done", "url", "location", "roll",
)  # fmt: skip
HOLIDAY_KEYS = ("country", "subdivision", "dates", "file")
# A file of closures shared by timelines: a plain name in the schedules folder, so it cannot point elsewhere.
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
SHARED_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.txt")
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_REQUIRED_KEYS = (("id", "title", "milestones"), ("id", "title"))
_KEY_SETS: dict[tuple[str, ...], frozenset[str]] = {
    keys: frozenset(keys) for keys in (TIMELINE_KEYS, MILESTONE_KEYS, HOLIDAY_KEYS, (), *_REQUIRED_KEYS)
}
# Limits that keep reading a file quick and small whatever it holds (YAML aliases let a short file
# name one big list many times, so lists and mappings are bounded where they are read, too).
MAX_FILE_BYTES = 1_000_000
MAX_NESTING = 100  # a timeline file needs 4; PyYAML's C composer overflows the stack near 20,000
MAX_MILESTONES = 1000
MAX_REPEATING = 100  # each rule is checked by expanding it (a millisecond or two at worst)
MAX_REMINDERS = 10
MAX_OVERDUE = 5  # escalations after the first overdue notice: more would be noise to the owners
MAX_AUDIENCES = 50
MAX_KEYS = 50
# Text shown in emails, calendars and pages: a title is a line, a summary a paragraph or two.
TEXT_LENGTHS = {"title": 300, "summary": 5_000, "location": 300, "source": 300, "url": 2_000}
MAX_ID_LENGTH = 100  # the store's columns for ids and owners hold 100 characters
SPLIT_MILESTONES = "split the file into several timelines: one may have"
_COLLECTION_OPENERS = "[{-?:"  # every YAML list or mapping starts with one of these characters


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """LibYAML's parser without implicit typing: every plain scalar stays the text written.

    Our reader types each value itself (dates, offsets, ids) with a message per bad one,
    and skipping PyYAML's per-scalar regex matching makes loading noticeably faster.
    """

    def resolve(self, kind: type[yaml.Node], value: object, implicit: object) -> str:
        if kind is yaml.ScalarNode:
            return "tag:yaml.org,2002:str"
        return "tag:yaml.org,2002:seq" if kind is yaml.SequenceNode else "tag:yaml.org,2002:map"

    # The composer calls these around every node for path resolvers, which we never add; C
    # built-ins that take the same arguments and do nothing save two Python calls per node.
    descend_resolver = staticmethod(operator.is_)  # (parent, index)
    ascend_resolver = staticmethod(tuple)  # ()


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and not node.style and node.value in _NULLS


_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")  # YAML's line breaks, for line numbers


@dataclass(frozen=True, order=True)
class FileProblem:
    """One thing wrong in one file, at one line.

    A warning (a deadline on a non-working day, a time in the repeated hour) is printed with the
    errors but blocks nothing: `validate` fails on it only with `--strict`, and sync applies.
    """

    path: str
    line: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {'warning: ' * self.warning}{self.message}"


def errors_in(problems: Iterable[FileProblem]) -> list[FileProblem]:
    """The problems that stop a sync: all but warnings."""
    return [p for p in problems if not p.warning]


@dataclass(frozen=True)
class MilestoneSpec:
    id: str
    title: str
    line: int
    titles: Titles = ()
    summary: str = ""
    owner: str | None = None
    due: Expr | None = None
    starts: Expr | None = None
    ends: Expr | None = None
    opens_after: str | None = None
    reminders: tuple[Offset, ...] | None = None
    overdue: tuple[Offset, ...] | None = None  # None: the timeline's, else TRACKER_OVERDUE; (): never chased
    repeat: str | None = None
    status: str = "active"
    done: Absolute | None = None
    url: str = ""
    location: str = ""
    roll: Roll | None = None
    lines: Mapping[str, int] = field(default_factory=dict, compare=False)

    @property
    def is_span(self) -> bool:
        return self.starts is not None

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


@dataclass(frozen=True)
class TimelineSpec:
    id: str
    title: str
    path: str
    line: int
    timezone: str
    kind: str = "other"
    summary: str = ""
    source: str = ""
    url: str = ""
    audiences: tuple[str, ...] = ()
    reminders: tuple[Offset, ...] | None = None
    overdue: tuple[Offset, ...] | None = None  # None: TRACKER_OVERDUE
    milestones: tuple[MilestoneSpec, ...] = ()
    titles: Titles = ()
    calendar: WorkCalendar = DEFAULT_CALENDAR  # its working days: `weekend` and `holidays`, else tracker.toml's
    closures_file: tuple[str, int] | None = None  # `holidays: {file: …}` and its line; load_schedules adds its dates
    complete: bool = field(default=True, compare=False)  # False when a milestone could not be read


def find_files(paths: Iterable[Path]) -> list[Path]:
    """Expand folders into their `*.yaml`/`*.yml` entries, sorted; pipes and links are kept, to be reported."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and not p.is_dir()))
        else:
            found.append(path)
    return found


class UnreadableFileError(Exception):
    """A timeline file that is not read at all; the message says why."""


def read_file(path: Path) -> bytes:
    """Return the bytes of a regular file of at most MAX_FILE_BYTES; raise UnreadableFileError otherwise.

    Never blocks on a pipe or reads a device: the kind of file is checked before it is opened,
    and again on what was opened (the entry may change in between).
    """
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            # realpath, not Path.resolve: it raises RuntimeError on a link that points at itself.
            if Path(os.path.realpath(path)).parent != Path(os.path.realpath(path.parent)):
                raise UnreadableFileError(LINKS_OUT)
            mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise UnreadableFileError(NOT_A_FILE)
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UnreadableFileError(f"cannot read file: {exc.strerror or exc}") from None
    with os.fdopen(descriptor, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise UnreadableFileError(NOT_A_FILE)
        if status.st_size > MAX_FILE_BYTES:
            raise UnreadableFileError(TOO_BIG)
        # Ask for the size it has (a buffer of the limit for each file costs more than the read),
        # then for what it may have grown by since, up to one byte past the limit.
        data = file.read(min(status.st_size, MAX_FILE_BYTES) + 1)
        if len(data) > status.st_size:
            data += file.read(MAX_FILE_BYTES + 1 - len(data))
    if len(data) > MAX_FILE_BYTES:
        raise UnreadableFileError(TOO_BIG)
    return data


NOT_A_FILE = "not a regular file: a timeline file must be a plain file in the schedules folder"
TOO_BIG = (
    f"the file has more than {MAX_FILE_BYTES:,} bytes (1 MB), the most a timeline file may have: "
    "split it into several timelines"
)
LINKS_OUT = "links to a file outside the schedules folder, whose changes would go unseen: copy the file into the folder"


def read_files(files: Iterable[Path]) -> dict[Path, bytes | UnreadableFileError]:
    """Read each file's bytes once, or keep why it could not be read."""
    found: dict[Path, bytes | UnreadableFileError] = {}
    for path in files:
        try:
            found[path] = read_file(path)
        except UnreadableFileError as exc:
            found[path] = exc
    return found


def decode_file(data: bytes) -> str:
    """Decode as `Path.read_text(encoding="utf-8")` would: the same newlines, the same errors."""
    if b"\r" not in data:  # no newline to translate: a plain decode gives the same text
        with suppress(UnicodeDecodeError):  # the error is raised below, worded as read_text words it
            return data.decode("utf-8")
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()


def load_schedules(
    paths: Iterable[Path],
    default_zone: str,
    on_file: Callable[[Path], None] | None = None,
    contents: Mapping[Path, bytes | UnreadableFileError] | None = None,
    calendar: WorkCalendar = DEFAULT_CALENDAR,
    uncached: Collection[Path] = (),
) -> tuple[list[TimelineSpec], list[FileProblem]]:
    """Load every timeline file under *paths*; return the good specs and all problems.

    *contents* holds files already read (see `read_files`); the others are read here. *calendar*
    is the working week and holidays of timelines that do not declare their own. The files in
    *uncached* (an upload, read once) are parsed without remembering their text.
    """
    timelines: list[TimelineSpec] = []
    problems: list[FileProblem] = []
    shared = SharedFiles(contents or {})
    for path in find_files(paths):
        if on_file is not None:
            on_file(path)
        data = contents.get(path) if contents is not None else None
        try:
            if isinstance(data, UnreadableFileError):
                raise data
            text = decode_file(read_file(path) if data is None else data)
        except UnreadableFileError as exc:
            problems.append(FileProblem(str(path), 1, str(exc)))
            continue
        except UnicodeDecodeError as exc:
            problems.append(FileProblem(str(path), 1, f"cannot read file: {exc}"))
            continue
        spec, found = load_text(text, str(path), default_zone, calendar, cache=path not in uncached)
        problems.extend(found)
        if spec is not None:
            timelines.append(with_shared_closures(spec, shared, problems))
    problems.extend(check_unique_ids(timelines))
    return timelines, sorted(problems)


class SharedFiles:
    """The closures files of one load, each read and checked once however many timelines name it."""

    def __init__(self, contents: Mapping[Path, bytes | UnreadableFileError]) -> None:
        self.contents = contents
        self.read: dict[Path, frozenset[date] | str] = {}  # the dates, or why the file cannot be read

    def dates(self, path: Path, problems: list[FileProblem]) -> frozenset[date] | str:
        if path not in self.read:
            try:
                data = self.contents.get(path)
                if isinstance(data, UnreadableFileError):
                    raise data
                found, self.read[path] = read_closures(decode_file(read_file(path) if data is None else data), path)
                problems.extend(found)
            except (UnreadableFileError, UnicodeDecodeError) as exc:
                self.read[path] = str(exc)
        return self.read[path]


def with_shared_closures(spec: TimelineSpec, shared: SharedFiles, problems: list[FileProblem]) -> TimelineSpec:
    """Add the dates of the timeline's shared closures file (`holidays: {file: closures.txt}`) to its calendar."""
    if spec.closures_file is None:
        return spec
    name, line = spec.closures_file
    closed = shared.dates(Path(spec.path).parent / name, problems)
    if isinstance(closed, str):
        problems.append(FileProblem(spec.path, line, f"holidays: {name}: {closed}"))
        return spec
    closed |= spec.calendar.closed
    if len(closed) > MAX_CLOSED_DATES:
        message = f"holidays: {len(closed)} closed days with {name}; list at most {MAX_CLOSED_DATES}"
        problems.append(FileProblem(spec.path, line, message))
        return spec
    return replace(spec, calendar=replace(spec.calendar, closed=closed))


def read_closures(text: str, path: Path) -> tuple[list[FileProblem], frozenset[date]]:
    """Read one closed day a line ('2025-12-24  ITU closed'); '#' starts a comment line."""
    problems: list[FileProblem] = []
    closed: set[date] = set()
    for number, line in enumerate(text.splitlines(), 1):
        first = line.split(maxsplit=1)[0] if line.strip() and not line.lstrip().startswith("#") else ""
        day = read_day(first) if first else None
        if first and day is None:
            fix = "write one closed day a line, as YYYY-MM-DD, maybe followed by its name"
            problems.append(FileProblem(str(path), number, f"{shorten(first)!r} is not a date: {fix}"))
        elif day is not None:
            closed.add(day)
        if len(closed) > MAX_CLOSED_DATES:
            problems.append(FileProblem(str(path), number, f"more than {MAX_CLOSED_DATES} closed days: keep fewer"))
            break
    return problems, frozenset(closed)


def read_day(text: str) -> date | None:
    if not _ISO_DAY.fullmatch(text):
        return None
    with suppress(ValueError):
        return date.fromisoformat(text)
    return None


def find_shared_files(folder: Path) -> list[Path]:
    """The closures files timelines may share (`*.txt` in the schedules folder), sorted."""
    return sorted(p for p in folder.iterdir() if p.suffix == ".txt" and not p.is_dir()) if folder.is_dir() else []


def check_unique_ids(timelines: list[TimelineSpec]) -> list[FileProblem]:
    """Report a timeline id used by several files in each of them.

    Every file gets the problem, not only the later ones: validating a single
    file loads the others only as context and shows only that file's problems.
    """
    by_id: dict[str, list[TimelineSpec]] = {}
    for spec in timelines:
        by_id.setdefault(spec.id, []).append(spec)
    problems = []
    for specs in by_id.values():
        for spec in specs if len(specs) > 1 else []:
            where = ", ".join(f"{other.path}:{other.line}" for other in specs if other is not spec)
            problems.append(FileProblem(spec.path, spec.line, f"duplicate timeline id {spec.id!r} (also in {where})"))
    return problems


def load_text(
    text: str, path: str, default_zone: str, calendar: WorkCalendar = DEFAULT_CALENDAR, *, cache: bool = True
) -> tuple[TimelineSpec | None, list[FileProblem]]:
    """Parse one file's text; return its spec (None when unusable) and its problems.

    cache=False for a text seen once (an upload): the cache keeps texts of up to 1 MB each.
    """
    if not cache:
        return _parse_text(text, path, default_zone, calendar)
    spec, problems = _load_text_once(text, path, default_zone, calendar)
    return spec, list(problems)


# The main job re-syncs the whole folder after each save; remembering each file's result
# by its exact text means only the saved file is read again. Specs are frozen, so sharing is safe.
@lru_cache(maxsize=4096)
def _load_text_once(
    text: str, path: str, default_zone: str, calendar: WorkCalendar
) -> tuple[TimelineSpec | None, tuple[FileProblem, ...]]:
    spec, problems = _parse_text(text, path, default_zone, calendar)
    return spec, tuple(problems)


def clear_cache() -> None:
    _load_text_once.cache_clear()
    is_slug.cache_clear()
    read_repeat.cache_clear()


# Ids, owners and rules repeat from file to file; each distinct one is checked once.
@lru_cache(maxsize=65536)
def is_slug(value: str) -> bool:
    return SLUG.fullmatch(value) is not None


def _parse_text(
    text: str, path: str, default_zone: str, calendar: WorkCalendar = DEFAULT_CALENDAR
) -> tuple[TimelineSpec | None, list[FileProblem]]:
    reader = _Reader(path)
    too_deep = nesting_problem(text, path)
    if too_deep is not None:
        return None, [too_deep]
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = exc.problem or exc.context
        if exc.context and exc.problem and exc.problem.startswith("but "):  # "but found another document"
            message = f"{exc.context}, {exc.problem}"
        return None, [FileProblem(path, line, f"YAML syntax: {message}")]
    except yaml.reader.ReaderError as exc:
        return None, [unreadable_character(text, path, exc)]
    except yaml.YAMLError as exc:
        return None, [FileProblem(path, 1, f"YAML syntax: {' '.join(str(exc).split())}")]
    if root is None:
        return None, [FileProblem(path, 1, "empty file: a timeline needs at least id, title and milestones")]
    spec = reader.timeline(root, default_zone, calendar)
    # A spec with problems is still returned (partial), so references and cycles in it can be
    # checked in the same run; callers never apply a spec that came with problems.
    return spec, reader.problems


def nesting_problem(text: str, path: str) -> FileProblem | None:
    """Refuse lists and mappings nested more than MAX_NESTING deep before the composer recurses into them.

    LibYAML's parser keeps its own stack, so walking its events is safe at any depth; PyYAML's
    composer recurses once per level and crashes the process (SIGSEGV) near 20,000 levels.
    A file with few characters that open a collection cannot nest deeply, and skips the walk.
    """
    if sum(text.count(character) for character in _COLLECTION_OPENERS) <= MAX_NESTING:
        return None
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            kind = event.__class__
            if kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
                depth += 1
                if depth > MAX_NESTING:
                    message = (
                        f"lists and mappings nest more than {MAX_NESTING} levels deep; a timeline file needs 4 at most"
                    )
                    return FileProblem(path, event.start_mark.line + 1 if event.start_mark else 1, message)
            elif kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                depth -= 1
    except yaml.YAMLError:
        return None  # the composer stops at the same place, before any deeper level, and reports it
    return None


def unreadable_character(text: str, path: str, exc: yaml.reader.ReaderError) -> FileProblem:
    """Point at the first character YAML refuses (its own position counts bytes or characters by loader)."""
    if not isinstance(exc.character, int) or (index := text.find(chr(exc.character))) < 0:
        return FileProblem(path, 1, f"YAML syntax: {exc.reason}")
    line = len(_LINE_BREAK.findall(text, 0, index)) + 1
    return FileProblem(path, line, f"YAML syntax: {exc.reason} (U+{exc.character:04X})")


def language_hint(code: str) -> str:
    """Return ' (did you mean 'fr'?)' for 'FR', 'fr-CH', 'zh_Hans' or 'fra', else ''."""
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return f" (did you mean {base!r}?)" if base in LANGUAGES else suggest(base, LANGUAGES)


class _Reader:
    """Turn YAML nodes into specs, recording a FileProblem for each bad node."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[FileProblem] = []
        self.repeating = 0  # rules checked against their first date so far
        self.closures_file: tuple[str, int] | None = None

    def report(self, node: yaml.Node, message: str) -> None:
        self.problems.append(FileProblem(self.path, node.start_mark.line + 1, message))

    def mapping(
        self, node: yaml.Node, allowed: tuple[str, ...], required: tuple[str, ...], what: str
    ) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.report(node, f"{what} must be a mapping of keys to values")
            return {}
        if len(node.value) > MAX_KEYS:
            self.report(
                node, f"{what} has {len(node.value)} keys; it takes at most {len(allowed)}: {', '.join(allowed)}"
            )
            return {}
        known = _KEY_SETS[allowed]
        try:  # the usual case in one step: plain keys, each once, all known, none missing
            found = {key_node.value: value_node for key_node, value_node in node.value}
            if len(found) == len(node.value) and known.issuperset(found) and found.keys() >= _KEY_SETS[required]:
                return found
        except TypeError:  # a list or mapping as a key (unhashable): reported below
            pass
        found = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.report(key_node, f"{what} keys must be plain words")
            elif key in found:
                self.report(key_node, f"duplicate key {shorten(key)!r} in {what}")
            elif key not in known:
                self.report(key_node, f"unknown key {shorten(key)!r} in {what}{suggest(key, allowed)}")
            else:
                found[key] = value_node
        for key in required:
            if key not in found:
                self.report(node, f"{what} is missing {key!r}")
        return found

    def scalar(self, node: yaml.Node | None, key: str) -> str | None:
        if node is None:
            return None
        if node.__class__ is not yaml.ScalarNode:
            self.report(node, f"{key!r} must be a single value, not a list or mapping")
            return None
        value: str = node.value.strip()
        if not value or (not node.style and value in _NULLS):
            self.report(node, f"{key!r} is empty")
            return None
        return value

    def slug(self, node: yaml.Node | None, key: str) -> str | None:
        value = self.scalar(node, key)
        if value is not None and node is not None and len(value) > MAX_ID_LENGTH:
            self.report(node, f"{key} {shorten(value)!r} is {len(value)} characters long; keep it to {MAX_ID_LENGTH}")
            return None
        if value is not None and node is not None and not is_slug(value):
            self.report(node, f"{key} {value!r} must be lowercase letters, digits and dashes (e.g. 'final-draft')")
            return None
        return value

    def choice(self, node: yaml.Node | None, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.scalar(node, key)
        if value is None or node is None:
            return default
        if value not in choices:
            self.report(node, f"{key} {shorten(value)!r} is not one of {', '.join(choices)}{suggest(value, choices)}")
            return default
        return value

    def items(self, node: yaml.Node | None, key: str, limit: int, fix: str = "") -> list[yaml.Node]:
        if node is None:
            return []
        if isinstance(node, yaml.SequenceNode) and len(node.value) > limit:
            self.report(node, f"{len(node.value)} {key}; {fix or 'list'} at most {limit}")
            return []
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        # A mapping here is a typo, not "none": `reminders: {14d: x}` must not silently turn reminders off.
        if not is_null(node):
            self.report(node, f"{key!r} must be a list, e.g. [a, b]")
        return []

    def slugs(self, node: yaml.Node | None, key: str) -> tuple[str, ...]:
        values = (self.slug(item, key) for item in self.items(node, "audiences", MAX_AUDIENCES))
        return tuple(v for v in values if v is not None)

    def offsets(self, node: yaml.Node | None) -> tuple[Offset, ...] | None:
        if node is None:
            return None
        if is_null(node):
            self.report(node, "'reminders' is empty: list offsets such as [14d, 7d, 1d], or write [] for none")
            return None
        return self.offset_items(self.items(node, "reminders", MAX_REMINDERS), "reminders", parse_reminder)

    def offset_items(
        self, items: list[yaml.Node], key: str, parse: Callable[[str], Offset], prefix: str = ""
    ) -> tuple[Offset, ...]:
        """The offsets of *items*, latest first, each bad one reported at its line."""
        offsets = []
        for item in items:
            text = self.scalar(item, key)
            if text is None:
                continue
            try:
                offsets.append(parse(text))
            except DateError as exc:
                self.report(item, f"{prefix}{exc}")
        return tuple(sorted(set(offsets), reverse=True))

    def overdue(self, node: yaml.Node | None) -> tuple[Offset, ...] | None:
        """Read the escalation offsets of late steps; None when not given, () for none (`overdue: []`)."""
        if node is None:
            return None
        if not isinstance(node, yaml.SequenceNode):
            # Neither a mapping nor an empty value may silently stand for "never chase".
            problem = "is empty: list" if is_null(node) else "must be a list of"
            fix = "offsets after the due day such as [1d, 3d, 7d], or [] for no overdue notices"
            self.report(node, f"overdue: {problem} {fix}")
            return None
        if len(node.value) > MAX_OVERDUE:
            self.report(node, f"overdue: {len(node.value)} offsets; list at most {MAX_OVERDUE}, e.g. [1d, 3d, 7d]")
            return None
        return self.offset_items(list(node.value), "overdue", parse_escalation, "overdue: ")

    def expr(self, node: yaml.Node | None, key: str) -> Expr | None:
        text = self.scalar(node, key)
        if text is None or node is None:
            return None
        try:
            return parse_expr(text)
        except DateError as exc:
            self.report(node, f"{key}: {exc}")
            return None

    def timeline(
        self, root: yaml.Node, default_zone: str, default_calendar: WorkCalendar = DEFAULT_CALENDAR
    ) -> TimelineSpec | None:
        keys = self.mapping(root, TIMELINE_KEYS, _REQUIRED_KEYS[0], "timeline")
        zone = self.scalar(keys.get("timezone"), "timezone") or default_zone
        if "timezone" in keys:
            try:
                get_zone(zone)
            except DateError as exc:
                self.report(keys["timezone"], str(exc))
                zone = default_zone
            else:
                self.warn_zone(keys["timezone"], zone)
        audiences = self.slugs(keys.get("audiences"), "audience")
        nodes = self.items(keys.get("milestones"), "milestones", MAX_MILESTONES, SPLIT_MILESTONES)
        milestones = [self.milestone(node, audiences) for node in nodes]
        if "milestones" in keys and not milestones and not self.problems_at(keys["milestones"]):
            self.report(keys["milestones"], "a timeline needs at least one milestone")
        specs = tuple(m for m in milestones if m is not None)
        self.check_milestone_ids(specs)
        self.check_done_clocks(specs, zone)
        title, titles = self.title(keys.get("title"))
        spec = TimelineSpec(
            id=self.slug(keys.get("id"), "id") or "",
            title=title,
            path=self.path,
            line=root.start_mark.line + 1 if "id" not in keys else keys["id"].start_mark.line + 1,
            timezone=zone,
            kind=self.choice(keys.get("kind"), "kind", KINDS, "other"),
            summary=self.optional_text(keys, "summary"),
            source=self.optional_text(keys, "source"),
            url=self.optional_text(keys, "url"),
            audiences=audiences,
            reminders=self.offsets(keys.get("reminders")),
            overdue=self.overdue(keys.get("overdue")),
            milestones=specs,
            titles=titles,
            calendar=self.calendar(keys, default_calendar),
            closures_file=self.closures_file,
            complete=len(specs) == len(milestones),
        )
        return spec if spec.id and spec.title else None

    def check_done_clocks(self, specs: tuple[MilestoneSpec, ...], zone: str) -> None:
        """A completion at a time the clocks skip names no instant: refused, as such a `due` is."""
        for spec in specs:
            if spec.done is not None and spec.done.clock is not None:
                problem = gap_problem(spec.done.day, spec.done.clock, zone)
                if problem is not None:
                    self.problems.append(FileProblem(self.path, spec.line_of("done"), f"done: {problem}"))

    def warn_zone(self, node: yaml.Node, zone: str) -> None:
        """A zone that works but is not a place's ('EST' has no summer time, 'US/Eastern' is an old name)."""
        message = zone_warning(zone)
        if message is not None:
            self.problems.append(FileProblem(self.path, node.start_mark.line + 1, f"timezone: {message}", warning=True))

    def problems_at(self, node: yaml.Node) -> bool:
        return any(problem.line == node.start_mark.line + 1 for problem in self.problems)

    def title(self, node: yaml.Node | None) -> tuple[str, Titles]:
        """Return the English title and the translations of a title written as text or by language."""
        if isinstance(node, yaml.SequenceNode):
            self.report(node, "'title' must be text, or languages and their text (en: ..., fr: ...)")
            return "", ()
        if not isinstance(node, yaml.MappingNode):
            return self.text(node, "title") or "", ()
        texts = self.translations(node)
        if not any(key.value == "en" for key, _ in node.value if key.__class__ is yaml.ScalarNode):
            self.report(node, "'title' needs 'en': the English title shows wherever there is no translation")
        # Without `en` the problem above stops the sync; any text keeps the milestone for the other checks.
        title = texts.get("en") or next(iter(texts.values()), "")
        return title, tuple(sorted((code, text) for code, text in texts.items() if code != "en"))

    def translations(self, node: yaml.MappingNode) -> dict[str, str]:
        texts: dict[str, str] = {}
        seen: set[str] = set()
        if len(node.value) > MAX_KEYS:
            self.report(node, f"'title' has {len(node.value)} languages; write at most {', '.join(LANGUAGES)}")
            return texts
        for key_node, value_node in node.value:
            code = self.language(key_node, seen)
            text = self.text(value_node, f"title.{code}") if code is not None else None
            if code is not None and text is not None:
                texts[code] = text
        return texts

    def language(self, node: yaml.Node, seen: set[str]) -> str | None:
        code = node.value if node.__class__ is yaml.ScalarNode else None
        if not isinstance(code, str):
            self.report(node, f"'title' languages must be codes such as en or fr: {', '.join(LANGUAGES)}")
            return None
        if code in seen:
            self.report(node, f"duplicate language {shorten(code)!r} in 'title'")
            return None
        seen.add(code)
        if code not in LANGUAGES:
            shown = shorten(code)
            self.report(node, f"title language {shown!r} is not one of {', '.join(LANGUAGES)}{language_hint(code)}")
            return None
        return code

    def optional_text(self, keys: dict[str, yaml.Node], key: str) -> str:
        return self.text(keys.get(key), key) or "" if key in keys else ""

    def text(self, node: yaml.Node | None, key: str) -> str | None:
        """Return text shown to people: bounded, on one line but for a summary, with no control characters."""
        value = self.scalar(node, key)
        if value is None or node is None:
            return None
        field = key.partition(".")[0]
        longest = TEXT_LENGTHS.get(field, TEXT_LENGTHS["title"])
        if len(value) > longest:
            self.report(node, f"{key} is {len(value):,} characters long; keep it to {longest:,}")
            return None
        refused = find_refused(value, allowed="\n" if field == "summary" else "")
        if refused is not None:
            position, what = refused
            where = "" if field == "summary" else ", and keep it on one line"
            self.report(node, f"{key}: character {position} is {what}; remove it{where}")
            return None
        return value

    def check_milestone_ids(self, specs: tuple[MilestoneSpec, ...]) -> None:
        seen: dict[str, int] = {}
        for spec in specs:
            if spec.id in seen:
                message = f"duplicate milestone id {spec.id!r} (first at line {seen[spec.id]})"
                self.problems.append(FileProblem(self.path, spec.line_of("id"), message))
            else:
                seen[spec.id] = spec.line_of("id")

    def milestone(self, node: yaml.Node, audiences: tuple[str, ...]) -> MilestoneSpec | None:
        keys = self.mapping(node, MILESTONE_KEYS, _REQUIRED_KEYS[1], "milestone")
        if not keys:
            return None
        lines = {key: value.start_mark.line + 1 for key, value in keys.items()}
        title, titles = self.title(keys.get("title"))
        spec = MilestoneSpec(
            id=self.slug(keys.get("id"), "id") or "",
            title=title,
            line=node.start_mark.line + 1,
            titles=titles,
            summary=self.optional_text(keys, "summary"),
            owner=self.owner(keys.get("owner"), audiences),
            due=self.expr(keys.get("due"), "due"),
            starts=self.expr(keys.get("starts"), "starts"),
            ends=self.expr(keys.get("ends"), "ends"),
            opens_after=self.reference(keys.get("opens_after")),
            reminders=self.offsets(keys.get("reminders")),
            overdue=self.overdue(keys.get("overdue")),
            repeat=self.rrule(keys.get("repeat")),
            status=self.choice(keys.get("status"), "status", STATUSES, "active"),
            done=self.done(keys.get("done")),
            url=self.optional_text(keys, "url"),
            location=self.optional_text(keys, "location"),
            roll=self.roll(keys.get("roll")),
            lines=lines,
        )
        self.check_shape(node, keys, spec)
        return spec if spec.id and spec.title else None

    def owner(self, node: yaml.Node | None, audiences: tuple[str, ...]) -> str | None:
        owner = self.slug(node, "owner")
        if owner is not None and node is not None and audiences and owner not in audiences:
            hint = suggest(owner, audiences) or f" ({', '.join(audiences)})"
            self.report(node, f"owner {owner!r} is not one of the timeline's audiences{hint}")
        return owner

    def reference(self, node: yaml.Node | None) -> str | None:
        text = self.scalar(node, "opens_after")
        if text is None or node is None:
            return None
        expr = None
        with suppress(DateError):
            expr = parse_expr(text)
        if not isinstance(expr, Relative) or expr.anchor or expr.offsets:
            shown = shorten(text)
            self.report(node, f"opens_after must name a milestone ('draft' or 'other-timeline/draft'), not {shown!r}")
            return None
        return f"{expr.timeline}/{expr.milestone}" if expr.timeline else expr.milestone

    def rrule(self, node: yaml.Node | None) -> str | None:
        text = self.scalar(node, "repeat")
        if text is None or node is None:
            return None
        try:
            return read_repeat(text).text
        except RepeatError as exc:
            for message in str(exc).splitlines():
                self.report(node, f"repeat: {message}")
            return None

    def done(self, node: yaml.Node | None) -> Absolute | None:
        expr = self.expr(node, "done")
        if expr is not None and node is not None and not isinstance(expr, Absolute):
            self.report(node, "done must be a date (YYYY-MM-DD) or date and time, not a relative date")
            return None
        return expr if isinstance(expr, Absolute) else None

    def roll(self, node: yaml.Node | None) -> Roll | None:
        value = self.scalar(node, "roll")
        if value is None or node is None:
            return None
        if value not in ROLLS:
            fix = "previous (the working day before) or next (the working day after)"
            self.report(node, f"roll {shorten(value)!r} is not {fix}{suggest(value, ROLLS)}")
            return None
        return "previous" if value == "previous" else "next"

    def calendar(self, keys: dict[str, yaml.Node], default: WorkCalendar) -> WorkCalendar:
        """Return the timeline's working days: its own `weekend` and `holidays`, each else the default's."""
        weekend = self.weekend(keys["weekend"]) if "weekend" in keys else None
        found = self.holidays(keys["holidays"]) if "holidays" in keys else None
        country, subdivision, closed = found or (default.country, default.subdivision, default.closed)
        return WorkCalendar(default.weekend if weekend is None else weekend, country, subdivision, closed)

    def weekend(self, node: yaml.Node) -> frozenset[int] | None:
        days: set[int] = set()
        for item in self.items(node, "weekend days", len(WEEKDAYS) - 1, "a week needs a working day: list"):
            name = (self.scalar(item, "weekend") or "").lower()
            if name in WEEKDAYS:
                days.add(WEEKDAYS.index(name))
            elif name:
                hint = suggest(name[:3], WEEKDAYS) or f" ({', '.join(WEEKDAYS)})"
                self.report(item, f"weekend: {shorten(name)!r} is not a day of the week{hint}")
        return frozenset(days) if isinstance(node, yaml.SequenceNode) else None

    def holidays(self, node: yaml.Node) -> tuple[str | None, str | None, frozenset[date]] | None:
        """Read `holidays: {country: CH, subdivision: GE, dates: [...]}`; None when unusable."""
        if is_null(node):
            self.report(node, "'holidays' is empty: give country (and subdivision) and/or dates, or {} for none")
            return None
        keys = self.mapping(node, HOLIDAY_KEYS, (), "holidays")
        country = self.country(keys.get("country"))
        subdivision = self.subdivision(keys.get("subdivision"), country)
        if "subdivision" in keys and "country" not in keys:
            self.report(keys["subdivision"], "holidays: a subdivision needs its country, e.g. country: CH")
        closed = set()
        for item in self.items(keys.get("dates"), "holiday dates", MAX_CLOSED_DATES):
            expr = self.expr(item, "holidays")
            if isinstance(expr, Absolute) and expr.clock is None:
                closed.add(expr.day)
            elif expr is not None:
                self.report(item, "holidays: each date is a day (YYYY-MM-DD), without a time and not relative")
        self.shared_file(keys.get("file"))
        return country, subdivision, frozenset(closed)

    def shared_file(self, node: yaml.Node | None) -> None:
        name = self.scalar(node, "file")
        if name is None or node is None:
            return
        if not SHARED_FILE.fullmatch(name):
            where = "the name of a .txt file in the schedules folder, e.g. closures.txt"
            self.report(node, f"holidays: file {shorten(name)!r} must be {where}")
            return
        self.closures_file = (name, node.start_mark.line + 1)

    def country(self, node: yaml.Node | None) -> str | None:
        value = self.scalar(node, "country")
        if value is None or node is None:
            return None
        places = supported_places()
        if value not in places:
            hint = f" (did you mean {value.upper()!r}?)" if value.upper() in places else suggest(value, places)
            where = "a country code known to the holidays library (ISO 3166, e.g. CH, FR, US)"
            self.report(node, f"holidays: unknown country {shorten(value)!r}{hint}; write {where}")
            return None
        return value

    def subdivision(self, node: yaml.Node | None, country: str | None) -> str | None:
        value = self.scalar(node, "subdivision")
        if value is None or node is None or country is None:
            return None
        known = supported_places()[country]
        if value not in known:
            hint = f" (did you mean {value.upper()!r}?)" if value.upper() in known else suggest(value, known)
            listed = ", ".join(known[:30]) + (", …" if len(known) > 30 else "") if known else "none"
            self.report(node, f"holidays: {country} has no subdivision {shorten(value)!r}{hint}; it has: {listed}")
            return None
        return value

    def check_shape(self, node: yaml.Node, keys: dict[str, yaml.Node], spec: MilestoneSpec) -> None:
        if "due" in keys and "starts" in keys:
            self.report(keys["starts"], "a milestone has either 'due' (a deadline) or 'starts' (a span), not both")
        elif "due" not in keys and "starts" not in keys:
            self.report(node, "milestone needs 'due' (a deadline) or 'starts' (a span such as a meeting)")
        if "ends" in keys and "starts" not in keys:
            self.report(keys["ends"], "'ends' needs 'starts': only spans end")
        if "overdue" in keys and "starts" in keys and "due" not in keys:
            self.report(
                keys["overdue"], "overdue: only deadlines ('due') are late and chased; remove it from this span"
            )
        first = spec.due or spec.starts
        if spec.repeat is not None and spec.roll is not None:
            self.report(
                keys["roll"], "roll: a repeating milestone's dates are not rolled; give each date its own milestone"
            )
        if spec.repeat is not None and isinstance(first, Relative):
            self.report(keys["repeat"], "a repeating milestone needs an absolute first date, not a relative one")
        elif spec.repeat is not None and isinstance(first, Absolute):
            self.check_repeat(keys["repeat"], spec.repeat, first)

    def check_repeat(self, node: yaml.Node, rule: str, first: Absolute) -> None:
        """Check a rule against its first date; past MAX_REPEATING rules, refuse instead of expanding more."""
        self.repeating += 1
        if self.repeating > MAX_REPEATING:
            self.report(node, f"repeat: more than {MAX_REPEATING} repeating milestones in one file: split it")
            return
        # The planner expands from the first date's local time (midnight for a date alone).
        start = datetime.combine(first.day, first.clock or time(0))
        for message in check_first_date(read_repeat(rule), start):
            self.report(node, f"repeat: {message}")
