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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import quoprimime
from email.headerregistry import Address
from email.policy import SMTP
from email.utils import format_datetime
from functools import lru_cache
from typing import Literal

# 7bit: non-ASCII bodies go out quoted-printable or base64, never raw 8-bit (a relay without 8BITMIME).
POLICY = SMTP.clone(cte_type="7bit")
# The message's own headers are not folded at 78 (a SHOULD; 998 is the MUST): Python's folder
# turns a URL longer than a line into RFC 2047 encoded words, a List-Unsubscribe no client can
# use. Parts keep POLICY, whose 78 also sets the quoted-printable line length of the bodies.
HEADERS_POLICY = POLICY.clone(max_line_length=998)

CRLF = b"\r\n"
LINE = POLICY.max_line_length or 78  # the longest 7bit or quoted-printable line of a body
LONGEST = 900  # a header line written directly stays well inside 998; longer ones are folded
SNIFFED = 10  # the email package picks quoted-printable or base64 from a body's first 10 lines
Encoding = Literal["7bit", "quoted-printable", "base64"]

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
    plain = len(text) <= LONGEST and _PRINTABLE.fullmatch(text) is not None
    return plain and "=?" not in text and "  " not in text and text == text.strip()


def date_header(at: datetime) -> bytes:
    """Return the Date header of a message sent at *at* (aware)."""
    offset = at.utcoffset()
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


def multipart_header(subtype: str, boundary: str) -> bytes:
    return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n'.encode("ascii")


# --- bodies ---------------------------------------------------------------------------------

Pieces = tuple[bytes | int, ...]  # a line with values: text, and the indexes of values to put between
Line = bytes | Pieces


@dataclass(frozen=True)
class TextBody:
    """A text part rendered once with placeholders, encoded as far as it can be before the values are known.

    `raw` and `quoted` are the text around the lines that hold values, as is and quoted-printable,
    with their line ends; `holes` are those lines. A part then costs the encoding of a few lines.
    """

    subtype: str
    raw: tuple[bytes, ...]
    quoted: tuple[bytes, ...]  # empty when the part is certain to go out in base64
    holes: tuple[Pieces, ...]
    head: tuple[bytes | int, ...]  # the first SNIFFED lines; a hole as its number
    short_ascii: bool  # every fixed line is ASCII and at most LINE long: 7bit unless a value spoils it
    sniffed: Encoding | None  # quoted-printable or base64, when the head holds no values
    fields: frozenset[int]  # the values the part shows

    def render(self, values: Sequence[bytes]) -> bytes:
        """Return the part, headers and body, with *values* in place (none of them may hold CR or LF)."""
        filled = [b"".join(values[p] if isinstance(p, int) else p for p in hole) for hole in self.holes]
        encoding = self.encoding(filled)
        if encoding == "quoted-printable":
            body = interleave(self.quoted, [quote_line(line) for line in filled])
        else:
            body = interleave(self.raw, filled)
            body = base64_lines(body) if encoding == "base64" else body
        return part_header(self.subtype, encoding) + body

    def encoding(self, filled: Sequence[bytes]) -> Encoding:
        """Pick the transfer encoding as the email package's set_content does (contentmanager._encode_text)."""
        if self.short_ascii and all(len(line) <= LINE and line.isascii() for line in filled):
            return "7bit"
        if self.sniffed is not None:
            return self.sniffed
        return sniff([line if isinstance(line, bytes) else filled[line] for line in self.head])


