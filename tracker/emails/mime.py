"""A message's parts written directly, as the email package would write them, without its cost.

At volume the email package is most of the cost of a reminder (BENCHMARKS.md): it parses
every header it is given, folds it again on output, and encodes bodies in pure Python. Here the
multipart frame and the Date are written directly; the other header fields are written from text
by `fields`, on both paths, never by the email package.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.policy import SMTP
from email.utils import format_datetime
from functools import lru_cache

# 7bit: non-ASCII bodies go out quoted-printable or base64, never raw 8-bit (a relay without 8BITMIME).
# 76: the email package wraps quoted-printable at the policy's line length, and RFC 2045 6.7 allows
# encoded lines of 76 characters at most (its 78 would give lines a strict reader may refuse).
POLICY = SMTP.clone(cte_type="7bit", max_line_length=76)
# The message's own headers are not refolded (78 is a SHOULD, 998 the MUST): `fields` folds them
# itself and never cuts a List-Unsubscribe URL below 900. Parts keep POLICY.
HEADERS_POLICY = POLICY.clone(max_line_length=998)

CRLF = b"\r\n"


# --- the date ---------------------------------------------------------------------------------


def date_value(at: datetime) -> str:
    """Return the Date of a message sent at *at* (aware), to the second."""
    offset = at.utcoffset()
    if offset is None or offset % timedelta(minutes=1):  # a zone offset in seconds has no RFC 5322 form
        at = at.astimezone(UTC)
    return format_datetime(at.replace(microsecond=0))


def date_header(at: datetime) -> bytes:
    """Return the Date header line of a message sent at *at* (aware)."""
    # The offset is part of the key: 08:00+00:00 equals 09:00+01:00, but is not written the same.
    return second_header(at.replace(microsecond=0), at.utcoffset())


@lru_cache(maxsize=256)  # a batch sends many messages within each second
def second_header(at: datetime, offset: timedelta | None) -> bytes:
    return f"Date: {date_value(at)}\r\n".encode("ascii")


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
