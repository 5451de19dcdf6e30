"""Read one bounce: which delivery it is about (its VERP address), whether it is hard or soft, and why.

Pure: bytes in, a Reading out; nothing stored, no clock. A bounce is hostile input (anyone can
send mail to the bounce address), so everything kept from it is bounded and printable, and the
delivery it names counts only with a good signature.

Standard DSNs (RFC 3464 multipart/report) are read here; flufl.bounce's detectors, which know the
non-standard reports of many servers (Exchange, qmail, Yahoo, …), say which failures are lasting.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from flufl.bounce._scan import _DETECTORS  # all_failures()'s list, run one by one (_detected)

from tracker.mail.verp import read_verp, tag_of

log = logging.getLogger(__name__)

Kind = Literal["hard", "soft"]
DIAGNOSTIC_MAX = 300  # characters of the server's reason kept
REPLACEMENT = "\ufffd"  # what an undecodable byte became: noise in a reason
STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
SMTP_REPLY = re.compile(r"\b([45])\d\d[ -]")
# Where the address a bounce was sent to shows, outermost first: the relay's own records of the envelope.
ADDRESS_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


@dataclass(frozen=True)
class Bounce:
    """A failure the report tells of: hard (5.x.x, lasting) or soft (4.x.x, delayed).

    `given_up` is a soft failure the relay stopped retrying (`Action: failed` with 4.x.x: the
    message expired in its queue). The message never arrived, so its row is bounced; the address
    may be fine (its server was down for days), so it counts toward suspension as soft.
    """

    kind: Kind
    status: str  # the enhanced status code, '5.1.1'; '' when the report gives none
    diagnostic: str  # the remote server's words, one line, bounded
    given_up: bool = False

    @property
    def undelivered(self) -> bool:
        """Whether the message will not arrive: a hard failure, or a soft one given up on."""
        return self.kind == "hard" or self.given_up


@dataclass(frozen=True)
class Reading:
    """What one message to the bounce address says.

    `delivery_id` is set only when a signed VERP address names it; `forged` when the message
    came to a tagged bounce address whose signature is wrong; `bounce` is None for mail that
    reports no failure (an auto-reply, a read receipt).
    """

    delivery_id: int | None
    forged: bool
    bounce: Bounce | None
    fingerprint: str  # the same report, forwarded twice, has the same one


def read_bounce(data: bytes, *, secret: bytes, bounce_address: str, recipients: Sequence[str] = ()) -> Reading:
    """Read *data*, a message that came to the bounce address (*recipients*: its envelope's RCPT TO).

    A message too deeply nested for the stdlib parser raises RecursionError: intake.take_bounce
    makes any exception from here an `unreadable` outcome.
    """
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)
    delivery_id, forged = find_delivery(message, secret=secret, bounce_address=bounce_address, recipients=recipients)
    return Reading(delivery_id, forged, classify(message), fingerprint(message, data, delivery_id))


def find_delivery(
    message: email.message.Message, *, secret: bytes, bounce_address: str, recipients: Sequence[str]
) -> tuple[int | None, bool]:
    """Return the delivery id of the first tagged bounce address found, and whether a tagged one was forged.

    A tagged envelope recipient decides alone: the relay wrote it, while the headers are the
    sender's, so a bad signature there is not made good by a seen address in a To header.
    """
    forged = False
    tagged = [address for address in recipients[:10] if tag_of(bounce_address, address) is not None]
    for address in tagged or candidate_addresses(message, recipients):
        if tag_of(bounce_address, address) is None:
            continue
        delivery_id = read_verp(secret, bounce_address, address)
        if delivery_id is not None:
            return delivery_id, False
        forged = True
    return None, forged


def candidate_addresses(message: email.message.Message, recipients: Sequence[str]) -> Iterator[str]:
    """The addresses the bounce may have been sent to: the envelope, the relay's headers, the returned Return-Path."""
    yield from recipients[:10]
    for name in ADDRESS_HEADERS:
        for value in (message.get_all(name) or [])[:10]:
            yield from _addresses(str(value))
    for part in _parts(message):
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            returned = _returned_headers(part)
            if returned is not None:
                yield from _addresses(str(returned.get("Return-Path", "")))


def _addresses(value: str) -> Iterator[str]:
    yield from re.findall(r"[^\s<>,;\"]+@[^\s<>,;\"]+", value[:2000])[:10]


def _returned_headers(part: email.message.Message) -> email.message.Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
        return payload[0]
    if isinstance(payload, str):  # text/rfc822-headers: the headers as text
        return email.parser.Parser(policy=email.policy.compat32).parsestr(payload[:50_000], headersonly=True)
    return None


def classify(message: email.message.Message) -> Bounce | None:
    """Hard, soft, or no bounce at all: the DSN's own fields first, then flufl.bounce's detectors."""
    reported = _from_delivery_status(message)
    if reported is not None:
        return reported
    temporary, permanent = _detected(message)
    if not (temporary or permanent):
        return None
    status, diagnostic = _from_text(message)
    kind: Kind = "hard" if permanent else "soft"
    if status and status[0] != ("5" if kind == "hard" else "4"):
        status = ""  # a code elsewhere in the text that is not this failure's
    return Bounce(kind, status, diagnostic)


def _detected(message: email.message.Message) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """flufl.bounce's all_failures(), each detector on its own: one that trips does not stop the rest.

    all_failures() re-raises the first detector's exception (Yale's IndexError on a message
    without From), which would hide the failure a later detector (qmail's) knows. Its list of
    detectors is private (`_DETECTORS`), so the version is pinned (pyproject.toml).
    """
    for detector in _DETECTORS:
        try:
            temporary, permanent = detector().process(message)
        except Exception:  # a malformed message: this detector cannot tell; the next may
            log.info("bounce detector %s could not read a message", detector.__name__, exc_info=True)
            continue
        if temporary or permanent:
            return frozenset(temporary), frozenset(permanent)
    return frozenset(), frozenset()


def _from_delivery_status(message: email.message.Message) -> Bounce | None:
    """The most serious recipient of an RFC 3464 report: failed (5.x.x) before delayed (4.x.x)."""
    found: list[Bounce] = []
    for part in _parts(message):
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks[1:20] if isinstance(blocks, list) else []:
            if not isinstance(block, email.message.Message):
                continue
            action = str(block.get("Action", "")).strip().lower()
            status = STATUS.search(str(block.get("Status", "")))
            code = ".".join(status.groups()) if status else ""
            diagnostic = clean(str(block.get("Diagnostic-Code", "")).partition(";")[2] or str(block.get("Status", "")))
            if action == "failed" or (not action and code.startswith("5")):
                soft = code.startswith("4")  # failed after retries: expired in the queue
                found.append(Bounce("soft" if soft else "hard", code, diagnostic, given_up=soft))
            elif action == "delayed" or code.startswith("4"):
                found.append(Bounce("soft", code, diagnostic))
    return min(found, key=lambda bounce: (bounce.kind != "hard", not bounce.given_up), default=None)


def _from_text(message: email.message.Message) -> tuple[str, str]:
    """A status code and the line that gives it, from a non-standard report's text."""
    for part in _parts(message):
        if part.get_content_maintype() != "text" or part.get_content_subtype() == "rfc822-headers":
            continue
        text = _text_of(part)
        for line in text.splitlines()[:200]:
            status = STATUS.search(line)
            if status or SMTP_REPLY.search(line):
                return (".".join(status.groups()) if status else ""), clean(line)
        return "", clean(" ".join(line for line in text.splitlines()[:40] if line.strip())[:DIAGNOSTIC_MAX])
    return "", ""


def _text_of(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "us-ascii"
    try:
        return payload[:100_000].decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload[:100_000].decode("ascii", errors="replace")


def _parts(message: email.message.Message) -> Iterator[email.message.Message]:
    """The message's parts, depth first, at most 100: a bounce with more is not worth reading further."""
    for count, part in enumerate(message.walk()):
        if count >= 100:
            return
        yield part


def clean(text: str) -> str:
    """One line of printable text, at most DIAGNOSTIC_MAX characters: safe for a terminal, a page, a log.

    Whatever str.isprintable() refuses goes: controls, and also bidirectional controls and
    zero-width characters (Unicode's format characters), which would reorder or hide the
    text shown around the reason, and surrogates and U+FFFD from undecodable bytes.
    """
    kept = text[: DIAGNOSTIC_MAX * 20]
    if not kept.isprintable() or REPLACEMENT in kept:  # the common case, answered in C
        kept = "".join(char if char.isprintable() and char != REPLACEMENT else " " for char in kept)
    return " ".join(kept.split())[:DIAGNOSTIC_MAX]


def fingerprint(message: email.message.Message, data: bytes, delivery_id: int | None) -> str:
    """The same report once: its Message-ID if it has one, else its body (a relay adds headers, not body).

    The delivery it names is part of it: a report about one message cannot stand for another's.
    """
    about = b"%d:" % delivery_id if delivery_id is not None else b"-:"
    message_id = str(message.get("Message-ID", "")).strip()[:500]
    if message_id:
        return hashlib.sha256(about + b"id:" + message_id.encode("utf-8", "replace")).hexdigest()
    _, _, body = data.partition(b"\r\n\r\n") if b"\r\n\r\n" in data else data.partition(b"\n\n")
    return hashlib.sha256(about + b"body:" + body).hexdigest()
