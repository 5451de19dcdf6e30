"""What text from people may hold: the characters refused in names, titles and summaries.

Such text goes into email headers, calendar items, pages and the secretariat's terminal. A line
break, NUL or escape there can start a header or a calendar property of its own, or act on a
terminal; a lone surrogate cannot be encoded at all (UTF-8 and PostgreSQL refuse it); a
bidirectional override or isolate makes the text show as something it is not. Each is refused
where the text comes in, with its position, rather than quietly changed. (What goes out is
cleaned again at every output, for values stored before these checks.)
"""

from __future__ import annotations

import re
import unicodedata

LANGUAGES = ("ar", "zh", "en", "fr", "ru", "es")  # the six UN languages of titles, pages and emails

# Control characters, lone surrogates, line and paragraph separators: the categories refused
# below, as a pattern for the outputs that clean (Cc is C0, DEL and C1; Zl and Zp one each).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Embeddings, overrides and isolates. The marks (U+200E, U+200F, U+061C) stay: right-to-left
# writing needs them, and they reorder nothing beyond their own neighbourhood.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def whole_number(text: str, digits: int) -> int | None:
    """*text* read as at most *digits* ASCII digits, else None ("²" is a digit to str.isdigit, not to int)."""
    return int(text) if 0 < len(text) <= digits and text.isascii() and text.isdigit() else None


def find_refused(text: str, *, allowed: str = "") -> tuple[int, str] | None:
    """Return the 1-based position and a description of the first refused character, or None."""
    if text.isprintable():  # the common case, answered in C: no control, separator or surrogate
        return next(((i, describe(c)) for i, c in enumerate(text, 1) if c in BIDI_CONTROLS), None)
    for position, char in enumerate(text, 1):
        if char not in allowed and (unicodedata.category(char) in _REFUSED_CATEGORIES or char in BIDI_CONTROLS):
            return position, describe(char)
    return None


def describe(char: str) -> str:
    """Name a refused character for a message: 'a control character (U+001B)'."""
    category = unicodedata.category(char)
    what = {
        "Cs": "a lone surrogate",
        "Zl": "a line separator",
        "Zp": "a paragraph separator",
    }.get(category, "a bidirectional control" if char in BIDI_CONTROLS else "a control character")
    if char in "\r\n":
        what = "a line break"
    return f"{what} (U+{ord(char):04X})"


MAX_REASON = 300  # characters of a reason kept: an exception's text can quote a whole value


def describe_error(exc: BaseException) -> str:
    """What went wrong, as describe_text makes it."""
    return describe_text(f"{type(exc).__name__}: {exc}")


def describe_text(text: str) -> str:
    """One bounded printable line, safe for a log line, a stored row and a terminal."""
    text = "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"
