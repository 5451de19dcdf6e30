"""Channels: webhooks, Microsoft Teams and Slack, told what subscribers are told (docs/channels.md).

The channels file read and checked (`settings`), synced into the store (`syncing`), a message's
payload for each kind of channel (`payloads`, pure) and the HTTP POST that delivers it, signed
(`posting`, with httpx2, which web/oidc.py uses too for Authlib). It knows nothing of languages: the
words come in a `Post` the email renderer wrote (tracker/emails/posts.py).

A channel's outbox rows name it by a subscriber id below every other (`recipient_of`): subscribers
count up from 1 and a console user's sign-in rows name their link's id negated, from -1 down.
"""

from __future__ import annotations

# Far below any sign-in link's negated id, and the store's 32-bit integers still hold every channel's.
CHANNEL_BASE = 1 << 30


def recipient_of(channel_id: int) -> int:
    """The subscriber id a channel's outbox rows carry."""
    return -(CHANNEL_BASE + channel_id)


def channel_of(recipient: int) -> int | None:
    """The channel an outbox row's subscriber id names, or None if it names a subscriber or a sign-in link."""
    return -recipient - CHANNEL_BASE if recipient <= -CHANNEL_BASE else None
