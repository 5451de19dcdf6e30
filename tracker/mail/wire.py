"""Bytes ready to go after DATA as they are: CRLF line ends only, no line starting with a dot.

Apart from the SMTP client (which imports aiosmtplib) so that rendering can mark what it makes
without loading it: the render helper checks each message once, the sender trusts the mark.
"""

from __future__ import annotations

from collections.abc import Sequence

CRLF = b"\r\n"


class WireReady(bytes):
    """A message found by `wire_ready` to go after DATA as it is: a mark that spares the sender the check.

    Its bytes are the message's own; the mark only survives on this object (a slice or a sum is
    plain bytes again), so nothing unchecked can carry it.
    """


def wire_ready(data: bytes) -> WireReady | None:
    """Return *data* marked WireReady if it has CRLF line ends only and no line starting with a dot."""
    if type(data) is WireReady:
        return data
    return WireReady(data) if crlf_only(data) and not dotted(data) else None


def wire_ready_joined(pieces: Sequence[bytes]) -> WireReady | None:
    """Return *pieces* joined and marked WireReady if the whole is; the WireReady pieces are not scanned again.

    A changed message's calendar part is two thirds of its bytes and the same for thousands of
    readers: checked once when rendered, not in every message. A WireReady piece (CRLF line ends,
    ending with one, not starting with a dot) stands in the check as an empty line, which joins
    its neighbours exactly as it would.
    """
    return WireReady(b"".join(pieces)) if pieces_ready(pieces) else None


def pieces_ready(pieces: Sequence[bytes]) -> bool:
    """Tell whether *pieces* joined would be wire_ready, scanning only the pieces not marked WireReady."""
    rest = b"".join(CRLF if type(piece) is WireReady else piece for piece in pieces)
    return crlf_only(rest) and not dotted(rest)


def crlf_only(data: bytes) -> bool:
    crlf = data.count(b"\r\n")
    return crlf == data.count(b"\n") == data.count(b"\r") and data.endswith(b"\r\n")


def dotted(data: bytes) -> bool:
    return data.startswith(b".") or b"\n." in data
