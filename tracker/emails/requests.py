"""What a message is asked to say: its kind, recipient, links and sender; the renderer's input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, get_args

from tracker.subscribers.links import Links

if TYPE_CHECKING:  # annotations only: the command line reads KINDS for its help without loading views
    from tracker.timelines.views import MilestoneView, Occurrence

Kind = Literal[
    "confirm", "reminder", "opened", "changed", "cancelled", "correction", "overdue", "delayed", "digest", "sign-in"
]


KINDS: tuple[Kind, ...] = get_args(Kind)


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str
    language: str
    timezone: str


@dataclass(frozen=True)
class ChangeLine:
    """One milestone of a changed message: its view (its text, and its calendar item) and what happened to it."""

    view: MilestoneView
    change: str  # moved | cancelled | removed | restored
    old_at: datetime | None  # moved, restored: the date before; cancelled, removed: the date given up
    new_at: datetime | None  # moved, restored: the date now

    @property
    def at(self) -> datetime | None:
        """The instant the line is about: the new date, or the one given up."""
        return self.new_at if self.change in ("moved", "restored") else self.old_at


@dataclass(frozen=True)
class EmailRequest:
    """One message to render: its kind, for whom, about what."""

    kind: Kind
    recipient: Recipient
    links: Links
    key: str  # the delivery's unique key, e.g. "reminder:42:hlpf/revised-draft:2017-02-24:7d" → Message-ID
    now: datetime  # aware; the Date header
    view: MilestoneView | None = None  # all kinds except confirm/digest
    due_at: datetime | None = None  # this occurrence's instant (repeating milestones)
    offset: str | None = None  # "reminder": "7d", "4h"; "sign-in": the minutes its link works, "15"
    digest: Sequence[Occurrence] = ()  # "digest": what is due in the coming weeks
    predecessor: MilestoneView | None = (
        None  # "opened": the milestone whose completion opened this one; "correction": reopened
    )
    note: str = ""  # "correction": why the earlier step was reopened
    subscribed_to: Sequence[str] = ()  # "confirm": titles of the timelines followed (empty: all)
    changes: Sequence[ChangeLine] = ()  # "changed": every milestone of one change set for this reader, in date order


@dataclass(frozen=True)
class Sender:
    from_address: str  # "Tracker <tracker@localhost>"
    base_url: str  # "http://127.0.0.1:8000": links and calendar UIDs
    list_id: str  # "<deadlines.tracker.localhost>"
    reminder_hour: int = 9  # TRACKER_REMINDER_HOUR, for the alarms of the attached calendar item
