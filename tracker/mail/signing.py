"""DKIM: a signature over a message's final bytes (dkimpy), for mail sent straight to the internet.

Signed last, over the bytes as they go after DATA (CRLF line ends): what the SMTP client does
after that (dot-stuffing, the end mark) is transport, undone by the receiver before it verifies.
Relaxed/relaxed canonicalisation, so that a relay that refolds a header does not break it; no
`l=`, so that nothing can be appended to a signed body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

# RFC 8058 requires List-Unsubscribe and List-Unsubscribe-Post signed for one-click unsubscribe.
# A name absent from a message (a sign-in email has no List-Unsubscribe) is signed as absent:
# nobody can add it on the way without breaking the signature.
SIGNED = (
    "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Auto-Submitted",
)  # fmt: skip
NAME = "DKIM-Signature"
_LABELS = re.compile(
    r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*"
)
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
MIN_BITS = 1024  # RFC 8301: receivers refuse shorter keys
FIX = "generate one with `openssl genrsa -out dkim.pem 2048` (README, 'Signing mail (DKIM)')"
MAX_KEY = 64 * 1024  # an RSA key of 16384 bits is under 13 KB in PEM


# --- the RSA step, by OpenSSL -------------------------------------------------------------------
# dkimpy computes RSA in pure Python: 8-20 ms a message, 30-100 times the cost of rendering it,
# which a fan-out pays per recipient (the body hash differs with each one's links). Everything
# else stays dkimpy's (canonicalisation, tags, folding); only the modular exponentiation goes to
# OpenSSL, through `cryptography`, for the keys Tracker loaded, and the key is parsed once, not per
# message. RSASSA-PKCS1-v1_5 is deterministic, so the signature is the same bytes either way
# (tests/test_dkim.py checks it).

_PURE_SIGN = dkim.RSASSA_PKCS1_v1_5_sign
_OPENSSL: dict[int, rsa.RSAPrivateKey] = {}  # by modulus: dkimpy hands the sign step its own parse of the key


def _sign_digest(digest: Any, private_key: dict[str, int]) -> bytes:
    key = _OPENSSL.get(private_key["modulus"])
    if key is None or digest.name != "sha256":
        return bytes(_PURE_SIGN(digest, private_key))
    return key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))


@lru_cache(maxsize=8)
def _parse_key(pem: bytes) -> dict[str, int]:
    # dkimpy parses the PEM again (ASN.1, in Python) for every message; the key does not change.
    parsed: dict[str, int] = _PURE_PARSE(pem)
    return parsed


_PURE_PARSE = dkim.parse_pem_private_key
# The names dkimpy's signer calls (dkim 1.1: DKIM.sign, DKIM.gen_header); tests/test_dkim.py checks both.
dkim.RSASSA_PKCS1_v1_5_sign = _sign_digest
dkim.parse_pem_private_key = _parse_key


@lru_cache(maxsize=8)
def _remember(pem: bytes) -> None:
    """Let OpenSSL sign for the key in *pem* (once per process: a render helper loads it again)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        _OPENSSL[key.private_numbers().public_numbers.n] = key


class SigningError(ValueError):
    """The DKIM settings cannot sign: the message says which setting, and how to fix it."""


@dataclass(frozen=True)
class Signer:
    """Sign messages as *domain* with the key published at *selector*._domainkey.*domain*."""

    key: bytes = field(repr=False)  # PEM, LF line ends (dkimpy's parser wants them)
    selector: str
    domain: str

    def signature(self, data: bytes) -> bytes:
        """Return the DKIM-Signature header line (CRLF-ended) of *data*, a message with CRLF line ends."""
        _remember(self.key)
        line: bytes = dkim.sign(
            data,
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self.key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[name.encode("ascii") for name in SIGNED],
            length=False,
            linesep=b"\r\n",
        )
        return line

    def sign(self, data: bytes) -> bytes:
        """Return *data* with CRLF line ends and its DKIM-Signature as the first header."""
        data = crlf(data)
        return self.signature(data) + data

    def sign_message(self, message: EmailMessage) -> None:
        """Put the signature of bytes(*message*) first in *message*; bytes(*message*) then verifies.

        The header goes in raw (set_raw), so the email package writes it as dkimpy folded it.
        """
        line = self.signature(crlf(bytes(message))).decode("ascii")
        value = line.split(":", 1)[1].removeprefix(" ").removesuffix("\r\n")
        headers = list(message.raw_items())
        for name in {name for name, _ in headers}:
            del message[name]
        message.set_raw(NAME, value)
        for name, raw in headers:
            message.set_raw(name, raw)


