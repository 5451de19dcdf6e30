"""A message's headers, two ways: set on an EmailMessage (render) or written as bytes (render_bytes).

Both are here, side by side, so that they stay in step; tests compare their bytes.
"""

from __future__ import annotations

import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import TYPE_CHECKING

from tracker.emails.mime import HEADERS_POLICY, address_header, date_header, fold_header, plain_header

if TYPE_CHECKING:
    from tracker.emails.render import EmailRequest, Sender

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


def one_line(text: str) -> str:
    """Collapse all whitespace, CR and LF included: no value can start a header of its own."""
    return " ".join(text.split())


def sender_domain(sender: Sender) -> str:
    return parseaddr(sender.from_address)[1].rpartition("@")[2] or "localhost"


def list_unsubscribe(request: EmailRequest) -> str:
    links = request.links
    return f"<{one_line(links.unsubscribe)}>, <{one_line(links.unsubscribe_mailto)}>"


def make_message(request: EmailRequest, sender: Sender, subject: str, tag: str) -> EmailMessage:
    """Return a message with every header set and no body yet."""
    message = EmailMessage(policy=HEADERS_POLICY)
    recipient = request.recipient
    message["From"] = one_line(sender.from_address)
    message["To"] = Address(display_name=one_line(recipient.name), addr_spec=one_line(recipient.email))
    message["Subject"] = subject
    message["Date"] = format_datetime(request.now)
    message["Message-ID"] = message_id(request.key, sender_domain(sender))
    message["List-Id"] = one_line(sender.list_id)
    message["List-Unsubscribe"] = list_unsubscribe(request)
    for name, value in BULK_HEADERS:
        message[name] = value
    message["Content-Language"] = tag
    message["MIME-Version"] = "1.0"
    return message


class Letterhead:
    """Write the headers of make_message as bytes: the sender's once, the recipient's per message."""

    def __init__(self, sender: Sender) -> None:
        self.domain = sender_domain(sender)
        self.from_line = fold_header("From", one_line(sender.from_address))
        self.list_line = fold_header("List-Id", one_line(sender.list_id))
        self.bulk_lines = b"".join(fold_header(name, value) for name, value in BULK_HEADERS)
        # An odd domain (a literal, non-ASCII) is left to the email package, message by message.
        sample = message_id("", self.domain)
        self.plain_ids = fold_header("Message-ID", sample) == f"Message-ID: {sample}\r\n".encode()

    def write(self, request: EmailRequest, subject_line: bytes, language_line: bytes) -> bytes:
        """Return the header lines of *request*, Subject and Content-Language as given, up to MIME-Version."""
        recipient = request.recipient
        return b"".join(
            (
                self.from_line,
                address_header("To", one_line(recipient.name), one_line(recipient.email)),
                subject_line,
                date_header(request.now),
                self.message_id_line(request.key),
                self.list_line,
                plain_header("List-Unsubscribe", list_unsubscribe(request)),
                self.bulk_lines,
                language_line,
                b"MIME-Version: 1.0\r\n",
            )
        )

    def message_id_line(self, key: str) -> bytes:
        value = message_id(key, self.domain)
        return f"Message-ID: {value}\r\n".encode() if self.plain_ids else fold_header("Message-ID", value)
