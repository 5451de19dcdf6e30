"""Who may do what in the console: three roles, each allowed what the ones below it are."""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["viewer", "secretary", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)  # lowest first: viewer < secretary < admin


def parse_role(text: str) -> Role:
    """Return the role *text* names, or raise ValueError saying which ones exist."""
    for role in ROLES:
        if text.strip().lower() == role:
            return role
    raise ValueError(f"{text[:40]!r} is not a role: use one of {', '.join(ROLES)}")


def allows(role: str, minimum: Role) -> bool:
    """True when *role* is *minimum* or above it; an unknown role (a row edited by hand) allows nothing."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(minimum)