def make_text_body(text: str, subtype: str, marks: re.Pattern[bytes]) -> TextBody:
    """Split rendered *text* into fixed lines and lines with placeholders (*marks* captures each index)."""
    # Split as the email package does: bytes.splitlines() breaks at CR and LF only.
    lines = [split_line(line, marks) for line in text.encode("utf-8").splitlines()]
    holes = tuple(line for line in lines if not isinstance(line, bytes))
    numbers = iter(range(len(holes)))
    head = tuple(line if isinstance(line, bytes) else next(numbers) for line in lines[:SNIFFED])
    fixed_head = [line for line in head if isinstance(line, bytes)]
    sniffed = sniff(fixed_head) if len(fixed_head) == len(head) else None
    return TextBody(
        subtype=subtype,
        raw=gaps(lines, join_lines),
        # Fixed lines in base64 make a part base64 whatever the values: no need to quote them.
        quoted=() if sniffed == "base64" else gaps(lines, quote_lines),
        holes=holes,
        head=head,
        short_ascii=all(len(line) <= LINE and line.isascii() for line in lines if isinstance(line, bytes)),
        sniffed=sniffed,
        fields=frozenset(piece for hole in holes for piece in hole if isinstance(piece, int)),
    )


def split_line(line: bytes, marks: re.Pattern[bytes]) -> Line:
    """Return a fixed line as it is, or a line with placeholders as (text, index, text, …)."""
    pieces = marks.split(line)
    if len(pieces) == 1:
        return line
    # split() with one group alternates text and captured index: text, index, text, …, text.
    return tuple(int(piece) if index % 2 else piece for index, piece in enumerate(pieces))


def gaps(lines: Sequence[Line], encode: Callable[[list[bytes]], bytes]) -> tuple[bytes, ...]:
    """Return the fixed lines around each line with values, encoded a run at a time, line ends included."""
    runs: list[list[bytes]] = [[]]
    for line in lines:
        if isinstance(line, bytes):
            runs[-1].append(line)
        else:
            runs.append([])
    encoded = [encode(run) + CRLF if run else b"" for run in runs]
    # Each line with values ends where the next run starts.
    return (encoded[0], *(CRLF + run for run in encoded[1:]))


def join_lines(run: list[bytes]) -> bytes:
    return CRLF.join(run)


def quote_lines(run: list[bytes]) -> bytes:
    return quote_line(b"\n".join(run))


def interleave(fixed: Sequence[bytes], filled: Sequence[bytes]) -> bytes:
    """Return fixed[0] + filled[0] + fixed[1] + … + fixed[-1]."""
    out = [fixed[0]]
    for line, after in zip(filled, fixed[1:], strict=True):
        out += (line, after)
    return b"".join(out)


def quote_line(line: bytes) -> bytes:
    """Return a line (or lines, LF between them) quoted-printable, as the email package encodes them."""
    # quoprimime.body_encode works line by line, so encoding a body a few lines at a time gives its bytes.
    return quoprimime.body_encode(line.decode("latin-1"), LINE, "\r\n").encode("ascii")


def base64_lines(data: bytes) -> bytes:
    """Return *data* in base64 lines of 76 characters with CRLF line ends, as the email package writes it."""
    # It encodes 57 bytes a line; 57 is a multiple of 3, so one encoding cut every 76 characters is the same.
    encoded = binascii.b2a_base64(data, newline=False)
    width = LINE // 4 * 4
    return b"".join(encoded[start : start + width] + CRLF for start in range(0, len(encoded), width))


def sniff(head: Sequence[bytes]) -> Encoding:
    """Pick quoted-printable or base64 from the first lines, by which is shorter, as the email package does."""
    sample = CRLF.join(head) + CRLF
    quoted = quoprimime.body_encode(sample.decode("latin-1"), LINE)
    return "base64" if len(quoted) > len(binascii.b2a_base64(sample)) else "quoted-printable"


def part_header(subtype: str, encoding: Encoding) -> bytes:
    return f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n'.encode(
        "ascii"
    )


def multipart(boundary: str, parts: Sequence[bytes]) -> bytes:
    """Return the body of a multipart entity: *parts* (headers and body each) between boundary lines."""
    delimiter = f"--{boundary}".encode("ascii")
    inner = CRLF + delimiter + CRLF
    return delimiter + CRLF + inner.join(parts) + CRLF + delimiter + b"--" + CRLF
