"""A message's bytes written directly, as the email package would write them, without its cost.

At volume the email package is most of the cost of a reminder (about 3 ms of it): it parses
every header it is given, folds it again on output, and encodes bodies in pure Python. Here
the common values take a direct path that writes the same bytes, and anything unusual goes
through the email package itself. One difference is allowed: a display name that mixes ASCII
and other words becomes one encoded word, which reads back as the same name.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.policy import SMTP
from email.utils import format_datetime
from functools import lru_cache

# 7bit: non-ASCII bodies go out quoted-printable or base64, never raw 8-bit (a relay without 8BITMIME).
POLICY = SMTP.clone(cte_type="7bit")
# The message's own headers are not folded at 78 (a SHOULD; 998 is the MUST): Python's folder
# turns a URL longer than a line into RFC 2047 encoded words, a List-Unsubscribe no client can
# use. Parts keep POLICY, whose 78 also sets the quoted-printable line length of the bodies.
HEADERS_POLICY = POLICY.clone(max_line_length=998)

CRLF = b"\r\n"
LONGEST = 900  # a header line written directly stays well inside 998; longer ones are folded

_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_SPECIALS = frozenset('()<>@,:;."\\[]')  # a display name with one of these is quoted
# RFC 2047 5(3): in a phrase, a "Q" word may keep only letters, digits and -!*+/ as they are.
_Q_SAFE = frozenset(b"-!*+/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_Q = {byte: chr(byte) if byte in _Q_SAFE else f"={byte:02X}" for byte in range(256)} | {ord(" "): "_"}


# --- headers --------------------------------------------------------------------------------


def fold_header(name: str, value: object) -> bytes:
    """Return the header as bytes(message) writes it after message[name] = value."""
    parsed = HEADERS_POLICY.header_store_parse(name, value)[1]
    return HEADERS_POLICY.fold_binary(name, parsed)


def plain_header(name: str, value: str) -> bytes:
    """Return an unstructured header; printable ASCII on one short line is written as it is."""
    if is_plain(value):
        return f"{name}: {value}\r\n".encode("ascii")
    return fold_text_header(name, value)


@lru_cache(maxsize=4096)  # a subject in Arabic is folded once for all zones and recipients
def fold_text_header(name: str, value: str) -> bytes:
    return fold_header(name, value)


def is_plain(text: str) -> bool:
    """Tell whether the email package would write *text* unchanged in a header."""
    # It would decode encoded-word syntax, and may fold long lines and respace runs of spaces.
    plain = 0 < len(text) <= LONGEST and _PRINTABLE.fullmatch(text) is not None  # an empty one has no space
    return plain and "=?" not in text and "  " not in text and text == text.strip()


def date_header(at: datetime) -> bytes:
    """Return the Date header of a message sent at *at* (aware)."""
    # The offset is part of the key: 08:00+00:00 equals 09:00+01:00, but is not written the same.
    return second_header(at.replace(microsecond=0), at.utcoffset())


@lru_cache(maxsize=256)  # a batch sends many messages within each second
def second_header(at: datetime, offset: timedelta | None) -> bytes:
    if offset is None or offset % timedelta(minutes=1):  # a zone offset in seconds has no RFC 5322 form
        return fold_header("Date", format_datetime(at))
    return f"Date: {format_datetime(at)}\r\n".encode("ascii")


def address_header(name: str, display_name: str, addr_spec: str) -> bytes:
    """Return *name*: the mailbox, as the email package writes Address(display_name, addr_spec)."""
    mailbox = simple_mailbox(display_name, addr_spec)
    if mailbox is None:
        return fold_header(name, Address(display_name=display_name, addr_spec=addr_spec))
    return f"{name}: {mailbox}\r\n".encode("ascii")


def simple_mailbox(display_name: str, addr_spec: str) -> str | None:
    """Return 'name <address>' for a plain address and a printable name; None for anything else."""
    if _ADDRESS.fullmatch(addr_spec) is None or "=?" in display_name:
        return None
    phrase = display_phrase(display_name)
    if phrase is None:
        return None
    mailbox = f"{phrase} <{addr_spec}>" if phrase else addr_spec
    return mailbox if len(mailbox) <= LONGEST else None


def display_phrase(name: str) -> str | None:
    """Return *name* as a phrase: an atom run, a quoted string, or one encoded word; None if unusual."""
    if name.isascii():
        if _PRINTABLE.fullmatch(name) is None:
            return None  # control characters: the email package's way, defects and all
        return name if _SPECIALS.isdisjoint(name) else quote_string(name)
    # One word for the whole name, as the email package writes a name in another script: the
    # space between two encoded words is no part of a name, yet its own parser keeps it.
    return encoded_word(name) if name.isprintable() else None


def quote_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def encoded_word(text: str) -> str:
    """Return *text* as one RFC 2047 word in UTF-8; "Q" unless base64 is 5 or more shorter, as Python picks."""
    data = text.encode("utf-8")
    q = data.decode("latin-1").translate(_Q)
    b = binascii.b2a_base64(data, newline=False).decode("ascii")
    return f"=?utf-8?q?{q}?=" if len(q) - len(b) < 5 else f"=?utf-8?b?{b}?="


# --- multipart --------------------------------------------------------------------------------


def multipart_header(subtype: str, boundary: str) -> bytes:
    return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n'.encode("ascii")


def multipart(boundary: str, parts: Sequence[Sequence[bytes]]) -> list[bytes]:
    """Return the body of a multipart entity: *parts* (headers and body, in pieces) between boundary lines.

    In pieces, to be joined once: a message is copied once, not once for each level of parts.
    """
    delimiter = f"--{boundary}".encode("ascii")
    out = [delimiter, CRLF]
    for number, part in enumerate(parts):
        if number:
            out += (CRLF, delimiter, CRLF)
        out += part
    out += (CRLF, delimiter, b"--", CRLF)
    return out