def crlf(data: bytes) -> bytes:
    """Return *data* with CRLF line ends (as it goes on the wire)."""
    if data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r"):
        return data
    return _LINE_ENDS.sub(b"\r\n", data)


def load_signer(key_file: Path, selector: str, domain: str) -> Signer:
    """Return a signer of *key_file*'s key; raise SigningError saying what to fix."""
    if not _LABELS.fullmatch(selector) or len(selector) > 253:
        raise SigningError(
            f"TRACKER_DKIM_SELECTOR {selector!r} is not a DNS name: letters, digits, '-' and '_' "
            "in dot-separated labels, e.g. 'tracker2026'"
        )
    if not _LABELS.fullmatch(domain) or "." not in domain or len(domain) > 253:
        raise SigningError(
            f"TRACKER_DKIM_DOMAIN {domain!r} is not a domain name Tracker can sign as: set it to the From "
            "address's domain or a parent of it, an internationalised one in its xn-- form"
        )
    signer = Signer(read_key(key_file), selector, domain)
    try:  # a key dkimpy reads but cannot sign with
        signer.signature(b"From: check@" + domain.encode("ascii") + b"\r\n\r\ncheck\r\n")
    except (dkim.DKIMException, ValueError, TypeError) as exc:
        raise SigningError(f"TRACKER_DKIM_KEY_FILE {key_file}: cannot sign with it ({exc}); {FIX}") from None
    return signer


def read_key(key_file: Path) -> bytes:
    """Return the PEM RSA private key in *key_file*, with LF line ends; raise SigningError if unusable."""
    fix = FIX
    try:
        with key_file.open("rb") as opened:
            data = opened.read(MAX_KEY + 1)
    except OSError as exc:
        raise SigningError(f"TRACKER_DKIM_KEY_FILE {key_file}: cannot read it ({exc.strerror}); {fix}") from None
    if len(data) > MAX_KEY:
        raise SigningError(f"TRACKER_DKIM_KEY_FILE {key_file}: over {MAX_KEY} bytes, not a private key; {fix}")
    data = _LINE_ENDS.sub(b"\n", data)
    if b"PRIVATE KEY-----" not in data or b"ENCRYPTED" in data:
        raise SigningError(
            f"TRACKER_DKIM_KEY_FILE {key_file}: not an unencrypted PEM private key "
            f"('-----BEGIN PRIVATE KEY-----' or '-----BEGIN RSA PRIVATE KEY-----'); {fix}"
        )
    try:
        bits = int(parse_pem_private_key(data)["modulus"]).bit_length()
    except (UnparsableKeyError, ValueError, IndexError, TypeError, KeyError):
        raise SigningError(
            f"TRACKER_DKIM_KEY_FILE {key_file}: not an RSA private key Tracker can use (Ed25519 and other "
            f"kinds are not supported); {fix}"
        ) from None
    if bits < MIN_BITS:
        raise SigningError(f"TRACKER_DKIM_KEY_FILE {key_file}: a {bits}-bit key, which receivers refuse; {fix}")
    return data


def aligned(domain: str, from_domain: str) -> bool:
    """Tell whether a signature of *domain* aligns with the From domain (DMARC's relaxed alignment).

    One is the other or a subdomain of it: without the public suffix list, the closest check that
    accepts what relaxed alignment accepts for a domain of the organisation's own.
    """
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if "." not in domain:
        return False
    return from_domain == domain or from_domain.endswith("." + domain) or domain.endswith("." + from_domain)
