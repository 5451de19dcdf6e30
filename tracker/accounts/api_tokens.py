"""Personal API tokens: made for a console user with a role no higher than theirs, shown once, revocable.

A token reads `trk_<public id>_<secret>`: the public id (48 random bits) finds its row, and the
store keeps only the SHA-256 of the whole token (256 random bits of secret: nothing to guess a
dictionary from), compared in constant time. See docs/console.md, "API tokens".
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select, update

from tracker.accounts.hashing import MAX_TOKEN, digest, new_token
from tracker.accounts.roles import ROLES, Role, allows
from tracker.store.models import ApiToken, Event, User
from tracker.text import whole_number

TAG = "trk"
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often: one write per call is waste
MAX_DAYS = 3650
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,59}")
SHAPE = re.compile(rf"{TAG}_([0-9a-f]{{12}})_[A-Za-z0-9_-]{{43}}")
Refusal = Literal["malformed", "unknown", "revoked", "expired", "owner-gone"]


class TokenError(ValueError):
    """A name, role or lifetime a token cannot have; the message says what to fix, *reason* which field."""

    def __init__(self, message: str, reason: Literal["name", "taken", "role", "days"]) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    """Who an accepted token speaks for: the token, its owner, and the role it has now."""

    token_id: int
    name: str
    email: str
    role: Role

    @property
    def actor(self) -> str:
        """How the audit log names what this token does."""
        return f"api:{self.name} ({self.email})"[:120]


@dataclass(frozen=True)
class Listed:
    token: ApiToken
    owner: str  # the owner's address; '' when the owner was removed


def lower_role(first: str, second: str) -> Role:
    """The lower of two roles; an unknown one counts as below viewer (it allows nothing)."""
    if first not in ROLES or second not in ROLES:
        return "viewer"
    return ROLES[min(ROLES.index(first), ROLES.index(second))]


def check_name(text: str) -> str:
    name = " ".join(text.split())
    if not NAME.fullmatch(name):
        raise TokenError(
            "the name is 1 to 60 letters, digits, spaces, '.', '-' or '_', starting with a letter or digit", "name"
        )
    return name


def create_token(
    session: Session, owner: User, name: str, role: Role | None, days: int | None, now: datetime
) -> tuple[ApiToken, str]:
    """Store a new token of *owner*; return its row and the token (shown once: the store cannot make it again)."""
    assert owner.id is not None
    chosen = role or lower_role(owner.role, "admin")
    if not allows(owner.role, chosen):
        raise TokenError(f"{owner.email} is {owner.role}: a token of theirs can be at most {owner.role}", "role")
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise TokenError(f"days: a whole number from 1 to {MAX_DAYS}", "days")
    clean = check_name(name)
    if live_named(session, clean) is not None:
        raise name_taken(clean)
    public_id = secrets.token_hex(6)
    token = f"{TAG}_{public_id}_{new_token()}"
    row = ApiToken(user_id=owner.id, name=clean, public_id=public_id, secret_hash=digest(token), role=chosen,
                   created_at=now, expires_at=now + timedelta(days=days) if days else None)  # fmt: skip
    try:
        # A savepoint: a name taken since the check (a concurrent creation) fails this insert alone,
        # and the caller's transaction stays usable to answer.
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise name_taken(clean) from None
    return row, token


def name_taken(name: str) -> TokenError:
    return TokenError(f"a token named {name!r} exists: revoke it first or choose another name", "taken")


def live_named(session: Session, name: str) -> ApiToken | None:
    return session.exec(select(ApiToken).where(ApiToken.name == name, col(ApiToken.revoked_at).is_(None))).first()


def find_token(session: Session, ref: str) -> ApiToken | None:
    """The token *ref* names: its id (digits), else the live token of that name (a name may be digits too)."""
    ref = ref.strip()
    number = whole_number(ref, 9)
    found = session.get(ApiToken, number) if number is not None else None
    return found or (live_named(session, " ".join(ref.split())) if len(ref) <= 60 else None)


def list_tokens(session: Session) -> list[Listed]:
    """Every token, live ones first, newest first, with its owner's address."""
    rows = session.exec(select(ApiToken, User).join(User, col(User.id) == ApiToken.user_id, isouter=True)
                        .order_by(col(ApiToken.revoked_at).is_not(None), col(ApiToken.id).desc())).all()  # fmt: skip
    return [Listed(token, user.email if user is not None else "") for token, user in rows]


def revoke_token(session: Session, token: ApiToken, now: datetime) -> bool:
    """Revoke *token*; False when it was revoked already."""
    done = session.exec(
        update(ApiToken).where(col(ApiToken.id) == token.id, col(ApiToken.revoked_at).is_(None)).values(revoked_at=now)
    )
    session.refresh(token)
    return done.rowcount == 1


def revoke_tokens_of(session: Session, user: User, now: datetime) -> None:
    """Revoke every token of *user* (removed): a token dies with its owner."""
    session.exec(
        update(ApiToken).where(col(ApiToken.user_id) == user.id, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )  # fmt: skip


def limit_tokens_of(session: Session, user: User, role: Role) -> None:
    """Lower every token of *user* above *role* to it: a token never has more than its owner."""
    above = [r for r in ROLES if not allows(role, r)]
    session.exec(
        update(ApiToken).where(col(ApiToken.user_id) == user.id, col(ApiToken.role).in_(above)).values(role=role)
    )


def token_event(kind: str, token: ApiToken, owner: str, actor: str, now: datetime) -> Event:
    """An event of a token (created, revoked): its name, public id, role and owner; never the token."""
    detail = {"email": owner, "name": token.name, "token": token.public_id, "role": token.role}
    return Event(at=now, kind=kind, actor=actor, detail=detail)


def owner_of(session: Session, token: ApiToken) -> str:
    user = session.get(User, token.user_id)
    return user.email if user is not None else ""


def shape_of(given: str) -> str | None:
    """The public id of a token of the right shape, else None."""
    found = SHAPE.fullmatch(given) if len(given) <= MAX_TOKEN and given.isascii() else None
    return found.group(1) if found else None


def check_token(session: Session, given: str, now: datetime) -> Caller | Refusal:
    """Who *given* speaks for, or why it is refused; notes its use at most once a minute."""
    public_id = shape_of(given)
    if public_id is None:
        return "malformed"
    row = session.exec(select(ApiToken).where(ApiToken.public_id == public_id)).first()
    if row is None or not hmac.compare_digest(row.secret_hash, digest(given)):
        return "unknown"
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and now >= row.expires_at:
        return "expired"
    owner = session.get(User, row.user_id)
    if owner is None:
        return "owner-gone"
    touch(session, row, now)
    assert row.id is not None
    return Caller(row.id, row.name, owner.email, lower_role(row.role, owner.role))


def touch(session: Session, row: ApiToken, now: datetime) -> None:
    # Conditional: concurrent calls of one token write it once, not once each.
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        stale = col(ApiToken.last_used_at).is_(None) | (col(ApiToken.last_used_at) <= now - TOUCH_EVERY)
        session.exec(update(ApiToken).where(col(ApiToken.id) == row.id, stale).values(last_used_at=now))
