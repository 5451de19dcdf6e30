"""`tracker validate`: check timeline files without a store.

Apart from `pipeline` so that checking files imports only what reading and resolving them need
(YAML, dateutil, the timelines modules): it runs in pre-commit hooks and CI on every save, and
the store's imports (SQLAlchemy, SQLModel) would be most of its time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from tracker.timelines.files import FileProblem, TimelineSpec, find_files, load_schedules
from tracker.timelines.resolve import resolve_dates, rules_from_specs
from tracker.timelines.workdays import DEFAULT_CALENDAR, WorkCalendar


def validate_paths(
    paths: Sequence[Path],
    folder: Path,
    zone: str,
    on_file: Callable[[Path], None] | None = None,
    calendar: WorkCalendar = DEFAULT_CALENDAR,
) -> tuple[list[TimelineSpec], list[FileProblem]]:
    """Check *paths*; the rest of *folder* is loaded as context for cross-file references."""
    missing = [FileProblem(str(p), 1, "no such file or folder") for p in paths if not p.exists()]
    # Each file once, even when named both alone and through its folder.
    files = list({real_path(p): p for p in find_files([p for p in paths if p.exists()])}.values())
    wanted = {real_path(p) for p in files}
    context = [p for p in find_files([folder]) if real_path(p) not in wanted] if folder.is_dir() else []
    specs, problems = load_schedules([*files, *context], zone, on_file, calendar=calendar)
    _, date_problems = resolve_dates(rules_from_specs(specs), {}, incomplete_timelines(specs))
    # A closures file shared by a checked timeline is checked with it.
    wanted |= {real_path(Path(s.path).parent / s.closures_file[0]) for s in specs
               if s.closures_file and real_path(Path(s.path)) in wanted}  # fmt: skip
    found = [p for p in problems + date_problems if real_path(Path(p.path)) in wanted]
    mine = [s for s in specs if real_path(Path(s.path)) in wanted]
    return mine, sorted(missing + found)


def real_path(path: Path) -> str:
    """Name *path* by what it points at; unlike Path.resolve, a link to itself is no RuntimeError."""
    return os.path.realpath(path)


def incomplete_timelines(specs: Sequence[TimelineSpec]) -> frozenset[str]:
    return frozenset(spec.id for spec in specs if not spec.complete)
