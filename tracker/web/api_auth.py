"""Who calls a write route of /api: a personal token (secretary or admin), or, for one more release, the old
shared TRACKER_ADMIN_TOKEN (with a deprecation warning). Refused tokens are counted per client and recorded.

See docs/console.md, "API tokens".
"""

from __future__ import annotations

import hmac
import logging
import math
from dataclasses import dataclass
from datetime import datetime

from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from tracker.accounts.api_tokens import Caller, Refusal, check_token, shape_of
from tracker.accounts.roles import allows
from tracker.clock import Clock
from tracker.store.engine import transaction
from tracker.store.models import Event
from tracker.web.ratelimit import SlidingWindow

log = logging.getLogger("tracker.web.api_auth")
CREATE = "tracker users token add EMAIL --name NAME --role secretary"
DEPRECATED = (
    "TRACKER_ADMIN_TOKEN is deprecated and stops working in the next release: give each person or script a "
    f"personal token with `{CREATE}`, then unset TRACKER_ADMIN_TOKEN"
)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tracker"'}
WHY: dict[Refusal, str] = {
    "malformed": "this is not a token of this site: a personal token starts with trk_",
    "unknown": "this token is not known here: check that it was copied whole",
    "revoked": "this token was revoked",
    "expired": "this token has expired",
    "owner-gone": "the user this token belonged to was removed",
}


@dataclass(frozen=True)
class Admitted:
    """A request let through: who it acts as (the audit log's actor), and whether it used the old shared token."""

    actor: str
    deprecated: bool = False


@dataclass(frozen=True)
class ApiGate:
    engine: Engine
    clock: Clock
    legacy: str  # TRACKER_ADMIN_TOKEN, '' when unset
    failures: SlidingWindow  # refused tokens per client

    def admit(self, authorization: str | None, client: str) -> Admitted | JSONResponse:
        """Let the request through, or the answer that refuses it (401, 403, 429)."""
        wait = self.failures.waiting(client)
        if wait > 0:  # before the token is even looked at: guessing costs the guesser time
            return slow_down(wait)
        given = bearer_of(authorization)
        if given is None:
            return JSONResponse({"detail": f"a bearer token is needed: create a personal one with `{CREATE}`"}, 401,
                                CHALLENGE)  # fmt: skip
        if self.legacy and hmac.compare_digest(given.encode(), self.legacy.encode()):
            log.warning(DEPRECATED)
            return Admitted("api", deprecated=True)
        outcome = self.check(given, client)
        if isinstance(outcome, str):
            wait = self.failures.hit(client)
            if wait > 0:
                return slow_down(wait)
            detail = f"{WHY[outcome]}; create a personal token with `{CREATE}`"
            return JSONResponse(
                {"detail": detail}, 401, {"WWW-Authenticate": 'Bearer realm="tracker", error="invalid_token"'}
            )
        if not allows(outcome.role, "secretary"):
            detail = (f"the token {outcome.name!r} has the role {outcome.role}: writes need secretary or admin"
                      f" (an admin can create such a token with `{CREATE}`)")  # fmt: skip
            return JSONResponse({"detail": detail}, 403)
        return Admitted(outcome.actor)

    def check(self, given: str, client: str) -> Caller | Refusal:
        """The token's caller, or why not; a refusal is recorded as an event (the client, never the token)."""
        now = self.clock()
        with transaction(self.engine, write=True) as session:
            outcome = check_token(session, given, now)
            if isinstance(outcome, str):
                session.add(refused_event(outcome, client, shape_of(given), now))
        return outcome


def refused_event(reason: Refusal, client: str, public_id: str | None, now: datetime) -> Event:
    """A refused token: why, from which client, and the token's public id when it had one (not secret)."""
    detail: dict[str, object] = {"reason": reason, "client": client[:60]}
    if public_id is not None:
        detail["token"] = public_id
    return Event(at=now, kind="api_token_refused", actor="api", detail=detail)


def bearer_of(authorization: str | None) -> str | None:
    scheme, _, given = (authorization or "").partition(" ")
    token = given.strip()
    return token if scheme.lower() == "bearer" and token and len(token) <= 500 else None


def slow_down(wait: float) -> JSONResponse:
    seconds = max(1, math.ceil(wait))
    detail = f"too many refused tokens from this address: try again in {seconds} seconds"
    return JSONResponse({"detail": detail}, 429, {"Retry-After": str(seconds)})
