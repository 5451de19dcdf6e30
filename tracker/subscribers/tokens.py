"""Signed tokens for the links in emails and personal feeds; the secret key that signs them.

A token names a subscriber, a purpose and a version, signed with HMAC-SHA256. Nothing
is stored: a link can be written again in any later email, and raising the stored
version of a purpose revokes every token of that purpose at once.

The subscriber and version are enciphered (a keyed permutation of 16 bytes), so a link does
not show the subscriber's sequential number: nobody learns how many subscribe, or who came
after whom. Links of the first form (the number in plain base64) are still read.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
import struct
from contextlib import suppress
from pathlib import Path
from typing import Literal

Purpose = Literal["manage", "feed", "confirm"]
PLACEHOLDERS = {"", "changeme", "change-me", "secret", "please-change-me", "placeholder", "xxx", "insecure"}
MIN_KEY_LENGTH = 32
ROUNDS = 4  # Luby–Rackoff: four Feistel rounds of a pseudorandom function make a strong pseudorandom permutation
PLAIN = struct.Struct(">QQ")  # subscriber id, version


class SecretKeyError(ValueError):
    """The configured secret key is a placeholder or too short."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, purpose: Purpose, body: str) -> str:
    # The one-call form: the same digest as hmac.new(...).digest() without building an HMAC object.
    return _b64(hmac.digest(secret, f"{purpose}:{body}".encode(), "sha256")[:18])


def _round(secret: bytes, purpose: Purpose, number: int, half: bytes) -> bytes:
    return hmac.digest(secret, b"permute:%s:%d:%s" % (purpose.encode(), number, half), "sha256")[:8]


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _encipher(secret: bytes, purpose: Purpose, plain: bytes) -> bytes:
    left, right = plain[:8], plain[8:]
    for number in range(ROUNDS):
        left, right = right, _xor(left, _round(secret, purpose, number, right))
    return left + right


def _decipher(secret: bytes, purpose: Purpose, cipher: bytes) -> bytes:
    left, right = cipher[:8], cipher[8:]
    for number in reversed(range(ROUNDS)):
        left, right = _xor(right, _round(secret, purpose, number, left)), left
    return left + right


def make_token(secret: bytes, purpose: Purpose, subscriber_id: int, version: int) -> str:
    """Return an unguessable token for *subscriber_id*'s *purpose* at *version*; it does not show the id."""
    body = _b64(_encipher(secret, purpose, PLAIN.pack(subscriber_id, version)))
    return f"{body}.{_signature(secret, purpose, body)}"


def read_token(secret: bytes, purpose: Purpose, token: str) -> tuple[int, int] | None:
    """Return (subscriber id, version) of a well-signed token, else None."""
    body, _, signature = token.partition(".")
    # compare_digest refuses non-ASCII text (a TypeError, a 500 at the link): no token of ours has any.
    if not body or not signature or len(token) > 100 or not token.isascii():
        return None
    if not hmac.compare_digest(signature, _signature(secret, purpose, body)):
        return None
    try:
        data = _unb64(body)
    except ValueError:
        return None
    if len(data) == PLAIN.size:
        subscriber_id, version = PLAIN.unpack(_decipher(secret, purpose, data))
        return int(subscriber_id), int(version)
    return _read_plain(data)


def _read_plain(data: bytes) -> tuple[int, int] | None:
    """The first form of a token's body, "id.version" (in emails sent before bodies were enciphered)."""
    try:
        subscriber_id, version = data.decode("ascii").split(".")
        return int(subscriber_id), int(version)
    except (ValueError, UnicodeDecodeError):
        return None


def check_secret_key(key: str) -> bytes:
    """Refuse placeholder and short keys; return the key as bytes."""
    if key.strip().lower() in PLACEHOLDERS or len(key) < MIN_KEY_LENGTH:
        raise SecretKeyError(
            f"TRACKER_SECRET_KEY must be a random value of at least {MIN_KEY_LENGTH} characters, not a placeholder;"
            " leave it unset to have one generated into var/secret_key"
        )
    return key.encode()


def load_secret_key(configured: str, generated: Path) -> bytes:
    """Use the configured key, or the one generated into *generated* (made on first use, mode 0600)."""
    if configured:
        return check_secret_key(configured)
    if not generated.exists():
        generated.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = generated.with_name(f".{generated.name}.{secrets.token_hex(6)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(48))
        # A hard link appears whole or not at all: when two instances start at once,
        # one key wins and both use it.
        with suppress(FileExistsError):
            os.link(draft, generated)
        draft.unlink()
    return check_secret_key(generated.read_text().strip())
