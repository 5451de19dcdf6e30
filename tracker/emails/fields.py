"""Header fields written from plain text by us: cleaned, quoted or RFC 2047-encoded, and folded.

No value is handed to the email package to parse. Its header parser decodes encoded words, even
inside quoted strings, and Python 3.11 writes what they decode to as it is: a name typed as
"=?utf-8?q?=0D=0AReply-To:...?=" became headers and a body of its own. Here every value is text:
control characters become spaces and whitespace collapses; printable ASCII words go as they are;
anything else, or anything that looks like an encoded word, is encoded here, in words of at most
75 characters cut between characters, folded with CRLF and a space so that lines keep to 78.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from email.utils import parseaddr
from functools import lru_cache
from urllib.parse import quote

from tracker.text import CONTROLS

WIDTH = 78  # RFC 5322 2.1.1: a line SHOULD keep to 78 characters (998 is the MUST)
WORD = 75  # RFC 2047 2: the longest encoded word
PLAIN = 60  # a longer word is encoded (and so cut): "Content-Language: " and 60 make 78
LONGEST = 900  # a List-Unsubscribe URL up to this is left whole on its line; a longer one is cut
_OVERHEAD = len("=?utf-8?q??=")
CRLF_SPACE = "\r\n "  # a fold

# C0 and DEL, C1, the line and paragraph separators, lone surrogates. Format characters (bidi
# controls, zero-width joiners) are text: they are kept, inside encoded words.
_PLAIN_WORD = re.compile(rf"[\x21-\x7e]{{1,{PLAIN}}}")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_NAME = re.compile(rf"{_ATOM}(?: {_ATOM})*")  # atoms: a name written as it is
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_URL = re.compile(r"[!#-;=?-~]+")  # printable ASCII but space, " < and >
_URL_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) not in '<>"')
_SPECIALS = frozenset('()<>@,:;."\\[]')  # a display name with one of these is quoted
# RFC 2047 5(3): in a phrase, a "Q" word may keep only letters, digits and -!*+/ as they are.
_Q_SAFE = frozenset(b"-!*+/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_Q = {byte: chr(byte) if byte in _Q_SAFE else f"={byte:02X}" for byte in range(256)} | {ord(" "): "_"}
_Q_SIZE = [1 if byte in _Q_SAFE or byte == ord(" ") else 3 for byte in range(256)]


def one_line(text: str) -> str:
    """Return *text* as header text: control characters become spaces, whitespace runs one space."""
    kept = text if text.isprintable() else CONTROLS.sub(" ", text)  # isprintable: in C, and mostly true
    return " ".join(kept.split())


def header_line(name: str, value: str) -> bytes:
    return f"{name}: {value}\r\n".encode("ascii")


@lru_cache(maxsize=4096)  # a subject in Arabic is encoded once for all zones and recipients
def text_header(name: str, text: str) -> bytes:
    return header_line(name, text_value(name, text))


# --- values ------------------------------------------------------------------------------------


def text_value(name: str, text: str) -> str:
    """Return *text* as an unstructured value (Subject): plain words as they are, runs of others encoded."""
    folder = Folder(name)
    run: list[str] = []
    for word in one_line(text).split(" "):
        if is_plain_word(word):
            folder.add_encoded(" ".join(run))
            run = []
            folder.add(word)
        elif word:
            run.append(word)
    folder.add_encoded(" ".join(run))  # the space between an encoded word and a plain one is kept
    return folder.value()


def mailbox_value(name: str, display_name: str, addr_spec: str) -> str:
    """Return 'display name <address>' with the name as atoms, a quoted string or encoded words."""
    address = header_address(addr_spec)
    text = one_line(display_name)
    if not text:
        return address
    # The common cases, written directly as the folder would: atoms, or one encoded word.
    phrase = text if _SIMPLE_NAME.fullmatch(text) and "=?" not in text else None
    if phrase is None and not text.isascii():
        phrase = encoded_word(text, min(WORD, WIDTH - len(name) - 2))
    if phrase is not None and len(name) + len(phrase) + 2 <= WIDTH:
        fits = len(name) + len(phrase) + len(address) + 5 <= WIDTH
        return f"{phrase}{' ' if fits else CRLF_SPACE}<{address}>"
    folder = Folder(name)
    add_phrase(folder, text)
    folder.add(f"<{address}>")
    return folder.value()


def sender_value(from_address: str) -> str:
    """Return the From value of a setting such as 'Tracker <tracker@example.org>'."""
    display_name, addr_spec = parseaddr(from_address)
    return mailbox_value("From", display_name, addr_spec)


def urls_value(name: str, urls: Sequence[str]) -> str:
    """Return '<url>, <url>' (List-Unsubscribe), each URL printable ASCII, folded between URLs past 78.

    A URL is cut only when its own line passes 900: a URL folded at 78 is one no client follows.
    """
    written = [f"<{safe_url(url)}>" for url in urls]
    value = ", ".join(written)
    if len(name) + 2 + len(value) <= WIDTH:
        return value
    room = LONGEST - len(name) - 2
    # RFC 2369 2: whitespace inside the angle brackets is ignored, so a URL may be cut anywhere.
    lines: list[str] = []
    for url in written:
        lines += [url[start : start + room] for start in range(0, len(url), room)]
        lines[-1] += ","
    return CRLF_SPACE.join(lines)[:-1]


def list_id_value(list_id: str) -> str:
    """Return the List-Id: as it is when printable ASCII, else as text."""
    text = one_line(list_id)
    if text.isascii() and text.isprintable() and "=?" not in text and len(text) <= LONGEST:
        return text
    return text_value("List-Id", text)


def safe_url(url: str) -> str:
    """Return *url* as printable ASCII without spaces or brackets: anything else percent-encoded."""
    if _URL.fullmatch(url) and "=?" not in url:
        return url  # the links Tracker makes
    text = "".join(one_line(url).split())
    if _URL.fullmatch(text) is None:
        text = quote(text, safe=_URL_SAFE, errors="replace")
    return text.replace("=?", "=%3F")  # no encoded word, should a reader decode this field


def header_address(addr_spec: str) -> str:
    """Return *addr_spec* as a header shows it, its domain in IDNA; raise ValueError if it cannot be written."""
    if _ADDRESS.fullmatch(addr_spec) and "=?" not in addr_spec:
        return addr_spec
    address = one_line(addr_spec)
    if _ADDRESS.fullmatch(address) is None:
        address = ascii_domain(address)
    if _ADDRESS.fullmatch(address) is None or "=?" in address:
        raise ValueError("an address must be ASCII dot-atoms@domain to be written in a header")
    return address


def ascii_domain(address: str) -> str:
    """Return *address* with its domain in IDNA ('bücher.example' gives 'xn--bcher-kva.example'), if it can be."""
    local, _, domain = address.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def address_domain(addr_spec: str) -> str:
    """Return the domain of an address, for Message-IDs; 'localhost' when it has none usable."""
    try:
        return header_address(addr_spec).rpartition("@")[2]
    except ValueError:
        return "localhost"


def is_plain_word(word: str) -> bool:
    """Tell whether *word* may go into a header as it is: printable ASCII, short, not like an encoded word."""
    return _PLAIN_WORD.fullmatch(word) is not None and "=?" not in word


def add_phrase(folder: Folder, text: str) -> None:
    """Add a display name: atoms, a quoted string (ASCII with specials), or encoded words."""
    words = text.split(" ")
    if all(map(is_plain_word, words)):
        # Atoms, or a quoted string (folding between its words keeps their spaces). The length is
        # checked on the words as written: a quote or an escape makes a word longer.
        written = words if _SPECIALS.isdisjoint(text) else quote_string(text).split(" ")
        if all(len(word) <= PLAIN + 2 for word in written):
            for word in written:
                folder.add(word)
            return
    folder.add_encoded(text)  # one run: the spaces are inside the words, where RFC 2047 keeps them


def quote_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


# --- folding and encoding ------------------------------------------------------------------------


class Folder:
    """Lay out a value's words on lines of WIDTH: words as they are, text as encoded words cut to fit."""

    def __init__(self, name: str) -> None:
        self.lines = [""]
        self.column = len(name) + 1  # after "Name:"

    def add(self, word: str) -> None:
        """Add a word after a space, on a new line if it does not fit (the first word always stays)."""
        if self.lines[-1] and self.column + 1 + len(word) > WIDTH:
            self.lines.append("")
            self.column = 0
        self.lines[-1] += " " + word
        self.column += 1 + len(word)

    def add_encoded(self, text: str) -> None:
        """Add *text* as encoded words, each as long as the line allows (whitespace between them is no text)."""
        while text:
            word, rest = encode_start(text, min(WORD, WIDTH - self.column - 1))
            if not word:  # not one character fits here
                word, rest = encode_start(text, WORD)
                self.column = WIDTH
            self.add(word)
            text = rest

    def value(self) -> str:
        """Return the value: the lines joined by CRLF, without the space after the colon."""
        return "\r\n".join(self.lines)[1:]


