"""Single sign-on: which console user, with which role, an OpenID provider's verified claims name.

Pure apart from `admit`. The web side (web/console_oidc.py) talks to the provider through Authlib,
which checks the ID token's signature, issuer, audience, nonce and times; this decides what the
claims of a token that passed allow (docs/console.md, "Single sign-on").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from sqlmodel import Session

from tracker.accounts.roles import ROLES, Role, parse_role
from tracker.accounts.users import Outcome, UserError, find_user, normalise_email, save_user
from tracker.store.models import User
from tracker.text import CONTROLS

Refusal = Literal["no-email", "unverified", "no-role", "unknown"]
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")  # plain http is allowed to these only: a provider under test
MAX_GROUPS = 200  # values of the role claim read: a provider may list many groups, we need few


@dataclass(frozen=True)
class Identity:
    """Who the provider vouches for: a verified address, and the role its groups give (None: no mapping)."""

    email: str
    role: Role | None


def check_issuer(value: str) -> str:
    """*value* if it can be an issuer (https, or http to this machine), else raise ValueError saying why."""
    if not value:
        return value
    parts = urlsplit(value)
    local = parts.scheme == "http" and parts.hostname in LOCAL_HOSTS
    if CONTROLS.search(value) or len(value) > 500 or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("must be the provider's issuer URL, e.g. https://login.example.org/realms/un")
    if parts.scheme != "https" and not local:
        raise ValueError("must start with https:// (plain http only to localhost, for tests)")
    return value


def parse_role_map(text: str) -> dict[str, Role]:
    """'group:role,…' as a mapping from the claim's values to roles; raise ValueError naming a bad entry."""
    found: dict[str, Role] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        group, colon, role = entry.rpartition(":")
        if not (colon and group.strip()):
            raise ValueError(f"{entry[:60]!r}: write GROUP:ROLE, e.g. tracker-admins:admin")
        found[group.strip()] = parse_role(role)
    return found


def claimed_groups(value: object) -> list[str]:
    """The values of a role claim: a list of names, or one string of names separated by spaces or commas."""
    if isinstance(value, str):
        return value.replace(",", " ").split()[:MAX_GROUPS]
    if isinstance(value, list):
        return [item for item in value[:MAX_GROUPS] if isinstance(item, str)]
    return []


def mapped_role(claims: Mapping[str, object], role_claim: str, roles: Mapping[str, Role]) -> Role | None:
    """The highest role the claim's values map to, or None."""
    given = {roles[group] for group in claimed_groups(claims.get(role_claim)) if group in roles}
    return max(given, key=ROLES.index) if given else None


def read_identity(claims: Mapping[str, object], *, role_claim: str, roles: Mapping[str, Role]) -> Identity | Refusal:
    """The identity the claims of a checked ID token give, or why they give none.

    With a role claim configured the mapping decides: a person the provider no longer puts in a
    mapped group is refused, whatever role a past sign-in gave them.
    """
    raw = claims.get("email")
    try:
        address, _ = normalise_email(raw if isinstance(raw, str) else "")
    except UserError:
        return "no-email"
    # Some providers send the boolean as a string.
    if claims.get("email_verified") not in (True, "true"):
        return "unverified"
    if not role_claim:
        return Identity(address, None)
    role = mapped_role(claims, role_claim, roles)
    return Identity(address, role) if role is not None else "no-role"


def admit(session: Session, identity: Identity, *, now: datetime, language: str) -> tuple[User, Outcome] | Refusal:
    """The user *identity* signs in as, added or given the mapped role; or "unknown" without a user or a role."""
    user = find_user(session, identity.email)
    if identity.role is None:
        return (user, "unchanged") if user is not None else "unknown"
    return save_user(session, identity.email, identity.role, user.language if user else language, now)
