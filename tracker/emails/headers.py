"""A message's headers, two ways: set on an EmailMessage (render) or written as bytes (render_bytes).

Both write the values of `fields`, so that they stay in step; tests compare their bytes. The
EmailMessage gets them with set_raw: stored as written, never parsed (and so never decoded) by
the email package, and written out again unchanged.
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import parseaddr
from typing import TYPE_CHECKING

from tracker.emails.fields import (
    address_domain,
    header_line,
    list_id_value,
    mailbox_value,
    one_line,
    sender_value,
    text_value,
    urls_value,
)
from tracker.emails.mime import HEADERS_POLICY, date_header, date_value

if TYPE_CHECKING:
    from tracker.emails.requests import EmailRequest, Sender

__all__ = ["BULK_HEADERS", "Letterhead", "make_message", "message_id", "one_line"]

# The same for every message, between List-Unsubscribe and Content-Language.
BULK_HEADERS = (
    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ("Auto-Submitted", "auto-generated"),
    ("Precedence", "bulk"),
    ("X-Auto-Response-Suppress", "All"),  # no out-of-office replies from Exchange
)


def message_id(key: str, domain: str) -> str:
    """Return the Message-ID of a delivery: the same key always gives the same id, so clients fold a resend."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def sender_domain(sender: Sender) -> str:
    return address_domain(parseaddr(sender.from_address)[1])


def list_unsubscribe(request: EmailRequest) -> str:
    links = request.links
    return urls_value("List-Unsubscribe", (links.unsubscribe, links.unsubscribe_mailto))


def to_value(request: EmailRequest) -> str:
    recipient = request.recipient
    return mailbox_value("To", recipient.name, recipient.email)


def make_message(request: EmailRequest, sender: Sender, subject: str, tag: str) -> EmailMessage:
    """Return a message with every header set and no body yet."""
    message = EmailMessage(policy=HEADERS_POLICY)
    values = (
        ("From", sender_value(sender.from_address)),
        ("To", to_value(request)),
        ("Subject", text_value("Subject", subject)),
        ("Date", date_value(request.now)),
        ("Message-ID", message_id(request.key, sender_domain(sender))),
        ("List-Id", list_id_value(sender.list_id)),
        ("List-Unsubscribe", list_unsubscribe(request) if request.links.unsubscribe else ""),
        *BULK_HEADERS,
        ("Content-Language", text_value("Content-Language", tag)),
        ("MIME-Version", "1.0"),
    )
    for name, value in values:
        if name.startswith("List-Unsubscribe") and not request.links.unsubscribe:
            continue  # a message to a console user (sign-in): there is no list to leave
        message.set_raw(name, value)
    return message


class Letterhead:
    """Write the headers of make_message as bytes: the sender's once, the recipient's per message."""

    def __init__(self, sender: Sender) -> None:
        self.domain = sender_domain(sender)
        self.from_line = header_line("From", sender_value(sender.from_address))
        self.list_line = header_line("List-Id", list_id_value(sender.list_id))
        self.bulk_lines = b"".join(header_line(name, value) for name, value in BULK_HEADERS)
        # A message to a console user (sign-in) belongs to no list: nothing to unsubscribe from.
        self.unlisted_lines = b"".join(header_line(name, value) for name, value in BULK_HEADERS[1:])

    def write(self, request: EmailRequest, subject_line: bytes, language_line: bytes) -> bytes:
        """Return the header lines of *request*, Subject and Content-Language as given, up to MIME-Version."""
        return b"".join(
            (
                self.from_line,
                header_line("To", to_value(request)),
                subject_line,
                date_header(request.now),
                header_line("Message-ID", message_id(request.key, self.domain)),
                self.list_line,
                *self.list_lines(request),
                language_line,
                b"MIME-Version: 1.0\r\n",
            )
        )

    def list_lines(self, request: EmailRequest) -> tuple[bytes, ...]:
        if not request.links.unsubscribe:
            return (self.unlisted_lines,)
        return header_line("List-Unsubscribe", list_unsubscribe(request)), self.bulk_lines
