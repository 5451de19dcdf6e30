"""`tracker bounces poll`: bounces read from an IMAP mailbox (TRACKER_BOUNCE_IMAP_URL), with IMAPClient.

Each message is deleted only once its outcome is committed: a poll that dies half-way leaves
the rest, and the one it was reading, for the next poll (a message read twice counts once, as
recording is idempotent). Mail that is no bounce of ours (an automatic reply, a message to
someone else's address) is not deleted: it gets the keyword `$TrackerIgnored` and stays, not
read again. A message larger than TRACKER_BOUNCE_MAX_SIZE is not fetched, and one
that cannot be read (too deeply nested to parse) is not recorded: each gets the keyword
`$TrackerRefused` and stays for a person to look at, and the poll goes on with the next. A store
error stops the poll: the message stays, unflagged, for the next one.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tracker.bounces.intake import BounceConfig, take_bounce
from tracker.bounces.recording import Recorded

log = logging.getLogger(__name__)

REFUSED = b"$TrackerRefused"
IGNORED = b"$TrackerIgnored"  # not a bounce of ours (an automatic reply, someone else's mail): left for a person
KEEP = frozenset({"unmatched", "not-a-bounce"})
BATCH = 50  # messages fetched, recorded and deleted at a time
TIMEOUT = 30.0
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})  # where imap:// may go without TLS


@dataclass(frozen=True)
class Mailbox:
    """Where the bounces are, parsed from TRACKER_BOUNCE_IMAP_URL."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    use_tls: bool = True  # imaps://: TLS from the first byte
    starttls: bool = False  # imap://…?starttls=true


def parse_imap_url(url: str) -> Mailbox:
    """Read imaps://user:pass@host[:port][/FOLDER] or imap://…[?starttls=true]; refuse anything else clearly."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise ValueError("TRACKER_BOUNCE_IMAP_URL must be imaps://USER:PASSWORD@HOST[:PORT][/FOLDER] (or imap://…)")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    starttls = options.pop("starttls", "false").lower() in ("true", "1", "yes", "on")
    if options:
        raise ValueError(f"TRACKER_BOUNCE_IMAP_URL: unknown option(s) {', '.join(sorted(options))[:100]}")
    use_tls = parts.scheme == "imaps"
    if not (use_tls or starttls or parts.hostname in LOOPBACK):
        raise ValueError(
            "TRACKER_BOUNCE_IMAP_URL: imap:// without ?starttls=true sends the password in clear; "
            "use imaps://, or imap://…?starttls=true (plain imap:// only to this host: 127.0.0.1, ::1, localhost)"
        )
    return Mailbox(
        host=parts.hostname,
        port=parts.port or (993 if use_tls else 143),
        username=unquote(parts.username),
        password=unquote(parts.password or ""),
        folder=unquote(parts.path.strip("/")) or "INBOX",
        use_tls=use_tls,
        starttls=starttls,
    )


@dataclass
class PollResult:
    """What one poll did, by outcome ('hard', 'soft', 'forged', 'duplicate', …), and what it left."""

    outcomes: dict[str, int] = field(default_factory=dict)
    refused: int = 0  # too large or unreadable: flagged and left

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def poll(
    engine: Engine,
    config: BounceConfig,
    mailbox: Mailbox,
    clock: Callable[[], datetime],
    *,
    tls_context: ssl.SSLContext | None = None,
) -> PollResult:
    """Read every message of the folder once: record it, then delete it; return what was found."""
    result = PollResult()
    with connect(mailbox, tls_context) as client:
        client.select_folder(mailbox.folder)
        waiting = client.search(
            ["NOT", "DELETED", "NOT", "KEYWORD", REFUSED.decode(), "NOT", "KEYWORD", IGNORED.decode()]
        )
        for start in range(0, len(waiting), BATCH):
            take_batch(client, engine, config, waiting[start : start + BATCH], clock, result)
    return result


def connect(mailbox: Mailbox, tls_context: ssl.SSLContext | None) -> Any:
    """A logged-in IMAPClient (a context manager that logs out)."""
    from imapclient import IMAPClient  # here: the settings parse IMAP URLs at every start, without it

    client = IMAPClient(mailbox.host, port=mailbox.port, ssl=mailbox.use_tls, ssl_context=tls_context,
                        timeout=TIMEOUT)  # fmt: skip
    if mailbox.starttls:
        client.starttls(tls_context or ssl.create_default_context())
    client.login(mailbox.username, mailbox.password)
    return client


def take_batch(
    client: Any,
    engine: Engine,
    config: BounceConfig,
    uids: list[int],
    clock: Callable[[], datetime],
    result: PollResult,
) -> None:
    """Record each message of *uids* and delete it once committed; flag the ones too large to read."""
    sizes = client.fetch(uids, ["RFC822.SIZE"])
    small = [uid for uid in uids if sizes.get(uid, {}).get(b"RFC822.SIZE", 0) <= config.max_size]
    large = [uid for uid in uids if uid not in small]
    if large:
        client.add_flags(large, [REFUSED])
        result.refused += len(large)
        log.warning("%d bounce(s) larger than %d bytes left in the mailbox, flagged %s", len(large),
                    config.max_size, REFUSED.decode())  # fmt: skip
    for uid in small:
        fetched = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {})
        data = fetched.get(b"BODY[]")
        if not isinstance(data, bytes):
            continue
        try:
            recorded = take_bounce(engine, config, data, (), clock)  # committed when it returns
        except SQLAlchemyError:
            raise  # the store's: the message stays, unflagged, for the next poll
        except Exception:  # this message's: it would fail the same way at every poll
            log.exception("message %d in the bounce mailbox could not be handled; flagged %s", uid, REFUSED.decode())
            recorded = Recorded("unreadable")
        if recorded.result == "unreadable":
            client.add_flags([uid], [REFUSED])
            result.refused += 1
            continue
        result.count(recorded.result)
        if recorded.result in KEEP:
            client.add_flags([uid], [IGNORED])  # not ours to delete: flagged, so not read again
        else:
            client.delete_messages([uid])
    client.expunge()
