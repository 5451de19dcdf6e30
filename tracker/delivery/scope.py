"""What a batch of events can change in the outbox: the milestones and subscribers to re-plan (issue 18).

Pure: events and views in, keys out. A pass re-plans only the rows of what its new events name
(partial.py); an event it cannot place (none yet, but a new kind might be) re-plans everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tracker.timelines.views import MilestoneView

# A delivery's outcome, a console sign-in, an API token: no milestone nor subscriber changes.
UNPLANNED = ("delivery_", "console_", "api_token_")
# Beyond these a scoped re-plan asks the store for more keys than a whole one reads rows:
# an import of thousands, a sync of many timelines.
MOST_SUBSCRIBERS = 500
MOST_TIMELINES = 50


class Named(Protocol):
    """A stored event, as far as scoping reads it."""

    @property
    def kind(self) -> str: ...
    @property
    def timeline_id(self) -> str: ...
    @property
    def milestone_key(self) -> str | None: ...
    @property
    def subscriber_id(self) -> int | None: ...
    @property
    def detail(self) -> dict[str, Any] | None: ...


@dataclass
class Scope:
    """What new events name: re-planned; *everything* when they name what no key can hold."""

    everything: bool = False
    milestones: set[tuple[str, str]] = field(default_factory=set)
    timelines: set[str] = field(default_factory=set)  # a timeline's own settings (all its milestones)
    subscribers: set[int] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not (self.everything or self.milestones or self.timelines or self.subscribers)

    @property
    def too_big(self) -> bool:
        return len(self.subscribers) > MOST_SUBSCRIBERS or len(self.timelines) > MOST_TIMELINES


def scope_of(events: Iterable[Named]) -> Scope:
    """The milestones, timelines and subscribers *events* changed."""
    scope = Scope()
    for event in events:
        if event.kind.startswith(UNPLANNED):
            continue
        if relinks(event):
            scope.everything = True
        elif event.subscriber_id is not None:
            scope.subscribers.add(event.subscriber_id)
        elif event.timeline_id and event.milestone_key:
            scope.milestones.add((event.timeline_id, event.milestone_key))
        elif event.timeline_id:
            scope.timelines.add(event.timeline_id)
        else:
            scope.everything = True
    scope.everything = scope.everything or scope.too_big
    return scope


def relinks(event: Named) -> bool:
    """Whether *event* edits a step's `opens_after`: the step it waited for is named nowhere else.

    Links are read from the views as they are now (linked_timelines), so a link dropped or moved
    to another step would leave the old step's late notices as they were. The edit is rare."""
    return event.kind == "updated" and "opens_after" in ((event.detail or {}).get("fields") or ())


def linked_timelines(timelines: set[str], views: Iterable[MilestoneView]) -> set[str]:
    """*timelines* and every timeline tied to them by an `opens_after`, either way, however far.

    A step's late notices depend on every step of its timeline (when the next one begins) and on
    the steps waiting for it; a window's reminders on the step it waits for (timelines/states.py).
    """
    links: dict[str, set[str]] = {}
    for view in views:
        if view.opens_after:
            other = view.opens_after.rpartition("/")[0] or view.timeline_id
            links.setdefault(view.timeline_id, set()).add(other)
            links.setdefault(other, set()).add(view.timeline_id)
    found, todo = set(timelines), list(timelines)
    while todo:
        for other in links.get(todo.pop(), ()):
            if other not in found:
                found.add(other)
                todo.append(other)
    return found


def waiting_on(milestones: set[tuple[str, str]], views: Iterable[MilestoneView]) -> set[tuple[str, str]]:
    """*milestones* and every milestone that waits for one of them (its `opens_after`), however far."""
    waiters: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for view in views:
        if view.opens_after:
            timeline, _, key = view.opens_after.rpartition("/")
            waiters.setdefault((timeline or view.timeline_id, key), []).append((view.timeline_id, view.key))
    found, todo = set(milestones), list(milestones)
    while todo:
        for other in waiters.get(todo.pop(), ()):
            if other not in found:
                found.add(other)
                todo.append(other)
    return found
