"""One-time sign-in links: made for a known address, bound to the browser that asked, used once.

The token is made from a random salt and the secret key; the store keeps the salt and the
token's hash, so neither a leaked backup nor a leaked key alone makes a working link, and the
dispatcher can still write the link into the email when it sends it (docs/console.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlmodel import Session, col, select, update

from tracker.accounts.hashing import MAX_TOKEN, derive, digest, new_token
from tracker.store.models import SignInLink, User

PURPOSE = "sign-in"
Refusal = Literal["unknown", "used", "expired", "other-browser"]


@dataclass(frozen=True)
class Redeemed:
    user: User


def link_token(secret: bytes, salt: str) -> str:
    """The token of the link whose salt is *salt*."""
    return derive(secret, PURPOSE, salt)


def make_link(
    session: Session, user: User, browser: str, secret: bytes, *, now: datetime, valid: timedelta
) -> SignInLink:
    """Store a new link for *user*, bound to the browser whose (random) cookie value is *browser*."""
    assert user.id is not None
    salt = new_token()
    link = SignInLink(
        user_id=user.id,
        token_hash=digest(link_token(secret, salt)),
        salt=salt,
        browser_hash=digest(browser),
        created_at=now,
        expires_at=now + valid,
    )
    session.add(link)
    session.flush()
    return link


def redeem(session: Session, token: str, browser: str | None, now: datetime) -> Redeemed | Refusal:
    """Use the link of *token* from the browser *browser*: its user, or why not.

    Spent in one conditional update, so two clicks at once (or a scanner racing the person)
    cannot both sign in. A link opened in another browser is not spent: the right one may still use it.
    """
    if not token or len(token) > MAX_TOKEN:
        return "unknown"
    link = session.exec(select(SignInLink).where(SignInLink.token_hash == digest(token))).first()
    if link is None:
        return "unknown"
    if link.used_at is not None:
        return "used"
    if now >= link.expires_at:
        return "expired"
    if browser is None or digest(browser) != link.browser_hash:
        return "other-browser"
    spent = session.exec(
        update(SignInLink).where(col(SignInLink.id) == link.id, col(SignInLink.used_at).is_(None)).values(used_at=now)
    )
    user = session.get(User, link.user_id)
    if spent.rowcount != 1 or user is None:
        return "used" if user is not None else "unknown"
    return Redeemed(user)


def link_owner(session: Session, token: str) -> str:
    """The address of the user a link was made for; '' for a token no link has (or a user since removed)."""
    if not token or len(token) > MAX_TOKEN:
        return ""
    found = session.exec(
        select(User.email).join(SignInLink, col(SignInLink.user_id) == col(User.id))
        .where(SignInLink.token_hash == digest(token))
    ).first()  # fmt: skip
    return found or ""
