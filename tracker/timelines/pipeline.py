"""The timeline pipeline end to end: files → specs → resolved dates → plan → store.

Entry points (CLI, main job) call these; each opens one transaction at most.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.metadata
import json
import zoneinfo
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from tracker import __version__
from tracker.store.engine import head_revision, transaction
from tracker.store.models import SyncState
from tracker.timelines.diff import SyncPlan
from tracker.timelines.files import (
    FileProblem,
    TimelineSpec,
    UnreadableFileError,
    errors_in,
    find_files,
    find_shared_files,
    load_schedules,
    read_files,
)
from tracker.timelines.resolve import resolve_dates, rules_from_specs
from tracker.timelines.stored import newest_view_event
from tracker.timelines.sync import apply_plan, plan_sync
from tracker.timelines.validation import incomplete_timelines
from tracker.timelines.workdays import DEFAULT_CALENDAR, WorkCalendar


@dataclass
class SyncOutcome:
    plan: SyncPlan | None
    problems: list[FileProblem]
    timelines: int = 0
    milestones: int = 0
    specs: list[TimelineSpec] = field(default_factory=list)  # what the files said (not kept by a skipped sync)

    @property
    def ok(self) -> bool:
        return not errors_in(self.problems)

    @property
    def warnings(self) -> list[FileProblem]:
        return [p for p in self.problems if p.warning]


def sync_folder(
    engine: Engine,
    folder: Path,
    *,
    zone: str,
    reminders: Sequence[str],
    now: datetime,
    dry_run: bool = False,
    on_file: Callable[[Path], None] | None = None,
    calendar: WorkCalendar = DEFAULT_CALENDAR,
) -> SyncOutcome:
    """Load *folder* and apply it in one transaction, or report why nothing changed.

    *calendar*: the working days of timelines that declare none (tracker.toml's weekend and holidays).
    """
    if not folder.is_dir():
        return SyncOutcome(None, [FileProblem(str(folder), 1, "schedules folder not found")])
    files = find_files([folder])
    # Read once: the digest and the specs are then of the same bytes, even if a file is being saved.
    # The closures files timelines may share are part of the input too (a new closed day moves dates).
    contents = read_files([*files, *find_shared_files(folder)])
    digest = input_digest(files, zone, reminders, contents, calendar)
    with transaction(engine) as session:
        state = session.get(SyncState, 1)
        if state is not None and state.digest == digest and state.event_id == newest_event_id(session):
            return SyncOutcome(SyncPlan.nothing(), [], state.timelines, state.milestones)
    with paused_gc():
        return load_and_apply(engine, files, contents, digest, zone=zone, reminders=reminders, now=now,
                              dry_run=dry_run, on_file=on_file, calendar=calendar)  # fmt: skip


def load_and_apply(
    engine: Engine,
    files: Sequence[Path],
    contents: Mapping[Path, bytes | UnreadableFileError],
    digest: str,
    *,
    zone: str,
    reminders: Sequence[str],
    now: datetime,
    dry_run: bool,
    on_file: Callable[[Path], None] | None,
    calendar: WorkCalendar = DEFAULT_CALENDAR,
    uncached: Collection[Path] = (),
) -> SyncOutcome:
    specs, problems = load_schedules(files, zone, on_file, contents, calendar, uncached)
    if errors_in(problems):  # report the date problems of the same files too: all problems at once
        _, date_problems = resolve_dates(rules_from_specs(specs), {}, incomplete_timelines(specs))
        return SyncOutcome(None, sorted(problems + date_problems), specs=specs)
    # The files are read before the write lock is taken; only diffing and writing hold it.
    with transaction(engine, write=not dry_run) as session:
        plan, date_problems = plan_sync(session, specs, reminders)
        problems = sorted(problems + date_problems)
        count = sum(len(s.milestones) for s in specs)
        if plan is not None and not dry_run:
            apply_plan(session, plan, now=now)
            record_state(session, SyncState(digest=digest, timelines=len(specs), milestones=count, synced_at=now))
    return SyncOutcome(plan, problems, len(specs), count, specs)


def forget_earlier_syncs() -> None:
    """Drop what this process remembers from earlier syncs (parsed files, expressions)."""
    from tracker.timelines import dates, diff, files

    files.clear_cache()
    dates.parse_expr.cache_clear()
    dates.parse_stored_expr.cache_clear()
    dates.parse_offset.cache_clear()
    dates.local_to_utc.cache_clear()
    diff.expr_text.cache_clear()
    diff.format_offsets.cache_clear()


def input_digest(
    files: Sequence[Path],
    zone: str,
    reminders: Sequence[str],
    contents: Mapping[Path, bytes | UnreadableFileError],
    calendar: WorkCalendar = DEFAULT_CALENDAR,
) -> str:
    """Hash everything a sync's result depends on: the files, the defaults, the code, zone and holiday data."""
    digest = hashlib.sha256()
    # The holidays package's version: a new release may add or move a public holiday, and so a rolled date.
    default_days = json.dumps(calendar.describe(), sort_keys=True)
    holidays = importlib.metadata.version("holidays")
    for part in (__version__, head_revision(), zone_data_version(), zone, ",".join(reminders), default_days, holidays):
        digest.update(part.encode() + b"\0")
    listed = set(files)
    for path in [*files, *(p for p in contents if p not in listed)]:  # then the shared closures files
        digest.update(str(path).encode() + b"\0")
        data = contents.get(path)
        if isinstance(data, bytes):
            digest.update(data)
        digest.update(b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=1)
def zone_data_version() -> str:
    """The IANA release in use (system zoneinfo first, as zoneinfo itself looks there first)."""
    for folder in zoneinfo.TZPATH:
        with suppress(OSError):
            return (Path(folder) / "tzdata.zi").read_text(encoding="utf-8").split("\n", 1)[0]
    return importlib.metadata.version("tzdata")


def newest_event_id(session: Session) -> int | None:
    """The store's change marker for a sync: the newest event that changed a timeline, milestone or completion."""
    return newest_view_event(session)


def record_state(session: Session, state: SyncState) -> None:
    state.event_id = newest_event_id(session)
    session.merge(state)


@contextmanager
def paused_gc() -> Iterator[None]:
    # A sync allocates many small objects that all live until it ends; the cycle collector
    # would walk them several times over for nothing (a large part of a cold sync).
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
