"""What `tracker validate` and `tracker plan` would say if one more file were in the schedules folder.

For the console's upload (docs/console.md, "Timeline files"): the file's bytes stand in for a file of
its name in the folder (replacing one of that name), the rest of the folder is read as `tracker sync`
reads it, and the store is compared with the result in a read-only transaction. Nothing is written:
not the file, not the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from tracker.delivery.notices import NoticePreview, preview
from tracker.store.engine import transaction
from tracker.timelines.diff import Change, SyncPlan
from tracker.timelines.files import MAX_FILE_BYTES, TOO_BIG, FileProblem, errors_in, find_shared_files, read_files
from tracker.timelines.loaded import MAX_FOLDER_FILES, MAX_SHOWN_PROBLEMS, Reading, list_files, shown
from tracker.timelines.pipeline import load_and_apply

NOTICED = ("rescheduled", "cancelled", "removed", "restored", "completed")  # the kinds `tracker plan` previews


@dataclass(frozen=True)
class DryRun:
    """The answer for one uploaded file."""

    name: str
    problems: list[FileProblem]  # the file's own, as `tracker validate FILE` prints them
    others: list[FileProblem] = field(default_factory=list)  # errors of other files: they stop any sync too
    changes: list[Change] | None = None  # what a sync would change because of this file; None: no plan
    elsewhere: list[Change] = field(default_factory=list)  # changes of other files, not synced yet
    notices: NoticePreview = field(default_factory=lambda: NoticePreview({}, []))
    timelines: int = 0
    milestones: int = 0
    too_many: int = 0  # files in the folder, when more than MAX_FOLDER_FILES: nothing is read then

    @property
    def errors(self) -> int:
        return len(errors_in(self.problems))


def dry_run(engine: Engine, reading: Reading, name: str, data: bytes, *, now: datetime) -> DryRun:
    """Validate and plan the folder with *data* as its file *name*; nothing is written anywhere."""
    if len(data) > MAX_FILE_BYTES:
        return DryRun(name, [FileProblem(name, 1, TOO_BIG)])
    folder = reading.folder
    files = [p for p in list_files(folder) if p.name != name]
    if len(files) >= MAX_FOLDER_FILES:
        return DryRun(name, [], too_many=len(files) + 1)
    uploaded = folder / name
    contents = read_files([*files, *find_shared_files(folder)])
    contents[uploaded] = data
    outcome = load_and_apply(engine, [*files, uploaded], contents, "", zone=reading.zone, reminders=reading.reminders,
                             now=now, dry_run=True, on_file=None, calendar=reading.calendar,
                             uncached={uploaded})  # fmt: skip
    mine = [shown(p, folder) for p in outcome.problems if p.path == str(uploaded)]
    others = [shown(p, folder) for p in errors_in(outcome.problems) if p.path != str(uploaded)]
    if not folder.is_dir():  # `tracker sync` stops there: the file is checked, and nothing is planned
        others.insert(0, FileProblem("TRACKER_SCHEDULES", 1, "schedules folder not found"))
    base = DryRun(name, mine[:MAX_SHOWN_PROBLEMS], others[:MAX_SHOWN_PROBLEMS])
    if outcome.plan is None or not folder.is_dir():
        return base
    ids = {s.id for s in outcome.specs if s.path == str(uploaded)} | replaced(outcome.plan, name)
    changes = outcome.plan.changes
    return DryRun(name, base.problems, base.others, [c for c in changes if c.timeline_id in ids],
                  [c for c in changes if c.timeline_id not in ids], notices_of(engine, changes, now),
                  outcome.timelines, outcome.milestones)  # fmt: skip


def replaced(plan: SyncPlan, name: str) -> set[str]:
    """The stored timelines that came from a file of *name*: the upload takes that file's place."""
    return {tid for tid, data in plan.stored.timelines.items() if data.path.rsplit("/", 1)[-1] == name}


def notices_of(engine: Engine, changes: list[Change], now: datetime) -> NoticePreview:
    """The notices the changes call for, as `tracker plan` counts them (delivery/notices.py `preview`)."""
    if not any(c.kind in NOTICED for c in changes):
        return NoticePreview({}, [])
    with transaction(engine) as session:
        return preview(session, changes, now)
