"""Text parts encoded once, but for the few lines that hold a recipient's values.

A part goes out as the email package's set_content would write it: 7bit by the same rule
(contentmanager._encode_text), the same line breaks; else quoted-printable or base64, whichever
`choose_encoding` finds shorter for the whole text (the email package guesses from the first ten
lines, which in an HTML part are its ASCII head whatever the language: an Arabic, Chinese or
Russian part went out quoted-printable at up to three times its size). Everything that
does not depend on the values is done when the text is first rendered: the fixed lines are
encoded, the fixed pieces of the other lines are escaped for quoted-printable, and the base64
of the text before the first value is kept. A message then encodes a few short values and
wraps the lines they are on.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email import quoprimime
from functools import lru_cache
from typing import Literal

from tracker.emails.mime import CRLF, POLICY
from tracker.mail.wire import WireReady, wire_ready

LINE = POLICY.max_line_length or 78  # the longest 7bit or quoted-printable line of a body
BASE64_CHUNK = LINE // 4 * 3  # bytes a base64 line holds: 57
Encoding = Literal["7bit", "quoted-printable", "base64"]
# Each byte, as a latin-1 character, to itself or to =XX: the table of quoprimime.body_encode.
_KEPT_BYTES = b"\t\r\n !\"#$%&'()*+,-./0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
_KEPT = frozenset(_KEPT_BYTES)
ESCAPES = [chr(byte) if byte in _KEPT else f"={byte:02X}" for byte in range(256)]

Pieces = tuple[bytes | int, ...]  # a line with values: text, and the indexes of values to put between
Line = bytes | Pieces


@dataclass(frozen=True)
class TextBody:
    """A text part rendered once with placeholders, encoded as far as it can be before the values are known.

    `raw` and `quoted` are the text around the lines that hold values, as is and quoted-printable,
    with their line ends; `holes` are those lines, and `escaped` the same with their fixed pieces
    escaped for quoted-printable.
    """

    subtype: str
    raw: tuple[bytes, ...]
    quoted: tuple[bytes, ...]
    holes: tuple[Pieces, ...]
    escaped: tuple[tuple[str | int, ...], ...]
    short_ascii: bool  # every fixed line is ASCII and at most LINE long: 7bit unless a value spoils it
    size: Size  # of the fixed lines, for choose_encoding
    fields: frozenset[int]  # the values the part shows
    base64_head: bytes  # the base64 lines of raw[0]'s first base64_cut bytes
    base64_cut: int

    def render(self, values: Sequence[bytes]) -> bytes:
        """Return the part, headers and body, with *values* in place (none may hold CR or LF)."""
        return b"".join(self.pieces(values))

    def pieces(self, values: Sequence[bytes]) -> list[bytes]:
        """Return the part in pieces to be joined once: the fixed runs of lines as made, marked WireReady if they are.

        Only the lines with values are then left for the wire check of a whole message: a changed
        message's text and HTML, fifty lines each, were scanned again for every reader.
        """
        filled = [b"".join(values[p] if isinstance(p, int) else p for p in hole) for hole in self.holes]
        encoding = self.encoding(filled)
        if encoding == "quoted-printable":
            body = interleave_pieces(self.quoted, self.quote(values))
        elif encoding == "base64":
            rest = b"".join(interleave_pieces((self.raw[0][self.base64_cut :], *self.raw[1:]), filled))
            # Base64 lines and CRLF only, by construction: nothing there for the wire check to find
            # (and nothing to mark when the head holds the whole text: a mark stands for a line).
            lines = base64_lines(rest)
            body = [self.base64_head, WireReady(lines) if lines else lines]
        else:
            body = interleave_pieces(self.raw, filled)
        return [part_header(self.subtype, encoding), *body]

    def encoding(self, filled: Sequence[bytes]) -> Encoding:
        """Pick the transfer encoding as text_encoding would for the whole text, from the fixed lines' size."""
        if self.short_ascii and all(len(line) <= LINE and line.isascii() for line in filled):
            return "7bit"
        return choose_encoding(self.size + measure(filled))

    def quote(self, values: Sequence[bytes]) -> list[bytes]:
        """Return the lines with values, quoted-printable: escape the values, then wrap each line."""
        escaped = {index: escape_quoted(values[index]) for index in self.fields}
        lines = ("".join(escaped[p] if isinstance(p, int) else p for p in hole) for hole in self.escaped)
        return [wrap_quoted(line).encode("ascii") for line in lines]


def make_text_body(text: str, subtype: str, marks: re.Pattern[bytes]) -> TextBody:
    """Split rendered *text* into fixed lines and lines with placeholders (*marks* captures each index)."""
    # Split as the email package does: bytes.splitlines() breaks at CR and LF only.
    lines = [split_line(line, marks) for line in text.encode("utf-8").splitlines()]
    holes = tuple(line for line in lines if not isinstance(line, bytes))
    raw = gaps(lines, CRLF.join)
    cut = len(raw[0]) // BASE64_CHUNK * BASE64_CHUNK
    return TextBody(
        subtype=subtype,
        raw=marked(raw),
        quoted=marked(gaps(lines, quote_lines)),
        holes=holes,
        escaped=tuple(tuple(p if isinstance(p, int) else escape_quoted(p) for p in hole) for hole in holes),
        short_ascii=all(len(line) <= LINE and line.isascii() for line in lines if isinstance(line, bytes)),
        size=measure([line for line in lines if isinstance(line, bytes)]),
        fields=frozenset(piece for hole in holes for piece in hole if isinstance(piece, int)),
        base64_head=marked((base64_lines(raw[0][:cut]),))[0],
        base64_cut=cut,
    )


