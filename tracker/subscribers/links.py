"""The links every message to a subscriber carries: unsubscribe, preferences, personal feed, confirm."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from tracker.subscribers.tokens import make_token


@dataclass(frozen=True)
class Links:
    unsubscribe: str
    unsubscribe_mailto: str
    preferences: str
    feed: str
    confirm: str | None = None


class LinkMaker:
    """The links every message to a subscriber carries, signed with their current token versions.

    Made once per sender and base URL: a batch does not parse the sender's address per message.
    """

    def __init__(self, secret: bytes, base_url: str, from_address: str) -> None:
        self.secret, self.base = secret, base_url.rstrip("/")
        self.mailbox = parseaddr(from_address)[1] or "tracker@localhost"

    def of(self, subscriber: Any, *, pending: bool = False) -> Links:
        """Links for *subscriber* (anything with id, state and the three token versions); *pending*: the
        links they would have while pending, confirm link included, whatever their state (previews)."""
        base, secret, id_ = self.base, self.secret, subscriber.id
        manage = make_token(secret, "manage", id_, subscriber.manage_version)
        feed = make_token(secret, "feed", id_, subscriber.feed_version)
        confirm = None
        if pending or subscriber.state == "pending":
            confirm = f"{base}/confirm/{make_token(secret, 'confirm', id_, subscriber.confirm_version)}"
        return Links(
            unsubscribe=f"{base}/unsubscribe/{manage}",
            unsubscribe_mailto=f"mailto:{self.mailbox}?subject=unsubscribe%20{manage}",
            preferences=f"{base}/preferences/{manage}",
            feed=f"{base}/feeds/me/{feed}.ics",
            confirm=confirm,
        )
