"""Who a console request comes from, and whether they may: cookies, CSRF tokens, one role rule per route.

Every console route depends on one `RoleRule` naming the least role it needs (None: anyone,
for the sign-in pages); tests/test_console_roles.py fails for a console route without one.
Every console answer is `no-store` with a policy that runs no script (`ConsoleHeaders`).
See docs/console.md.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracker.accounts.hashing import MAX_TOKEN, new_token, sign, signature, unsign
from tracker.accounts.roles import Role, allows
from tracker.accounts.sessions import Lifetimes, SignedIn, find_session
from tracker.clock import Clock
from tracker.config import Settings
from tracker.i18n.languages import N_
from tracker.store.audit import account_event
from tracker.store.engine import transaction
from tracker.web.forms import Asked, message
from tracker.web.ratelimit import SlidingWindow
from tracker.web.signups import Signups

PREFIX = "/console"
SIGN_IN = f"{PREFIX}/sign-in"
CSRF_FIELD = "csrf"
# No script at all; the pages' one <style> is inline; forms post only here; nothing may frame them.
POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {"cache-control": "no-store", "referrer-policy": "no-referrer", "content-security-policy": POLICY}


@dataclass(frozen=True)
class Console:
    """What the console's routes share: the store, the key, the clock, the limits."""

    engine: Engine
    secret: bytes
    clock: Clock
    base_url: str
    lifetimes: Lifetimes
    link_valid: timedelta
    per_address: SlidingWindow
    per_client: SlidingWindow
    late_days: int
    signups: Signups
    settings: Settings | None = None  # what the outbox and subscriber pages render and check with
    # Refused sign-in links per client: each is a write and an event, so a client guessing links
    # is stopped (429) before either, as one asking for links is.
    link_refusals: SlidingWindow = field(default_factory=lambda: SlidingWindow(10, 900))

    @property
    def zone(self) -> str:
        """TRACKER_TIMEZONE: the clock of a completion's time typed in a form."""
        return self.settings.timezone if self.settings is not None else "Europe/Zurich"

    @property
    def secure(self) -> bool:
        return self.base_url.lower().startswith("https://")

    def cookie_name(self, name: str) -> str:
        # __Host-: a sibling subdomain cannot set it, so nobody can plant a browser id or session of theirs.
        return f"__Host-tracker-{name}" if self.secure else f"tracker-{name}"

    def csrf_token(self, browser: str) -> str:
        return signature(self.secret, "csrf", browser)

    def csrf_ok(self, browser: str | None, sent: object) -> bool:
        # compare_digest refuses text that is not ASCII (a TypeError, a 500): no token of ours has any.
        if not browser or not isinstance(sent, str) or not sent.isascii() or len(sent) > MAX_TOKEN:
            return False
        return hmac.compare_digest(sent, self.csrf_token(browser))

    def session_cookie(self, raw: str) -> str:
        return sign(self.secret, "session", raw)

    def session_id(self, request: Request) -> str | None:
        return unsign(self.secret, "session", request.cookies.get(self.cookie_name("session")))

    def set_session(self, response: Response, raw: str) -> None:
        response.set_cookie(self.cookie_name("session"), self.session_cookie(raw), path="/", httponly=True,
                            samesite="lax", secure=self.secure)  # fmt: skip

    def end_session(self, response: Response) -> None:
        response.delete_cookie(self.cookie_name("session"), path="/", httponly=True, samesite="lax",
                               secure=self.secure)  # fmt: skip


@dataclass(frozen=True)
class Visitor:
    """A console request: its browser's id (the cookie), who is signed in, the page it asked for."""

    browser: str
    signed_in: SignedIn | None
    session_id: str | None
    asked: Asked


class ConsoleRefusal(Exception):  # noqa: N818  # an answer, raised from a dependency
    """An answer given instead of the route's: the sign-in page, or 403."""

    def __init__(self, response: Response) -> None:
        self.response = response


