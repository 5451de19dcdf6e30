"""The store read as milestone views: every milestone with its timeline and completions."""

from __future__ import annotations

from sqlmodel import Session, select

from tracker.store.models import CompletionRecord, Milestone, Timeline
from tracker.timelines.views import CompletionView, MilestoneView


def load_views(session: Session) -> list[MilestoneView]:
    """Read every stored milestone with its timeline and completions, for planning."""
    timelines = {t.id: t for t in session.exec(select(Timeline))}
    done: dict[tuple[str, str], dict[str, CompletionView]] = {}
    for c in session.exec(select(CompletionRecord)):
        done.setdefault((c.timeline_id, c.milestone_key), {})[c.occurrence] = CompletionView(c.done_at, c.note, c.link)
    views = []
    for m in session.exec(select(Milestone).order_by(Milestone.timeline_id, Milestone.position)):  # type: ignore[arg-type]
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
