"""Users of the console: add (or change the role of), list, remove."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from sqlmodel import Session, col, delete, select

from tracker.accounts.api_tokens import limit_tokens_of, revoke_tokens_of
from tracker.accounts.roles import Role
from tracker.store.models import ConsoleSession, SignInLink, User
from tracker.text import LANGUAGES

Outcome = Literal["added", "updated", "unchanged"]


class UserError(ValueError):
    """An address or value that cannot name a user; the message says what to fix."""


def normalise_email(text: str) -> tuple[str, str]:
    """The address as mail is sent to it and its lower-cased key, or raise UserError."""
    if "\r" in text or "\n" in text or len(text) > 320:
        raise UserError("this is not an email address: a line break, or longer than 320 characters")
    from email_validator import EmailNotValidError, validate_email  # here: few commands read an address

    try:
        valid = validate_email(text.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise UserError(f"this is not an email address: {exc}") from None
    if valid.ascii_email is None:
        raise UserError("the part before the @ is not ASCII (it would need SMTPUTF8): use an ASCII address")
    return valid.ascii_email, valid.normalized.lower()


def find_user(session: Session, email: str) -> User | None:
    """The user of *email*, if there is one; raise UserError when it is not an address."""
    _, key = normalise_email(email)
    return session.exec(select(User).where(User.email_key == key)).first()


def save_user(session: Session, email: str, role: Role, language: str, now: datetime) -> tuple[User, Outcome]:
    """Add a user, or give an existing one *role* and *language*."""
    if language not in LANGUAGES:
        raise UserError(f"language {language[:10]!r}: use one of {', '.join(LANGUAGES)}")
    address, key = normalise_email(email)
    user = session.exec(select(User).where(User.email_key == key)).first()
    if user is None:
        user = User(email=address, email_key=key, role=role, language=language, created_at=now)
        session.add(user)
        session.flush()
        return user, "added"
    if (user.role, user.language) == (role, language):
        return user, "unchanged"
    if role != user.role:  # a role taken away must not live on in a signed-in browser, nor in a token
        revoke_all(session, user, now)
        limit_tokens_of(session, user, role)
    user.role, user.language = role, language
    return user, "updated"


def list_users(session: Session) -> Sequence[User]:
    return session.exec(select(User).order_by(col(User.email_key))).all()


def remove_user(session: Session, user: User, now: datetime) -> None:
    """Remove *user*: their sessions end, their unused links and their API tokens stop working at once."""
    revoke_tokens_of(session, user, now)
    session.exec(delete(ConsoleSession).where(col(ConsoleSession.user_id) == user.id))
    session.exec(delete(SignInLink).where(col(SignInLink.user_id) == user.id))
    session.delete(user)


def revoke_all(session: Session, user: User, now: datetime) -> int:
    """End every session of *user* ("sign out everywhere"); return how many were open."""
    sessions = session.exec(
        select(ConsoleSession).where(ConsoleSession.user_id == user.id, col(ConsoleSession.revoked_at).is_(None))
    ).all()
    for found in sessions:
        found.revoked_at = now
    return len(sessions)