class RoleRule:
    """The dependency of a console route: who may use it. *minimum* None: anyone (the sign-in pages)."""

    def __init__(self, console: Console, minimum: Role | None) -> None:
        self.console, self.minimum = console, minimum

    async def __call__(self, request: Request) -> Visitor:
        visitor = await run_in_threadpool(self.visit, request)
        if self.minimum is None:
            return visitor
        if visitor.signed_in is None:
            raise ConsoleRefusal(RedirectResponse(sign_in_url(request), 303))
        if not allows(visitor.signed_in.user.role, self.minimum):
            await run_in_threadpool(self.record_refusal, visitor.signed_in, request, self.minimum)
            chosen = visitor.asked.language()
            text = chosen.language.gettext(NOT_ALLOWED)
            raise ConsoleRefusal(message(chosen, visitor.asked, N_("Not allowed"), text, 403))
        return visitor

    def record_refusal(self, signed_in: SignedIn, request: Request, minimum: Role) -> None:
        """An action or page refused for the role: in the audit log, with what was asked and what it needs."""
        asked = f"{request.method} {request.url.path}"[:PATH_KEPT]
        user, console = signed_in.user, self.console
        with transaction(console.engine, write=True) as session:
            session.add(
                account_event(
                    "console_refused", user, console.clock(), role=user.role, reason=f"{asked} needs {minimum}"
                )
            )

    def visit(self, request: Request) -> Visitor:
        console, raw = self.console, self.console.session_id(request)
        signed_in = None
        if raw is not None:
            with transaction(console.engine, write=True) as session:
                signed_in = find_session(session, raw, now=console.clock(), lifetimes=console.lifetimes)
        return Visitor(browser_of(request), signed_in, raw, Asked.of(request))


PATH_KEPT = 160  # characters of a refused request's method and path kept in its event
NOT_ALLOWED = N_("Your role does not allow this page. An administrator can change it with `tracker users add`.")


def sign_in_url(request: Request) -> str:
    """The sign-in page, with the page asked for to come back to."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{SIGN_IN}?next={quote(here, safe='')}"


def local_path(text: object) -> str:
    """*text* when it is a console path of this site (no scheme, no host, no //), else the dashboard."""
    if not isinstance(text, str) or len(text) > 500 or not text.startswith(f"{PREFIX}/") or "\\" in text:
        return f"{PREFIX}/"
    parts = urlsplit(text)
    if parts.scheme or parts.netloc or text.startswith("//") or any(ord(c) < 0x21 for c in text):
        return f"{PREFIX}/"
    return text


def browser_of(request: Request) -> str:
    """The browser's random id: from its cookie, or the one ConsoleHeaders has just given it."""
    return str(request.scope.get("state", {}).get("browser", ""))


class ConsoleHeaders:
    """ASGI middleware for /console: `no-store`, the policy, and a browser id cookie for a browser without one."""

    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app, self.console = app, console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (scope["path"] == PREFIX or scope["path"].startswith(f"{PREFIX}/")):
            await self.app(scope, receive, send)
            return
        name = self.console.cookie_name("browser")
        found = cookie_value(scope, name)
        browser = found if found and len(found) <= MAX_TOKEN and found.isascii() else new_token()
        scope.setdefault("state", {})["browser"] = browser

        async def send_with_headers(event: Message) -> None:
            if event["type"] == "http.response.start":
                headers = MutableHeaders(scope=event)
                for header, value in HEADERS.items():
                    headers[header] = value
                if browser != found:
                    secure = "; Secure" if self.console.secure else ""
                    headers.append("set-cookie", f"{name}={browser}; Path=/; HttpOnly; SameSite=Lax{secure}")
            await send(event)

        await self.app(scope, receive, send_with_headers)


def cookie_value(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"cookie":
            return cookie_parser(value.decode("latin-1")).get(name)
    return None
