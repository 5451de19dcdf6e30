"""The channels file synced into the store: a channel added, changed, quarantined or removed is an event.

The event names the channel as its outbox rows do (a subscriber id, `recipient_of`), so the next
planning re-plans that channel's rows and no one else's (delivery/scope.py), as for a subscriber.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from tracker.channels import recipient_of
from tracker.channels.settings import ChannelsFile, ChannelSpec
from tracker.store.models import Channel, Event

log = logging.getLogger("tracker.channels")
PLANNED_FIELDS = ("kind", "language", "timezone", "audiences", "timelines", "reminders", "state")
ACTOR = "channels-file"


@dataclass
class ChannelsSynced:
    added: int = 0
    changed: int = 0
    quarantined: int = 0
    removed: int = 0

    @property
    def any(self) -> bool:
        return bool(self.added or self.changed or self.quarantined or self.removed)


def sync_channels(session: Session, found: ChannelsFile, now: datetime) -> ChannelsSynced:
    """Make the stored channels what the file says; a file that could not be read changes nothing."""
    result = ChannelsSynced()
    if not found.readable:
        return result
    stored = {channel.name: channel for channel in session.exec(select(Channel))}
    for spec in found.channels:
        channel = stored.get(spec.name)
        if channel is None:
            channel = Channel(name=spec.name, updated_at=now, **values_of(spec))
            session.add(channel)
            session.flush()
            record(session, channel, "channel_added", now)
            result.added += 1
        elif update(channel, values_of(spec), now):
            record(session, channel, "channel_changed", now)
            result.changed += 1
    for name, reason in found.bad.items():
        channel = stored.get(name)
        if channel is not None and channel.state != "quarantined":
            channel.state, channel.reason, channel.updated_at = "quarantined", reason, now
            record(session, channel, "channel_quarantined", now)
            result.quarantined += 1
    named = {spec.name for spec in found.channels} | set(found.bad)
    for name, channel in stored.items():
        if name not in named and channel.state != "removed":
            channel.state, channel.reason, channel.updated_at = "removed", "no longer in the channels file", now
            record(session, channel, "channel_removed", now)
            result.removed += 1
    return result


def values_of(spec: ChannelSpec) -> dict[str, Any]:
    return {
        "kind": spec.kind, "language": spec.language, "timezone": spec.timezone, "audiences": list(spec.audiences),
        "timelines": None if spec.timelines is None else list(spec.timelines),
        "reminders": None if spec.reminders is None else list(spec.reminders),
        "target": dict(spec.target), "state": "active", "reason": "", "source": spec.source,
    }  # fmt: skip


def update(channel: Channel, values: dict[str, Any], now: datetime) -> bool:
    """Set *values* on *channel*; tell whether anything planning reads changed (then an event re-plans it)."""
    planned = any(getattr(channel, name) != values[name] for name in PLANNED_FIELDS)
    if any(getattr(channel, name) != value for name, value in values.items()):
        for name, value in values.items():
            setattr(channel, name, value)
        channel.updated_at = now
    return planned


def record(session: Session, channel: Channel, kind: str, now: datetime) -> None:
    assert channel.id is not None
    session.add(channel)
    detail = {"channel": channel.name, "kind": channel.kind, "reason": channel.reason}
    session.add(Event(at=now, kind=kind, subscriber_id=recipient_of(channel.id), detail=detail, actor=ACTOR))
    log.info("channel %s: %s%s", channel.name, kind.removeprefix("channel_"),
             f" ({channel.reason})" if channel.reason else "")  # fmt: skip
