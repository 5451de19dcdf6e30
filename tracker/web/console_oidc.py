"""Single sign-on for the console: "Sign in with PROVIDER", and the provider's way back (docs/console.md).

The flow's state, nonce and PKCE verifier travel in a short-lived cookie signed with the secret key
and bound to the browser id: no server-side state, so any instance may take the callback. A sign-in
that passes opens the same session as an emailed link (accounts/sessions.py).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (see console.py).
import base64
import hmac
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from tracker.accounts.hashing import signature
from tracker.accounts.oidc import Identity, Refusal, admit, parse_role_map, read_identity
from tracker.accounts.roles import Role
from tracker.accounts.sessions import close_session, open_session
from tracker.accounts.users import UserError, find_user, normalise_email, remove_user
from tracker.config import Settings
from tracker.i18n.languages import N_
from tracker.store.audit import account_event, refusal_event
from tracker.store.engine import transaction
from tracker.store.models import User
from tracker.subscribers.personal import stranger
from tracker.web.console_access import PREFIX, Console, RoleRule, Visitor, local_path
from tracker.web.forms import message
from tracker.web.ratelimit import SlidingWindow, client_key

if TYPE_CHECKING:  # Authlib is loaded only where single sign-on is set up: most sites never need it
    from tracker.web.oidc import Provider

START = f"{PREFIX}/oidc/start"
CALLBACK = f"{PREFIX}/oidc/callback"
FLOW_COOKIE = "oidc"
FLOW_PATH = "/"  # over https the cookie is __Host-tracker-oidc, which browsers accept only with Path=/
FLOW_VALID = timedelta(minutes=10)  # from the button to the way back: time to type a password and a code
MAX_FLOW = 2000  # characters of the flow cookie read
ERROR_CODE = re.compile(r"[a-z_]{1,40}")

SLOW_DOWN = N_("Too many sign-in requests: try again in {minutes} minutes.")
DENIED = N_("{provider} did not sign you in ({error}). Try again, or ask for a sign-in link by email.")
STALE = N_(
    "This sign-in was started in another browser, took longer than 10 minutes, or was used already."
    " Start again from the sign-in page."
)
UNREACHABLE = N_(
    "{provider} cannot be reached, or answered in a way we cannot use. Try again in a few minutes,"
    " or ask for a sign-in link by email."
)
INVALID = N_(
    "The answer from {provider} failed our checks (signature, issuer, audience, nonce or time), so you are"
    " not signed in. Start again; if it happens again, tell an administrator."
)
REFUSED = {
    "no-email": N_(
        "{provider} did not give your email address, so it cannot sign you in here. Ask its administrator"
        " to release the email claim to this console."
    ),
    "unverified": N_(
        "{provider} does not vouch that {email} is your address (it is not verified there), so it cannot"
        " sign you in. Ask for a sign-in link by email, or have the address verified at {provider}."
    ),
    "unknown": N_("{email} has no account in this console. An administrator can add it with `tracker users add`."),
    "no-role": N_(
        "{provider} puts {email} in none of the groups that open this console. Ask an administrator to add you to one."
    ),
}


@dataclass(frozen=True)
class SingleSignOn:
    """The provider, how its claims map to roles, and the limit on its way back."""

    provider: "Provider"
    role_claim: str
    roles: dict[str, Role]
    callbacks: SlidingWindow  # per client, as many as sign-in requests: a way back costs a token request

    @classmethod
    def configured(cls, settings: Settings | None) -> "SingleSignOn | None":
        """Single sign-on as the settings describe it, or None when TRACKER_OIDC_ISSUER is empty."""
        if settings is None or not settings.oidc_issuer:
            return None
        from tracker.web.oidc import Provider

        provider = Provider(issuer=settings.oidc_issuer, client_id=settings.oidc_client_id.strip(),
                            client_secret=settings.oidc_client_secret.strip(),
                            name=provider_name(settings))  # fmt: skip
        limit = SlidingWindow(settings.console_client_limit, settings.console_sign_in_window)
        return cls(provider, settings.oidc_role_claim.strip(), parse_role_map(settings.oidc_roles), limit)


@dataclass(frozen=True)
class Flow:
    """What the way back must find again, from the cookie set when the browser left."""

    state: str
    nonce: str
    verifier: str
    back: str
    started_at: datetime


def add_oidc_routes(router: APIRouter, console: Console, sso: SingleSignOn | None) -> None:
    """GET /console/oidc/start and GET /console/oidc/callback (404 when single sign-on is off)."""
    Anyone = Annotated[Visitor, Depends(RoleRule(console, None))]  # noqa: N806

    @router.get("/oidc/start", response_class=HTMLResponse)
    async def oidc_start(request: Request, visitor: Anyone) -> Response:
        """Send the browser to the provider, with a new state, nonce and PKCE challenge.

        A link, not a form: the policy's `form-action 'self'` would stop a form's redirect to the provider,
        and nothing is gained by forging it (the way back only works in the browser that left).
        """
        return await start(console, sso, visitor, request.query_params.get("next"), client_of(request))

    @router.get("/oidc/callback", response_class=HTMLResponse)
    async def oidc_callback(request: Request, visitor: Anyone) -> Response:
        """The provider's way back: check the flow, exchange the code, check the ID token, sign in."""
        params = {key: request.query_params.get(key, "") for key in ("code", "state", "error")}
        flow = request.cookies.get(console.cookie_name(FLOW_COOKIE))
        response = await callback(console, sso, visitor, params, flow, client_of(request))
        response.delete_cookie(console.cookie_name(FLOW_COOKIE), path=FLOW_PATH, httponly=True,
                               samesite="lax", secure=console.secure)  # fmt: skip
        return response


