"""A channel's outbox row on its way out: the channels file synced, the channel as a recipient, the request.

The dispatcher claims channel rows with the emails and posts them from the same workers
(Dispatcher.post); what is particular to a channel is here (docs/channels.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from tracker.channels import channel_of, recipient_of
from tracker.channels.payloads import body_of
from tracker.channels.posting import headers_for
from tracker.channels.settings import EVERYWHERE, read_channels, resolve_target, unset_variables
from tracker.channels.syncing import sync_channels
from tracker.delivery.compose import Person
from tracker.delivery.outbox import Claimed
from tracker.emails import EmailRequest, Renderer
from tracker.emails.posts import in_timeline_zone, write_post
from tracker.store.models import Channel
from tracker.subscribers.links import Links
from tracker.timelines.screening import read_names, readable_zone

log = logging.getLogger("tracker.delivery.channels")
NO_LINKS = Links("", "", "", "")  # a channel has no preferences, feed or unsubscribe link of its own
ABSENT = (-1, -1)


class ChannelsFile:
    """The channels file, synced into the store when it changed since this process last did."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.seen: tuple[int, int] | None = None  # its (mtime, size) when last synced; ABSENT: there was none

    def sync(self, session: Session, now: datetime) -> None:
        if self.path is None:
            return
        try:
            stat = self.path.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            seen = ABSENT  # no channels (those stored are removed); looked at again once it appears
        if seen == self.seen:
            return
        # The store holds the variables' names, never their values: another process without them (an
        # operator's `tracker send-due` in a bare shell) must not quarantine channels for everyone.
        # Each process reads the values when it posts (request_for): unset, the post waits.
        found = read_channels(self.path, EVERYWHERE)
        for problem in found.problems:
            log.warning("%s", problem)
        for spec in found.channels:
            for variable in unset_variables(spec.target):
                log.warning("%s: channel %s: the environment variable %s is not set here: its posts wait for it",
                            spec.source, spec.name, variable)  # fmt: skip
        synced = sync_channels(session, found, now)
        if synced.any:
            log.info("channels: %d added, %d changed, %d quarantined, %d removed",
                     synced.added, synced.changed, synced.quarantined, synced.removed)  # fmt: skip
        self.seen = seen  # its problems are logged once, not at every pass, until it changes


def is_channel_row(row: Claimed) -> bool:
    return row.kind != "sign-in" and channel_of(row.subscriber_id) is not None


def channel_person(channel: Channel) -> Person:
    """A channel as compose reads a recipient: 'confirmed' (the caller checks that it is active)."""
    assert channel.id is not None
    try:
        audiences, timelines = read_names(channel.audiences) or (), read_names(channel.timelines)
    except ValueError:  # not as the channels file writes them: it concerns nothing (planning left it out)
        audiences, timelines = (), ()
    zone = readable_zone(channel.timezone) if channel.timezone else "UTC"  # '': the timeline's (request_of)
    return Person(recipient_of(channel.id), "", channel.name, channel.language, zone, "confirmed", audiences,
                  timelines, NO_LINKS)  # fmt: skip


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


def request_of(renderer: Renderer, row: Claimed, channel: Channel, composed: EmailRequest) -> Request:
    """The POST of *row* to *channel*: its payload in the channel's language, signed if it has a secret.

    Raise LookupError if a variable the channel names is not set here.
    """
    body = payload_of(renderer, row, channel, composed)
    url, secret = resolve_target(channel.target or {})
    return Request(url, body, headers_for(body, row.key_text, secret))


def payload_of(renderer: Renderer, row: Claimed, channel: Channel, composed: EmailRequest) -> bytes:
    """What *channel* is posted for *row*: its kind's JSON, in its language, on its clock (or the timeline's)."""
    if not channel.timezone:
        composed = in_timeline_zone(composed)
    return body_of(channel.kind, write_post(renderer, composed, delivery=row.id, channel=channel.name))
