"""A channel's message written from the same request, templates and catalogs as the email (docs/channels.md).

The title is the email's subject and the text its plain-text content, without the email's footer
(a channel has no preferences to manage) and without the sentence about the attached calendar
file (a channel gets none): so a channel reads in its language exactly what a member reads. The
facts (timeline, milestone, dates in UTC with the zone, the lines of a change) are the webhook's data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tracker.channels.payloads import Post
from tracker.emails.render import Renderer, check_request, render_block, scrub, tidy_text
from tracker.emails.requests import ChangeLine, EmailRequest
from tracker.i18n.languages import N_
from tracker.links import timeline_page
from tracker.timelines.views import MilestoneView, timeline_title_in, title_in

ATTACHED_SENTENCE = "Open the attached calendar file to add this item to your calendar."
LINK_LABEL = N_("Open the timeline page")


def write_post(renderer: Renderer, request: EmailRequest, *, delivery: int, channel: str) -> Post:
    """The message *request* asks for, as a channel is posted it, in the channel's language."""
    check_request(request)
    language = renderer.language_of(request)
    context = renderer.context(request, language)
    template = renderer.templates[f"{request.kind}.txt.j2"]
    title = " ".join(render_block(template, "subject", context).split())
    text = tidy_text(render_block(template, "content", context))
    attached = language.translations.gettext(ATTACHED_SENTENCE)
    text = "\n".join(line for line in text.splitlines() if line.strip() != attached).strip()
    view = about(request)
    link = timeline_page(view, renderer.sender.base_url) if view is not None else ""
    code = language.code
    return Post(delivery=delivery, key=request.key, kind=request.kind, channel=channel, language=code,
                title=scrub(title), text=scrub(text), link=link,
                link_label=language.translations.gettext(LINK_LABEL), sent_at=iso(request.now) or "",
                facts=facts_of(request, code, renderer.sender.base_url))  # fmt: skip


def in_timeline_zone(request: EmailRequest) -> EmailRequest:
    """*request* read on its timeline's clock: a channel without a zone of its own is told no second time."""
    view = about(request)
    return request if view is None else replace(request, recipient=replace(request.recipient, timezone=view.zone))


def about(request: EmailRequest) -> MilestoneView | None:
    if request.view is not None:
        return request.view
    return request.changes[0].view if request.changes else None


def iso(at: datetime | None) -> str | None:
    """An instant as ISO 8601 in UTC, with Z."""
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def facts_of(request: EmailRequest, language: str, base_url: str) -> dict[str, Any]:
    """The webhook's data about the message (docs/channels.md: the schema)."""
    view = about(request)
    facts: dict[str, Any] = {
        "timeline": None if view is None else {
            "id": view.timeline_id, "title": timeline_title_in(view, language), "page": timeline_page(view, base_url),
        },
        "milestone": None if request.view is None else milestone_facts(request.view, language, request.due_at),
        "offset": request.offset if request.kind == "reminder" else None,
        "previous": None if request.predecessor is None else {
            "key": request.predecessor.key, "title": title_in(request.predecessor, language),
        },
        "note": request.note or None,
        "changes": changes_facts(request.changes, language),
    }  # fmt: skip
    return facts


def milestone_facts(view: MilestoneView, language: str, due_at: datetime | None) -> dict[str, Any]:
    deadline = view.due_at is not None
    return {
        "key": view.key, "title": title_in(view, language), "kind": view.kind, "status": view.status,
        "due_at": iso(due_at or view.due_at) if deadline else None,
        "starts_at": None if deadline else iso(due_at or view.starts_at),
        "ends_at": None if deadline else iso(view.ends_at),
        "all_day": view.all_day, "zone": view.zone, "owner": view.owner, "audiences": list(view.audiences),
        "location": view.location or None, "url": view.url or None, "revision": view.revision,
    }  # fmt: skip


def changes_facts(changes: Sequence[ChangeLine], language: str) -> list[dict[str, Any]]:
    return [
        {"timeline": line.view.timeline_id, "milestone": line.view.key, "title": title_in(line.view, language),
         "change": line.change, "old_at": iso(line.old_at), "new_at": iso(line.new_at), "zone": line.view.zone}
        for line in changes
    ]  # fmt: skip
