"""Which timeline files the schedules folder holds, and how each compares with the store.

For the console's "Timeline files" page: each file's timelines, its problems as `tracker
validate` words them, and whether a sync would change what is stored (a dry run of the whole
folder, as `tracker plan`). Reading is bounded (MAX_FOLDER_FILES, and each file at most
`files.MAX_FILE_BYTES`) and remembered while no file's size or time and no stored event changes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select

from tracker.store.engine import transaction
from tracker.store.models import SyncState, Timeline
from tracker.timelines.diff import SyncPlan
from tracker.timelines.files import FileProblem, TimelineSpec, errors_in, find_shared_files, read_files
from tracker.timelines.pipeline import SyncOutcome, load_and_apply, newest_event_id
from tracker.timelines.workdays import DEFAULT_CALENDAR, WorkCalendar

MAX_FOLDER_FILES = 2000  # a page lists them all; a folder with more is a mistake, or needs `tracker validate`
MAX_SHOWN_PROBLEMS = 1000
MAX_MESSAGE = 500  # characters of one problem's message: it may quote a whole value of the file
STATES = ("synced", "changed", "new", "errors", "unknown")


@dataclass(frozen=True)
class Reading:
    """What a folder is read with: the settings `tracker sync` uses."""

    folder: Path
    zone: str
    reminders: tuple[str, ...]
    calendar: WorkCalendar = DEFAULT_CALENDAR


@dataclass(frozen=True)
class LoadedFile:
    """One timeline file: its timelines (id, title), how it compares with the store, its problems."""

    name: str
    timelines: tuple[tuple[str, str], ...]
    state: str  # one of STATES
    changes: int = 0  # what a sync would change in its timelines (state 'changed')
    problems: tuple[FileProblem, ...] = ()


@dataclass(frozen=True)
class LastSync:
    """The last sync that applied the folder (SyncState): when, and what it held."""

    at: datetime
    timelines: int
    milestones: int


@dataclass(frozen=True)
class FolderReport:
    files: list[LoadedFile]
    gone: list[tuple[str, str, str]]  # stored timelines whose file is gone: id, title, the file's name
    problems: list[FileProblem]  # every file's, named by the file's name in the folder
    last_sync: LastSync | None = None
    missing: bool = False  # no such folder
    too_many: int = 0  # files found, when more than MAX_FOLDER_FILES: none is read then
    problem_count: int = 0  # all problems; `problems` holds the first MAX_SHOWN_PROBLEMS

    @property
    def errors(self) -> int:
        return len(errors_in(self.problems))


def list_files(folder: Path) -> list[Path]:
    """The folder's timeline files (`*.yaml`, `*.yml`), sorted, as `tracker sync` finds them."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return sorted(Path(e.path) for e in entries if e.name.endswith((".yaml", ".yml")) and not is_dir(e))


