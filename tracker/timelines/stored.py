"""The store read as milestone views: every milestone with its timeline and completions."""

from __future__ import annotations

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


def load_views(session: Session) -> list[MilestoneView]:
    """Read every stored milestone with its timeline and completions, for planning."""
    timelines = {t.id: t for t in session.exec(select(Timeline))}
    done: dict[tuple[str, str], dict[str, CompletionView]] = {}
    for c in session.exec(select(CompletionRecord)):
        done.setdefault((c.timeline_id, c.milestone_key), {})[c.occurrence] = CompletionView(c.done_at, c.note, c.link)
    views = []
    # A thousand objects at a time: all 20,000 of a large organisation's milestones as objects at
    # once were twice the memory of the views made of them, at the peak of every delivery pass.
    ordered = select(Milestone).order_by(Milestone.timeline_id, Milestone.position)  # type: ignore[arg-type]
    for m in session.exec(ordered.execution_options(yield_per=1000)):
        timeline = timelines[m.timeline_id]
        views.append(
            MilestoneView(
                timeline_id=m.timeline_id,
                timeline_title=timeline.title,
                key=m.key,
                title=m.title,
                kind=m.kind,
                all_day=m.all_day,
                zone=m.zone,
                owner=m.owner,
                due_at=m.due_at,
                starts_at=m.starts_at,
                ends_at=m.ends_at,
                repeat=m.repeat,
                status=m.status,
                audiences=tuple(timeline.audiences or ()),
                location=m.location,
                reminders=tuple(m.reminders or ()),
                overdue=None if m.overdue is None else tuple(m.overdue),
                completions=done.get((m.timeline_id, m.key), {}),
                summary=m.summary,
                url=m.url,
                revision=m.revision,
                updated_at=m.updated_at,
                timeline_kind=timeline.kind,
                timeline_summary=timeline.summary,
                timeline_source=timeline.source,
                timeline_url=timeline.url,
                opens_after=m.opens_after,
                titles=m.titles or {},
                timeline_titles=timeline.titles or {},
                due_expr=m.due_expr,
                rolled_from=m.rolled_from,
            )
        )
    return views
