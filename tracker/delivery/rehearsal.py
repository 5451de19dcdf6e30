"""What a completion or a reopening would change and send, before anyone confirms it.

The action is done for real inside a write transaction that is then rolled back: the dates
that move are the ones `record_done`/`record_reopen` compute, and the notices are chosen by
the handlers' own functions (`notices.to_open`, `notices.to_correct`, `notices.preview`), so
the console's confirmation page cannot tell a different story from what then happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from tracker.delivery.notices import Snapshot, preview, to_correct, to_open
from tracker.store.engine import transaction
from tracker.timelines.diff import Change
from tracker.timelines.views import MilestoneView


@dataclass(frozen=True)
class Notice:
    """Messages of one kind about one milestone: how many subscribers get one, and what is withdrawn."""

    kind: str  # opened | correction | changed
    about: MilestoneView
    subscribers: int
    withdrawn: int = 0  # 'opened' notices not sent yet, cancelled instead


@dataclass(frozen=True)
class Rehearsal:
    changes: list[Change]
    notices: list[Notice]


class _RolledBack(Exception):  # noqa: N818  # carries the rehearsal out of the transaction it undoes
    def __init__(self, rehearsal: Rehearsal) -> None:
        self.rehearsal = rehearsal


def rehearse(engine: Engine, act: Callable[[Session], list[Change]], *, now: datetime) -> Rehearsal:
    """Run *act* (a completion or reopening) and read the notices it would cause, then undo it all.

    Errors of *act* (CompletionError and its kinds) reach the caller as they would for real."""
    try:
        with transaction(engine, write=True) as session:
            changes = act(session)
            raise _RolledBack(Rehearsal(changes, notices_of(session, changes, now)))
    except _RolledBack as undone:
        return undone.rehearsal


def notices_of(session: Session, changes: list[Change], now: datetime) -> list[Notice]:
    """The notices *changes* cause, as the store stands after them (inside the rehearsal)."""
    snapshot = Snapshot(session)
    found: list[Notice] = []
    for change in changes:
        view = snapshot.view(change.timeline_id, change.milestone_key)
        if view is None:
            continue
        if change.kind == "completed":
            found += [Notice("opened", step, len(readers)) for step, readers in to_open(view, snapshot, now)]
        elif change.kind == "reopened":
            found += [Notice("correction", step, len(told), len(unsent))
                      for step, unsent, told in to_correct(session, view, snapshot)]  # fmt: skip
    opened = {(n.about.timeline_id, n.about.key) for n in found}
    # A step that opens is announced by its 'opened' notice, which gives its new dates: no 'changed' line.
    moved = [c for c in changes if c.kind != "completed" and (c.timeline_id, c.milestone_key or "") not in opened]
    for key, (kind, count) in preview(session, moved, now).by_change.items():
        view = snapshot.view(*key)
        if kind == "changed" and view is not None:
            found.append(Notice("changed", view, count))
    return [n for n in found if n.subscribers or n.withdrawn]  # a notice to nobody is nothing sent