def is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def fingerprint(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    """Each file's name, modification time and size: a file saved again changes one of them."""
    found = []
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            found.append((path.name, -1, -1))
            continue
        found.append((path.name, status.st_mtime_ns, status.st_size))
    return tuple(found)


def read_folder(engine: Engine, reading: Reading, now: datetime) -> FolderReport:
    """Read the folder and compare it with the store: a dry run of `tracker sync`, nothing written."""
    folder = reading.folder
    if not folder.is_dir():
        return FolderReport([], [], [], missing=True, last_sync=last_sync(engine))  # a sync removes nothing then
    files = list_files(folder)
    if len(files) > MAX_FOLDER_FILES:
        return FolderReport([], [], [], too_many=len(files), last_sync=last_sync(engine))
    contents = read_files([*files, *find_shared_files(folder)])
    outcome = load_and_apply(engine, files, contents, "", zone=reading.zone, reminders=reading.reminders,
                             now=now, dry_run=True, on_file=None,
                             calendar=reading.calendar)  # fmt: skip
    return describe(engine, folder, files, outcome)


def describe(engine: Engine, folder: Path, files: Sequence[Path], outcome: SyncOutcome) -> FolderReport:
    problems = [shown(p, folder) for p in outcome.problems]
    by_file: dict[str, list[FileProblem]] = {}
    for problem in problems:
        by_file.setdefault(problem.path, []).append(problem)
    specs: dict[str, list[TimelineSpec]] = {}
    for spec in outcome.specs:
        specs.setdefault(Path(spec.path).name, []).append(spec)
    stored, touched = stored_timelines(engine), Touched.of(outcome.plan)
    listed = [compare(path.name, specs.get(path.name, []), stored, touched, by_file.get(path.name, []))
              for path in files]  # fmt: skip
    gone = stored_gone(engine, {path.name for path in files}, {s.id for s in outcome.specs})
    return FolderReport(listed, gone, problems[:MAX_SHOWN_PROBLEMS], problem_count=len(problems),
                        last_sync=last_sync(engine))  # fmt: skip


@dataclass(frozen=True)
class Touched:
    """What a dry run of the folder would change, by timeline: counted once for every file."""

    changes: Mapping[str, int]  # timeline id → changes `tracker plan` lists
    quiet: frozenset[str]  # timelines a sync would write without a listed change (line numbers, a moved key)

    @classmethod
    def of(cls, plan: SyncPlan | None) -> Touched | None:
        if plan is None:
            return None
        changes: dict[str, int] = {}
        for change in plan.changes:
            changes[change.timeline_id] = changes.get(change.timeline_id, 0) + 1
        quiet = frozenset(plan.timeline_updates()) | {key[0] for key in plan.silent_updates()}
        return cls(changes, quiet)


def compare(
    name: str,
    specs: Sequence[TimelineSpec],
    stored: Mapping[str, tuple[str, str, bool]],
    touched: Touched | None,
    problems: Sequence[FileProblem],
) -> LoadedFile:
    """How one file stands: errors stop every sync; else new, changed or in sync with the store."""
    ids = [s.id for s in specs]
    # A file that does not read has no spec: name the timelines the store has from it.
    timelines = tuple((s.id, s.title) for s in specs) or tuple(
        (tid, title) for tid, (title, path, removed) in sorted(stored.items()) if path == name and not removed
    )
    if errors_in(problems):
        return LoadedFile(name, timelines, "errors", problems=tuple(problems))
    if any(tid not in stored or stored[tid][2] for tid in ids):
        return LoadedFile(name, timelines, "new", problems=tuple(problems))
    if touched is None:  # another file's errors stop the dry run: nothing to compare with
        return LoadedFile(name, timelines, "unknown", problems=tuple(problems))
    changes = sum(touched.changes.get(tid, 0) for tid in ids)
    state = "changed" if changes or any(tid in touched.quiet for tid in ids) else "synced"
    return LoadedFile(name, timelines, state, changes, tuple(problems))


def shown(problem: FileProblem, folder: Path) -> FileProblem:
    """*problem* named by the file's name in the folder (the server's own paths are nobody's business)."""
    prefix = f"{folder}{os.sep}"
    message = problem.message.replace(prefix, "")
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    path = problem.path.removeprefix(prefix) if problem.path.startswith(prefix) else Path(problem.path).name
    return FileProblem(path, problem.line, message, problem.warning)


def stored_timelines(engine: Engine) -> dict[str, tuple[str, str, bool]]:
    """Every stored timeline: id → (title, its file's name, removed)."""
    table = Timeline.__table__  # type: ignore[attr-defined]
    query = select(table.c.id, table.c.title, table.c.path, table.c.removed_at)
    with transaction(engine) as session:
        rows = session.execute(query).all()
    return {row.id: (row.title, Path(row.path).name, row.removed_at is not None) for row in rows}


def stored_gone(engine: Engine, names: set[str], ids: set[str]) -> list[tuple[str, str, str]]:
    """Stored timelines (not removed) that no file in the folder holds any more."""
    return [
        (tid, title, path)
        for tid, (title, path, removed) in sorted(stored_timelines(engine).items())
        if not removed and tid not in ids and path not in names
    ]


def last_sync(engine: Engine) -> LastSync | None:
    with transaction(engine) as session:
        state = session.get(SyncState, 1)
    return None if state is None else LastSync(state.synced_at, state.timelines, state.milestones)


@dataclass
class FolderCache:
    """The last report, kept while the folder's files (names, times, sizes) and the store's events stay the same."""

    read: Callable[[Engine, Reading, datetime], FolderReport] = read_folder
    key: object = None
    report: FolderReport | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def report_for(self, engine: Engine, reading: Reading, now: datetime) -> FolderReport:
        key = self.key_of(engine, reading)
        with self.lock:  # one reading at a time: two people opening the page read the folder once
            if self.report is None or key != self.key:
                self.report, self.key = self.read(engine, reading, now), key
            return self.report

    @staticmethod
    def key_of(engine: Engine, reading: Reading) -> object:
        folder = reading.folder
        files = list_files(folder)[: MAX_FOLDER_FILES + 1]
        with transaction(engine) as session:
            newest = newest_event_id(session)
            state = session.get(SyncState, 1)
            synced = None if state is None else state.synced_at
        return (reading, folder.is_dir(), fingerprint([*files, *find_shared_files(folder)]), newest, synced)