def encode_start(text: str, width: int) -> tuple[str, str]:
    """Return the encoded word of the longest start of *text* that fits *width* characters, and the rest."""
    word = encoded_word(text, width)
    if word is not None:
        return word, ""
    end = fitting_length(text, width - _OVERHEAD)
    return encoded_word(text[:end], width) or "", text[end:]


def fitting_length(text: str, room: int) -> int:
    """Return how many characters of *text* fit *room* characters as "Q" or as base64, whichever holds more."""
    q_size = size = 0
    for index, char in enumerate(text):
        data = char.encode("utf-8")
        size += len(data)
        q_size += sum(_Q_SIZE[byte] for byte in data)
        if min(q_size, (size + 2) // 3 * 4) > room:
            return index
    return len(text)


def encoded_word(text: str, width: int = WORD) -> str | None:
    """Return *text* as one UTF-8 encoded word of at most *width*; "Q" unless base64 is 5 or more shorter."""
    if not text:
        return None
    data = text.encode("utf-8")
    q = data.decode("latin-1").translate(_Q)
    b = binascii.b2a_base64(data, newline=False).decode("ascii")
    room = width - _OVERHEAD
    if len(q) <= room and (len(q) - len(b) < 5 or len(b) > room):
        return f"=?utf-8?q?{q}?="
    return f"=?utf-8?b?{b}?=" if len(b) <= room else None
