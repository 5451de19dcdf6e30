"""The store read as milestone views: every milestone with its timeline and completions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlmodel import Session, select

from tracker.store.models import CompletionRecord, Event, Milestone, Timeline
from tracker.timelines.views import CompletionView, MilestoneView

# Events that change no timeline, milestone or completion: a delivery's outcome, a sign-in, a
# token, the console's outbox, a subscriber. A cache of views outlives them (issue 18).
NOT_OF_VIEWS = ("delivery_", "console_", "api_token_", "outbox_", "subscriber_")


def newest_view_event(session: Session) -> int | None:
    """The id of the newest event that may have changed what load_views reads; None before any.

    Caches of views are keyed on it: a console sign-in must not have every feed rebuilt.
    Newest first, stopping at the first match: the primary key's order, no scan of the table.
    """
    table = Event.__table__  # type: ignore[attr-defined]
    others = [~table.c.kind.startswith(prefix, autoescape=True) for prefix in NOT_OF_VIEWS]
    statement = select(table.c.id).where(table.c.subscriber_id.is_(None), *others)
    newest: int | None = session.execute(statement.order_by(table.c.id.desc()).limit(1)).scalar()
    return newest


SHARED = "tracker.views"  # session.info: the views read inside views_read_once


@contextmanager
def views_read_once(session: Session) -> Iterator[None]:
    """Inside, load_views reads the store once and gives every caller that reading (a copy of the list).

    For one delivery pass's planning transaction, which writes no milestone, timeline or completion:
    its notices and its planning each read 20,000 milestones of a large organisation otherwise.
    """
    session.info[SHARED] = None
    try:
        yield
    finally:
        session.info.pop(SHARED, None)


def load_views(session: Session) -> list[MilestoneView]:
    """Read every stored milestone with its timeline and completions, for planning."""
    if SHARED not in session.info:
        return read_views(session)
    if session.info[SHARED] is None:
        session.info[SHARED] = read_views(session)
    return list(session.info[SHARED])


def read_views(session: Session) -> list[MilestoneView]:
    # Each timeline's part of its milestones' views read once, not once a milestone: a thousand
    # timelines' attributes looked up 20,000 times were a good part of a quiet pass (issue 18).
    timelines: dict[str, dict[str, Any]] = {
        t.id: {"timeline_title": t.title, "audiences": tuple(t.audiences or ()), "timeline_kind": t.kind,
               "timeline_summary": t.summary, "timeline_source": t.source, "timeline_url": t.url,
               "timeline_titles": t.titles or {}}
        for t in session.exec(select(Timeline))
    }  # fmt: skip
    done: dict[tuple[str, str], dict[str, CompletionView]] = {}
    for c in session.exec(select(CompletionRecord)):
        done.setdefault((c.timeline_id, c.milestone_key), {})[c.occurrence] = CompletionView(c.done_at, c.note, c.link)
    views = []
    # A thousand rows at a time: all 20,000 of a large organisation's milestones as objects at
    # once were twice the memory of the views made of them, at the peak of every delivery pass.
    # Rows, not ORM objects, read by position: making 20,000 objects only to copy them into views
    # was a third of a quiet delivery pass at that size.
    table = Milestone.__table__  # type: ignore[attr-defined]
    ordered = select(*(table.c[name] for name in MILESTONE_COLUMNS)).order_by(table.c.timeline_id, table.c.position)
    for row in session.execute(ordered.execution_options(yield_per=1000)):
        m: dict[str, Any] = dict(zip(MILESTONE_COLUMNS, row, strict=True))
        timeline_id, key = m["timeline_id"], m["key"]
        m["reminders"] = tuple(m["reminders"] or ())
        m["overdue"] = None if m["overdue"] is None else tuple(m["overdue"])
        m["titles"] = m["titles"] or {}
        views.append(MilestoneView(**m, **timelines[timeline_id], completions=done.get((timeline_id, key), {})))
    return views


# The milestone's columns a view holds, under the view's names.
MILESTONE_COLUMNS = ("timeline_id", "key", "title", "kind", "all_day", "zone", "owner", "due_at", "starts_at",
                     "ends_at", "repeat", "status", "location", "reminders", "overdue", "summary", "url", "revision",
                     "updated_at", "opens_after", "titles", "due_expr", "rolled_from")  # fmt: skip