def marked(runs: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """Return *runs*, each one that is ready for the wire as it is marked so (checked once, not in every message)."""
    return tuple(wire_ready(run) or run for run in runs)


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


def interleave_pieces(fixed: Sequence[bytes], filled: Sequence[bytes]) -> list[bytes]:
    """Return [fixed[0], filled[0], fixed[1], …, fixed[-1]]."""
    out = [fixed[0]]
    for line, after in zip(filled, fixed[1:], strict=True):
        out += (line, after)
    return out


# --- encodings -------------------------------------------------------------------------------


def escape_quoted(data: bytes) -> str:
    """Return *data* escaped for quoted-printable, not yet wrapped (quoprimime's first step)."""
    return data.decode("latin-1").translate(ESCAPES)


def quote_lines(run: list[bytes]) -> bytes:
    """Return lines quoted-printable, soft breaks included, as the email package encodes them."""
    # quoprimime.body_encode works line by line, so encoding a run of lines at once gives the same bytes.
    return quoprimime.body_encode(b"\n".join(run).decode("latin-1"), LINE, "\r\n").encode("ascii")


def wrap_quoted(line: str) -> str:
    """Wrap one escaped line at LINE characters with soft breaks, exactly as quoprimime.body_encode does."""
    pieces, start, last_start = [], 0, len(line) - 1 - LINE
    while start <= last_start:
        stop = start + LINE - 1
        if line[stop - 2] == "=":  # never split an escape: break before it
            pieces.append(line[start : stop - 1])
            start = stop - 2
        elif line[stop - 1] == "=":
            pieces.append(line[start:stop])
            start = stop - 1
        else:
            pieces.append(line[start:stop] + "=")
            start = stop
    if line[-1:] in (" ", "\t"):  # a space ending a line would be lost in transit
        pieces.append(line[start:-1] + trailing_space(line[-1], start - last_start))
    else:
        pieces.append(line[start:])
    return "\r\n".join(pieces)


def trailing_space(space: str, room: int) -> str:
    """Return a line's last space or tab encoded, with the soft break it needs, as body_encode does."""
    quoted = f"={ord(space):02X}"
    if room >= 3:
        return quoted
    return space + "=\r\n" if room == 2 else "=\r\n" + quoted


def base64_lines(data: bytes) -> bytes:
    """Return *data* in base64 lines of 76 characters with CRLF line ends, as the email package writes it."""
    # It encodes 57 bytes a line; 57 is a multiple of 3, so one encoding cut every 76 characters is the same.
    encoded = binascii.b2a_base64(data, newline=False)
    width = BASE64_CHUNK // 3 * 4
    return b"".join(encoded[start : start + width] + CRLF for start in range(0, len(encoded), width))


@dataclass(frozen=True)
class Size:
    """Bytes of some lines, line ends (CRLF) included, and how many of them quoted-printable escapes."""

    total: int = 0
    escaped: int = 0
    soft: int = 0  # the bytes of quoted-printable's soft line breaks ("=" CRLF) in long lines

    def __add__(self, other: Size) -> Size:
        return Size(self.total + other.total, self.escaped + other.escaped, self.soft + other.soft)


def measure(lines: Sequence[bytes]) -> Size:
    """Return the Size of *lines*; added line by line, so fixed lines are measured once."""
    total = escaped = soft = 0
    for line in lines:
        escapes = len(line.translate(None, _KEPT_BYTES))
        total, escaped = total + len(line) + 2, escaped + escapes
        quoted = len(line) + 2 * escapes
        # A line longer than 76 is cut every 75 characters with "=" CRLF: a one-line table row
        # of an HTML part is many cuts, which left aside made quoted-printable look shorter.
        soft += 3 * -(-(quoted - LINE) // (LINE - 1)) if quoted > LINE else 0
    return Size(total, escaped, soft)


def base64_size(size: int) -> int:
    """Return the length of *size* bytes in base64 as a part carries it: lines of 76 (57 bytes), each with CRLF."""
    return 4 * -(-size // 3) + 2 * -(-size // BASE64_CHUNK)


def choose_encoding(size: Size) -> Encoding:
    """Quoted-printable or base64, whichever is shorter for a text of *size*."""
    quoted = size.total + 2 * size.escaped + size.soft  # an escaped byte is =XX
    return "base64" if quoted > base64_size(size.total) else "quoted-printable"


def text_encoding(text: str) -> Encoding:
    """Return the encoding of a text part: 7bit as the email package picks it, else choose_encoding's."""
    lines = text.encode("utf-8").splitlines()
    if all(len(line) <= LINE and line.isascii() for line in lines):
        return "7bit"
    return choose_encoding(measure(lines))


@lru_cache(maxsize=16)
def part_header(subtype: str, encoding: Encoding) -> bytes:
    text = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n'
    return wire_ready(text.encode("ascii")) or text.encode("ascii")