def provider_name(settings: Settings | None) -> str:
    """The name on the "Sign in with …" button: TRACKER_OIDC_NAME, else the issuer's host; '' when off."""
    if settings is None or not settings.oidc_issuer:
        return ""
    return settings.oidc_name.strip()[:60] or (urlsplit(settings.oidc_issuer).hostname or "")


def client_of(request: Request) -> str:
    return client_key(request.client.host if request.client else None)


async def start(
    console: Console, sso: SingleSignOn | None, visitor: Visitor, back: str | None, client: str
) -> Response:
    chosen = visitor.asked.language()
    if sso is None:
        return message(chosen, visitor.asked, N_("Not found"), chosen.language.gettext(NO_SSO), 404)
    from tracker.web.oidc import ProviderError

    wait = console.per_client.hit(client)  # the same count as asking for a link
    if wait > 0:
        text = chosen.language.gettext(SLOW_DOWN, minutes=math.ceil(wait / 60))
        return message(chosen, visitor.asked, N_("Slow down"), text, 429)
    try:
        started = await sso.provider.start(console.base_url + CALLBACK)
    except ProviderError:
        text = chosen.language.gettext(UNREACHABLE, provider=sso.provider.name)
        return message(chosen, visitor.asked, N_("Single sign-on failed"), text, 502)
    flow = Flow(started.state, started.nonce, started.verifier, local_path(back), console.clock())
    response = RedirectResponse(started.url, 303)
    response.set_cookie(console.cookie_name(FLOW_COOKIE), seal(console, visitor.browser, flow),
                        path=FLOW_PATH, max_age=int(FLOW_VALID.total_seconds()), httponly=True,
                        samesite="lax", secure=console.secure)  # fmt: skip
    return response


NO_SSO = N_("Single sign-on is not set up here: ask for a sign-in link by email.")


async def callback(
    console: Console, sso: SingleSignOn | None, visitor: Visitor, params: dict[str, str], sealed: str | None,
    client: str,
) -> Response:  # fmt: skip
    chosen = visitor.asked.language()
    if sso is None:
        return message(chosen, visitor.asked, N_("Not found"), chosen.language.gettext(NO_SSO), 404)
    from tracker.web.oidc import ProviderError

    gettext, provider = chosen.language.gettext, sso.provider.name
    wait = sso.callbacks.hit(client)
    if wait > 0:
        return message(chosen, visitor.asked, N_("Slow down"), gettext(SLOW_DOWN, minutes=math.ceil(wait / 60)), 429)
    flow = unseal(console, visitor.browser, sealed, now=console.clock())
    if params["error"]:
        code = params["error"] if ERROR_CODE.fullmatch(params["error"]) else "error"
        return message(chosen, visitor.asked, N_("Single sign-on failed"),
                       gettext(DENIED, provider=provider, error=code), 403)  # fmt: skip
    if flow is None or not params["state"] or not hmac.compare_digest(params["state"].encode(), flow.state.encode()):
        return message(chosen, visitor.asked, N_("Single sign-on failed"), gettext(STALE), 400)
    try:
        claims = await sso.provider.finish(params["code"][:2000], redirect_uri=console.base_url + CALLBACK,
                                           verifier=flow.verifier, nonce=flow.nonce)  # fmt: skip
    except ProviderError as error:
        if error.kind == "unreachable":
            return message(chosen, visitor.asked, N_("Single sign-on failed"), gettext(UNREACHABLE, provider=provider),
                           502)  # fmt: skip
        await run_in_threadpool(record_refusal, console, "", f"invalid token: {error}")
        return message(chosen, visitor.asked, N_("Single sign-on failed"), gettext(INVALID, provider=provider), 403)
    identity = read_identity(claims, role_claim=sso.role_claim, roles=sso.roles)
    return await run_in_threadpool(sign_in, console, visitor, identity, flow, claims, provider)


