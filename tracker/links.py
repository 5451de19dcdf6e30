"""Public URLs of things, built in one place: a timeline's page."""

from __future__ import annotations

from tracker.timelines.views import (
    MilestoneView,
)


def timeline_page(view: MilestoneView, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/timelines/{view.timeline_id}"
