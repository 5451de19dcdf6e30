"""The two timeline files most tests write (as the secretariat types them), and the instant they are read at."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

NOW = datetime(2017, 2, 1, 9, 0, tzinfo=UTC)

WriteTimeline = Callable[[str, str], Path]  # the write_timeline fixture: name and YAML text in, path out

HLPF = """
    id: hlpf
    title: ITU Council contribution to HLPF-17
    timezone: Europe/Zurich
    kind: drafting
    audiences: [membership, secretariat]
    reminders: [14d, 7d, 1d]
    milestones:
      - id: revised-draft
        title: Revised draft posted
        owner: secretariat
        due: 2017-02-24
      - id: member-comments
        title: Membership comments on the revised draft
        owner: membership
        due: revised-draft.done + 14d
        opens_after: revised-draft
      - id: final-draft
        title: Final draft posted
        owner: secretariat
        due: member-comments + 2w
      - id: submission
        title: Final text submitted to the UN
        owner: secretariat
        due: 2017-04-28 12:00
        reminders: [7d, 2d, 4h]
"""

MEETING = """
    id: cwg-32
    title: 32nd meeting
    timezone: Europe/Zurich
    kind: meeting
    milestones:
      - id: meeting
        title: CWG-WSIS-32, Geneva
        starts: 2018-01-24
        ends: 2018-01-25
      - id: documents
        title: Secretariat documents available
        owner: secretariat
        due: meeting - 30d
"""