def sign_in(
    console: Console, visitor: Visitor, identity: Identity | Refusal, flow: Flow, claims: dict[str, object],
    provider: str,
) -> Response:  # fmt: skip
    """Open a session for the user *identity* names (adding them, or changing their role, as mapped), or refuse."""
    chosen, now = visitor.asked.language(), console.clock()
    email = identity.email if isinstance(identity, Identity) else str(claims.get("email") or "")[:320]
    with transaction(console.engine, write=True) as session:
        outcome = (
            admit(session, identity, now=now, language=chosen.code) if isinstance(identity, Identity) else identity
        )
        if isinstance(outcome, str):
            user = account_of(session, email)
            session.add(refusal_event(now, email if user else named(console, email), outcome, method="oidc"))
            if user is not None and outcome == "no-role":  # the mapping decides: out of every group, out of the console
                session.add(account_event("console_user_removed", user, now, actor="oidc", role=user.role,
                                          reason="in no mapped group at the provider"))  # fmt: skip
                remove_user(session, user, now)  # its sessions, links and API tokens end with it
            raw = None
        else:
            user, change = outcome
            if change != "unchanged":
                session.add(account_event(f"console_user_{change}", user, now, actor="oidc", role=user.role))
            close_session(session, visitor.session_id, now)  # a new sign-in, a new id
            raw = open_session(session, user, now=now, lifetimes=console.lifetimes)
            session.add(account_event("console_signed_in", user, now, role=user.role, method="oidc"))
    if raw is None:
        assert isinstance(outcome, str)
        text = chosen.language.gettext(REFUSED[outcome], provider=provider, email=email)
        return message(chosen, visitor.asked, N_("Sign-in refused"), text, 403)
    response = RedirectResponse(local_path(flow.back), 303)
    console.set_session(response, raw)
    return response


def account_of(session: Session, email: str) -> User | None:
    """The console user of a refused address, if it is one's ('' or not an address: none)."""
    try:
        return find_user(session, email) if email else None
    except UserError:
        return None


def named(console: Console, email: str) -> str:
    """The refused address as the log keeps it: a one-way reference (no account has it)."""
    try:
        return stranger(console.secret, normalise_email(email)[1]) if email else ""
    except UserError:
        return ""


def record_refusal(console: Console, email: str, reason: str) -> None:
    with transaction(console.engine, write=True) as session:
        session.add(refusal_event(console.clock(), email, reason, method="oidc"))


def seal(console: Console, browser: str, flow: Flow) -> str:
    """The flow as a cookie value, signed for this browser alone."""
    data = {"s": flow.state, "n": flow.nonce, "v": flow.verifier, "b": flow.back,
            "t": int(flow.started_at.timestamp())}  # fmt: skip
    value = base64.urlsafe_b64encode(json.dumps(data).encode()).decode("ascii").rstrip("=")
    return f"{value}.{signature(console.secret, f'oidc:{browser}', value)}"


def unseal(console: Console, browser: str, sealed: str | None, *, now: datetime) -> Flow | None:
    """The flow of a cookie this browser was given less than FLOW_VALID ago, else None."""
    if not sealed or len(sealed) > MAX_FLOW or not sealed.isascii() or not browser:
        return None
    value, _, mac = sealed.rpartition(".")
    if not value or not hmac.compare_digest(mac, signature(console.secret, f"oidc:{browser}", value)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        started_at = datetime.fromtimestamp(int(data["t"]), tz=now.tzinfo)
        flow = Flow(str(data["s"]), str(data["n"]), str(data["v"]), str(data["b"]), started_at)
    except (ValueError, KeyError, TypeError, OverflowError):
        return None
    return flow if timedelta(0) <= now - started_at < FLOW_VALID + timedelta(seconds=1) else None
