"""Factories for timeline YAML texts, shared by the pure tests of dates, schedules and properties."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from textwrap import dedent
from typing import Any

from tracker.timelines.validation import validate_paths
from tracker.timelines.views import MilestoneView

REPO = Path(__file__).resolve().parents[2]
REPO_SCHEDULES = REPO / "schedules"


def milestone_yaml(id: str = "nominations", title: str | None = None, **fields: str) -> str:
    """Return one milestone as a YAML list item: id, title, then *fields* in the order given."""
    lines = [f"id: {id}", f"title: {title or id.replace('-', ' ').capitalize()}"]
    lines += [f"{key}: {value}" for key, value in fields.items()]
    return "  - " + "\n    ".join(lines) + "\n"


def timeline_yaml(*milestones: str, **keys: str | None) -> str:
    """Return a valid timeline file; keywords replace top-level keys (None drops one).

    Layout: id, title, timezone, audiences on lines 1-4, then any extra keys,
    then `milestones:` and the milestones (one deadline by default).
    """
    top: dict[str, str | None] = {
        "id": "wsis-prizes",
        "title": "WSIS Prizes",
        "timezone": "Europe/Zurich",
        "audiences": "[membership, secretariat]",
    }
    top.update(keys)
    head = "".join(f"{key}: {value}\n" for key, value in top.items() if value is not None)
    body = "".join(milestones) or milestone_yaml(owner="membership", due="2027-03-10")
    return f"{head}milestones:\n{body}"


MEETING = timeline_yaml(
    milestone_yaml("meeting", "CWG-WSIS-32, Geneva", starts="2018-01-24", ends="2018-01-25", location="Geneva"),
    milestone_yaml("secretariat-documents", owner="secretariat", due="meeting - 30d"),
    milestone_yaml("summary-posted", owner="secretariat", due="meeting.end + 1w", reminders="[2d, 4h]"),
    id="cwg-wsis-32",
    title="32nd meeting of the Council Working Group on WSIS",
    kind="meeting",
)

DRAFTING = timeline_yaml(
    milestone_yaml("revised-draft", owner="secretariat", due="2017-02-24", done="2017-02-23"),
    milestone_yaml("member-comments", owner="membership", due="revised-draft.done + 14d", opens_after="revised-draft"),
    milestone_yaml("submission", owner="secretariat", due="2017-04-28 12:00", reminders="[7d, 2d, 4h]"),
    milestone_yaml("side-event", owner="secretariat", due="2017-04-01", status="cancelled"),
    id="hlpf-2017",
    title="ITU Council contribution to HLPF-17",
    kind="drafting",
    reminders="[14d, 7d, 1d]",
)

YEARLY = timeline_yaml(
    milestone_yaml(
        "forum", "WSIS Forum (yearly)", starts="2019-03-18", ends="2019-03-22", repeat="FREQ=YEARLY;COUNT=5"
    ),
    milestone_yaml("contributions", owner="membership", due="2019-01-30 18:00", repeat="FREQ=YEARLY;BYMONTHDAY=30"),
    id="wsis-forum-yearly",
    title="WSIS Forum (yearly)",
    kind="forum",
    timezone="America/New_York",
    reminders="[]",
)

FOLLOW_UP = timeline_yaml(
    milestone_yaml("briefing", owner="membership", due="cwg-wsis-32/meeting - 7d"),
    milestone_yaml("report", owner="secretariat", due="hlpf-2017/submission + 2w"),
    id="follow-up",
    title="Follow-up in Tokyo",
    timezone="Asia/Tokyo",
)

GOOD_TIMELINES = {
    "cwg-wsis-32.yaml": MEETING,
    "hlpf-2017.yaml": DRAFTING,
    "wsis-forum-yearly.yaml": YEARLY,
    "follow-up.yaml": FOLLOW_UP,
}


def make_view(**overrides: Any) -> MilestoneView:
    """A stored milestone as planning, feeds and emails see it: the HLPF-17 comments deadline."""
    values: dict[str, Any] = {
        "timeline_id": "hlpf",
        "timeline_title": "HLPF-17",
        "key": "member-comments",
        "title": "Membership comments on the revised draft",
        "kind": "deadline",
        "all_day": True,
        "zone": "Europe/Zurich",
        "owner": "membership",
        "due_at": datetime(2017, 3, 10, 22, 59, 59, tzinfo=UTC),  # end of 10 March in Geneva
        "audiences": ("membership", "secretariat"),
    }
    values.update(overrides)
    return MilestoneView(**values)


def write(folder: Path, name: str, text: str) -> Path:
    """Write a timeline file (dedented) into *folder*."""
    path = folder / name
    path.write_text(dedent(text), encoding="utf-8")
    return path


def validate(folder: Path, *only: Path) -> list[str]:
    """Validate *only* (default: the whole folder) and return the problems as printed."""
    _, problems = validate_paths(list(only) or [folder], folder, "Europe/Zurich")
    return [str(problem) for problem in problems]
