"""Per-message envelope senders (VERP): `bounces+<delivery id>.<signature>@example.org`.

A bounce comes back to the envelope sender of the message it is about, so the address itself
says which outbox row bounced: no guessing from the bounce's text. The signature (an HMAC of
the row id with the secret key) lets a forged bounce, which could suspend any address, be told
apart. It is lower-case base32, as some relays change the case of a local part.
"""

from __future__ import annotations

import base64
import hmac
import re

LOCAL_PART_MAX = 64  # RFC 5321 §4.5.3.1.1
ID_DIGITS = 19  # the largest 64-bit row id
SIGNATURE_LENGTH = 16  # base32 characters: 80 bits
# What the id and signature add to the base's local part: "+", the id, ".", the signature.
TAG_MAX = 1 + ID_DIGITS + 1 + SIGNATURE_LENGTH
SAFE_LOCAL = re.compile(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?")
DOMAIN = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+")
TAG = re.compile(rf"([0-9]{{1,{ID_DIGITS}}})\.([a-z2-7]{{{SIGNATURE_LENGTH}}})")


def check_bounce_address(address: str) -> str:
    """Return the bounce address lower-cased; raise ValueError naming the fix if it cannot carry a tag."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at or not SAFE_LOCAL.fullmatch(local) or not DOMAIN.fullmatch(domain) or ".." in local or "+" in local:
        raise ValueError(
            f"TRACKER_BOUNCE_ADDRESS must be a plain address such as bounces@example.org (letters, digits, "
            f"'.', '_' and '-' before the @, no '+'), not {address[:100]!r}"
        )
    if len(local) + TAG_MAX > LOCAL_PART_MAX:
        raise ValueError(
            f"TRACKER_BOUNCE_ADDRESS: the part before the @ may have at most {LOCAL_PART_MAX - TAG_MAX} characters "
            f"(the delivery tag takes {TAG_MAX} of the {LOCAL_PART_MAX} allowed), not {len(local)}"
        )
    return f"{local}@{domain}"


def _signature(secret: bytes, delivery_id: int) -> str:
    digest = hmac.digest(secret, b"bounce:%d" % delivery_id, "sha256")[:10]
    return base64.b32encode(digest).decode("ascii").lower()


def verp_address(secret: bytes, bounce_address: str, delivery_id: int) -> str:
    """Return the envelope sender of delivery *delivery_id*: the bounce address tagged with the signed id."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{delivery_id}.{_signature(secret, delivery_id)}@{domain}"


def tag_of(bounce_address: str, address: str) -> str | None:
    """Return the tag of *address* if it is the bounce address with one (`local+TAG@domain`), else None."""
    local, _, domain = bounce_address.rpartition("@")
    if len(address) > 320 or not address.isascii():
        return None
    given_local, at, given_domain = address.strip().strip("<>").lower().rpartition("@")
    base, plus, tag = given_local.partition("+")
    if not at or given_domain != domain or base != local or not plus:
        return None
    return tag


def read_verp(secret: bytes, bounce_address: str, address: str) -> int | None:
    """Return the delivery id *address* names with a good signature; None if it is forged or not one of ours."""
    tag = tag_of(bounce_address, address)
    found = TAG.fullmatch(tag) if tag is not None else None
    if found is None:
        return None
    delivery_id = int(found.group(1))
    return delivery_id if hmac.compare_digest(found.group(2), _signature(secret, delivery_id)) else None
