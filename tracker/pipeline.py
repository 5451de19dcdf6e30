"""The timeline pipeline end to end: files → specs → resolved dates → plan → store.

Entry points (CLI, main job) call these; each opens one transaction at most.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from tracker.resolve import resolve_dates
from tracker.schedules import Problem, TimelineSpec, find_files, load_schedules
from tracker.store import transaction
from tracker.sync import SyncPlan, apply_plan, plan_sync, rules_from_specs


@dataclass
class SyncOutcome:
    plan: SyncPlan | None
    problems: list[Problem]
    timelines: int = 0
    milestones: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_paths(
    paths: Sequence[Path], folder: Path, zone: str, on_file: Callable[[Path], None] | None = None
) -> tuple[list[TimelineSpec], list[Problem]]:
    """Check *paths*; the rest of *folder* is loaded as context for cross-file references."""
    missing = [Problem(str(p), 1, "no such file or folder") for p in paths if not p.exists()]
    # Each file once, even when named both alone and through its folder.
    files = list({p.resolve(): p for p in find_files([p for p in paths if p.exists()])}.values())
    wanted = {p.resolve() for p in files}
    context = [p for p in find_files([folder]) if p.resolve() not in wanted] if folder.is_dir() else []
    specs, problems = load_schedules([*files, *context], zone, on_file)
    _, date_problems = resolve_dates(rules_from_specs(specs), {}, incomplete_timelines(specs))
    found = [p for p in problems + date_problems if Path(p.path).resolve() in wanted]
    mine = [s for s in specs if Path(s.path).resolve() in wanted]
    return mine, sorted(missing + found)


def incomplete_timelines(specs: Sequence[TimelineSpec]) -> frozenset[str]:
    return frozenset(spec.id for spec in specs if not spec.complete)


def sync_folder(
    engine: Engine,
    folder: Path,
    *,
    zone: str,
    reminders: Sequence[str],
    now: datetime,
    dry_run: bool = False,
    on_file: Callable[[Path], None] | None = None,
) -> SyncOutcome:
    """Load *folder* and apply it in one transaction, or report why nothing changed."""
    if not folder.is_dir():
        return SyncOutcome(None, [Problem(str(folder), 1, "schedules folder not found")])
    specs, problems = load_schedules([folder], zone, on_file)
    if problems:  # report the date problems of the same files too: all problems at once
        _, date_problems = resolve_dates(rules_from_specs(specs), {}, incomplete_timelines(specs))
        return SyncOutcome(None, sorted(problems + date_problems))
    with transaction(engine, write=not dry_run) as session:
        plan, problems = plan_sync(session, specs, reminders)
        if plan is not None and not dry_run:
            apply_plan(session, plan, now=now)
    count = sum(len(s.milestones) for s in specs)
    return SyncOutcome(plan, problems, len(specs), count)
