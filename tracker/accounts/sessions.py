"""Console sessions: a random id in a signed cookie, its hash in the store; idle and absolute expiry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from tracker.accounts.hashing import MAX_TOKEN, digest, new_token
from tracker.store.models import ConsoleSession, User

TOUCH_EVERY = timedelta(minutes=1)  # seen_at is written at most this often: one write per click is waste


@dataclass(frozen=True)
class Lifetimes:
    idle: timedelta  # signed out after this long without a request
    absolute: timedelta  # signed out this long after signing in, whatever happens


@dataclass(frozen=True)
class SignedIn:
    user: User
    session_id: int


def open_session(session: Session, user: User, *, now: datetime, lifetimes: Lifetimes) -> str:
    """Start a session for *user*; return its id (for the cookie; the store keeps only its hash)."""
    assert user.id is not None
    raw = new_token()
    row = ConsoleSession(
        user_id=user.id, id_hash=digest(raw), created_at=now, seen_at=now, expires_at=now + lifetimes.absolute
    )
    session.add(row)
    session.flush()
    return raw


def find_session(session: Session, raw: str | None, *, now: datetime, lifetimes: Lifetimes) -> SignedIn | None:
    """The user of the session *raw* names, if it is open; its idle clock starts again."""
    if not raw or len(raw) > MAX_TOKEN:
        return None
    row = session.exec(select(ConsoleSession).where(ConsoleSession.id_hash == digest(raw))).first()
    if row is None or row.revoked_at is not None or now >= row.expires_at or now - row.seen_at >= lifetimes.idle:
        return None
    user = session.get(User, row.user_id)
    if user is None:
        return None
    if now - row.seen_at >= TOUCH_EVERY:
        row.seen_at = now
    assert row.id is not None
    return SignedIn(user, row.id)


def close_session(session: Session, raw: str | None, now: datetime) -> None:
    """End the session *raw* names ("sign out")."""
    if not raw or len(raw) > MAX_TOKEN:
        return
    row = session.exec(select(ConsoleSession).where(ConsoleSession.id_hash == digest(raw))).first()
    if row is not None and row.revoked_at is None:
        row.revoked_at = now
