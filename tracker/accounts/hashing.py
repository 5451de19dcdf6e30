"""Random tokens, their stored hashes, and values signed with the secret key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

TOKEN_BYTES = 32  # 256 bits: not guessable, whatever the rate limit
MAX_TOKEN = 200  # characters of a token or cookie value read from a request; longer is not ours


def new_token() -> str:
    """A random URL-safe token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> str:
    """The hash stored for *token*: SHA-256 suffices for 256 random bits (no dictionary to try)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def sign(secret: bytes, purpose: str, value: str) -> str:
    """*value* with its HMAC for *purpose*, as `value.signature`."""
    return f"{value}.{signature(secret, purpose, value)}"


def signature(secret: bytes, purpose: str, value: str) -> str:
    mac = hmac.digest(secret, f"{purpose}:{value}".encode(), "sha256")
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def unsign(secret: bytes, purpose: str, signed: str | None) -> str | None:
    """The value of a well-signed `value.signature` for *purpose*, else None."""
    if not signed or len(signed) > MAX_TOKEN or not signed.isascii():
        return None
    value, _, mac = signed.rpartition(".")
    if not value or not hmac.compare_digest(mac, signature(secret, purpose, value)):
        return None
    return value


def derive(secret: bytes, purpose: str, value: str) -> str:
    """A token made from *value* and the secret key: the store alone (a leaked backup) cannot make it."""
    return signature(secret, purpose, value)
