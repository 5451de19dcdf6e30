"""The secretariat's console: sign in by an emailed link, sign out, the dashboard (docs/console.md).

Server-rendered like the public pages, usable without JavaScript. Each route depends on one
RoleRule (console_access.py); every form carries a CSRF token checked on its POST.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, and their role rules
# (Annotated[Visitor, Depends(rule)]) are local to console_routes, where a string could not be resolved.
import math
from datetime import timedelta
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from tracker.accounts.sessions import Lifetimes, close_session, open_session
from tracker.accounts.signin import Redeemed, link_owner, make_link, redeem
from tracker.accounts.users import UserError, find_user, normalise_email, revoke_all
from tracker.clock import Clock
from tracker.config import Settings, get_settings
from tracker.delivery.signins import queue_sign_in
from tracker.i18n.languages import N_
from tracker.store.audit import account_event, refusal_event, request_event
from tracker.store.engine import transaction
from tracker.store.models import User
from tracker.subscribers.personal import stranger
from tracker.web.console_access import (
    CSRF_FIELD,
    PREFIX,
    SIGN_IN,
    Console,
    ConsoleHeaders,
    ConsoleRefusal,
    RoleRule,
    Visitor,
    local_path,
)
from tracker.web.console_audit import audit_routes
from tracker.web.console_files import add_file_routes
from tracker.web.console_oidc import SingleSignOn, add_oidc_routes, provider_name
from tracker.web.console_outbox import add_outbox_routes
from tracker.web.console_subscribers import add_subscriber_routes
from tracker.web.console_timelines import timeline_routes
from tracker.web.console_tokens import token_routes
from tracker.web.dashboard import read_dashboard
from tracker.web.forms import answer, form_fields, message
from tracker.web.ratelimit import SlidingWindow, client_key
from tracker.web.signups import Signups

NEXT_COOKIE = "next"
SENT = N_(
    "If this address may sign in, an email with a link is on its way. Open the link in this browser within"
    " {minutes} minutes; it works once."
)
STALE_FORM = N_("This form has expired. Go back, reload the page and send it again.")
SLOW_DOWN = N_("Too many sign-in requests: try again in {minutes} minutes.")
LINK_SPENT = N_("This sign-in link cannot be used: it was used already, it has expired, or a newer one replaced it.")
OTHER_BROWSER = N_("Open the link in the browser where you asked for it, or ask for a new link in this one.")


def make_console(settings: Settings, engine: Engine, secret: bytes, clock: Clock, signups: Signups) -> Console:
    """The console's shared parts, from the settings."""
    window = settings.console_sign_in_window
    return Console(
        engine=engine,
        secret=secret,
        clock=clock,
        base_url=settings.base_url.rstrip("/"),
        lifetimes=Lifetimes(
            timedelta(minutes=settings.console_idle_minutes), timedelta(hours=settings.console_session_hours)
        ),
        link_valid=timedelta(minutes=settings.console_link_minutes),
        per_address=SlidingWindow(settings.console_address_limit, window),
        per_client=SlidingWindow(settings.console_client_limit, window),
        link_refusals=SlidingWindow(settings.console_client_limit, window),
        late_days=settings.late_days,
        signups=signups,
        settings=settings,
    )


def install_console(app: FastAPI, console: Console) -> None:
    """Add the console's routes, and the answers its role rules give instead (sign in, 403)."""
    app.include_router(console_routes(console))
    app.include_router(timeline_routes(console))
    app.include_router(audit_routes(console))
    app.include_router(token_routes(console))
    app.add_middleware(ConsoleHeaders, console=console)

    async def refused(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleRefusal)
        return exc.response

    app.add_exception_handler(ConsoleRefusal, refused)


def console_routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["console"], include_in_schema=False)
    # One rule per route: the least role it needs (None: anyone, for signing in).
    Anyone = Annotated[Visitor, Depends(RoleRule(console, None))]  # noqa: N806
    Viewer = Annotated[Visitor, Depends(RoleRule(console, "viewer"))]  # noqa: N806

    @router.get("/sign-in", response_class=HTMLResponse)
    async def sign_in_form(request: Request, visitor: Anyone) -> Response:
        """The sign-in form: an address, and the page to come back to."""
        return sign_in_page(console, visitor, request.query_params.get("next"))

    @router.post("/sign-in", response_class=HTMLResponse)
    async def sign_in_asked(request: Request, visitor: Anyone) -> Response:
        """Ask for a link: the answer is the same whether the address may sign in or not."""
        fields = form_fields(await request.body())
        client = client_key(request.client.host if request.client else None)
        return await run_in_threadpool(ask_link, console, visitor, fields, client)

    @router.get("/sent", response_class=HTMLResponse)
    async def sent(visitor: Anyone) -> Response:
        """Check your mail."""
        chosen = visitor.asked.language()
        text = chosen.language.gettext(SENT, minutes=console.link_valid.seconds // 60)
        return message(chosen, visitor.asked, N_("Check your mail"), text, 200)

    @router.get("/sign-in/{token}", response_class=HTMLResponse)
    async def link_landing(token: str, visitor: Anyone) -> Response:
        """The page behind the emailed link: opening it (as mail scanners do) spends nothing; its button signs in."""
        chosen = visitor.asked.language()
        return answer("console/landing.html.j2", chosen, visitor.asked, title=chosen.language.gettext("Sign in"),
                      csrf=console.csrf_token(visitor.browser), action=f"{SIGN_IN}/{token}")  # fmt: skip

    @router.post("/sign-in/{token}", response_class=HTMLResponse)
    async def link_used(token: str, request: Request, visitor: Anyone) -> Response:
        """Sign in with the link: once, in the browser that asked for it, before it expires."""
        fields = form_fields(await request.body())
        back = request.cookies.get(console.cookie_name(NEXT_COOKIE))
        client = client_key(request.client.host if request.client else None)
        return await run_in_threadpool(use_link, console, visitor, token, fields, back, client)

    @router.post("/sign-out", response_class=HTMLResponse)
    async def sign_out(request: Request, visitor: Viewer) -> Response:
        """End this session; with `everywhere`, every session of this user."""
        fields = form_fields(await request.body())
        return await run_in_threadpool(end_sessions, console, visitor, fields)

    @router.get("/", response_class=HTMLResponse)
    async def dashboard(visitor: Viewer) -> Response:
        """Late steps, due this week, what goes out in the next 7 days, failures, suspended addresses."""
        return await run_in_threadpool(show_dashboard, console, visitor)

    settings = console.settings or get_settings()
    add_oidc_routes(router, console, SingleSignOn.configured(console.settings))
    add_outbox_routes(router, console, settings)
    add_subscriber_routes(router, console, settings)
    add_file_routes(router, console, settings)
    return router


def sign_in_page(
    console: Console, visitor: Visitor, back: str | None, *, error: str = "", status: int = 200
) -> Response:
    chosen = visitor.asked.language()
    return answer("console/sign_in.html.j2", chosen, visitor.asked, status, title=chosen.language.gettext("Sign in"),
                  csrf=console.csrf_token(visitor.browser), next=local_path(back), error=error,
                  signed_in=visitor.signed_in, sso=provider_name(console.settings))  # fmt: skip


def ask_link(console: Console, visitor: Visitor, fields: dict[str, object], client: str) -> Response:
    """Check the form, count the request, answer; the link is made and queued after the answer."""
    chosen = visitor.asked.language()
    if not console.csrf_ok(visitor.browser, fields.get(CSRF_FIELD)):
        return message(chosen, visitor.asked, N_("Form expired"), chosen.language.gettext(STALE_FORM), 403)
    back, raw = local_path(fields.get("next")), fields.get("email")
    try:
        _, key = normalise_email(raw if isinstance(raw, str) else "")
    except UserError:
        error = chosen.language.gettext("This is not an email address.")
        return sign_in_page(console, visitor, back, error=error, status=422)
    wait = max(console.per_client.hit(client), console.per_address.hit(key))
    if wait > 0:
        text = chosen.language.gettext(SLOW_DOWN, minutes=math.ceil(wait / 60))
        return message(chosen, visitor.asked, N_("Slow down"), text, 429)
    reservation = console.signups.reserve()  # before answering: a full queue is a 503, not "check your mail"
    if reservation is None:
        text = chosen.language.gettext(N_("Too many requests are waiting: try again in a minute."))
        return message(chosen, visitor.asked, N_("Slow down"), text, 503)
    response = RedirectResponse(f"{PREFIX}/sent", 303)
    # Path=/: over https the name has the __Host- prefix, which browsers refuse with any other path.
    response.set_cookie(console.cookie_name(NEXT_COOKIE), back, path="/", httponly=True, samesite="lax",
                        secure=console.secure, max_age=int(console.link_valid.total_seconds()))  # fmt: skip
    work = partial(send_link, console, key, visitor.browser, client)
    response.background = BackgroundTask(console.signups.start, reservation, work)
    return response


def send_link(console: Console, key: str, browser: str, client: str) -> None:
    """Make a link for the user of *key*, if there is one, and queue its email (after the answer: no timing tells).

    Every request is in the audit log, for an address with an account or not: someone trying
    addresses is seen (the per-client limit bounds how many rows they make).
    """
    now = console.clock()
    with transaction(console.engine, write=True) as session:
        user = find_user(session, key)
        session.add(request_event(now, key if user else stranger(console.secret, key), client, known=user is not None))
        if user is None:
            return
        link = make_link(session, user, browser, console.secret, now=now, valid=console.link_valid)
        queue_sign_in(session, link, now)


def use_link(console: Console, visitor: Visitor, token: str, fields: dict[str, object], back: str | None,
             client: str) -> Response:  # fmt: skip
    chosen = visitor.asked.language()
    if not console.csrf_ok(visitor.browser, fields.get(CSRF_FIELD)):
        return message(chosen, visitor.asked, N_("Form expired"), chosen.language.gettext(STALE_FORM), 403)
    wait = console.link_refusals.waiting(client)
    if wait > 0:  # before the store is written or even read
        text = chosen.language.gettext(SLOW_DOWN, minutes=math.ceil(wait / 60))
        return message(chosen, visitor.asked, N_("Slow down"), text, 429)
    now = console.clock()
    with transaction(console.engine, write=True) as session:
        outcome = redeem(session, token, visitor.browser, now)
        raw = None
        if isinstance(outcome, Redeemed):
            close_session(session, visitor.session_id, now)  # a new sign-in, a new id: the old one is spent
            raw = open_session(session, outcome.user, now=now, lifetimes=console.lifetimes)
            session.add(account_event("console_signed_in", outcome.user, now, role=outcome.user.role, method="link"))
        else:
            console.link_refusals.hit(client)
            session.add(refusal_event(now, link_owner(session, token), f"link {outcome}", method="link"))
    if raw is None:
        text = OTHER_BROWSER if outcome == "other-browser" else LINK_SPENT
        status = 403 if outcome == "other-browser" else 410
        return message(chosen, visitor.asked, N_("Sign-in link not valid"), chosen.language.gettext(text), status)
    response = RedirectResponse(local_path(back), 303)
    console.set_session(response, raw)
    response.delete_cookie(console.cookie_name(NEXT_COOKIE), path="/", secure=console.secure, httponly=True,
                           samesite="lax")  # fmt: skip
    return response


def end_sessions(console: Console, visitor: Visitor, fields: dict[str, object]) -> Response:
    chosen = visitor.asked.language()
    if not console.csrf_ok(visitor.browser, fields.get(CSRF_FIELD)):
        return message(chosen, visitor.asked, N_("Form expired"), chosen.language.gettext(STALE_FORM), 403)
    now = console.clock()
    with transaction(console.engine, write=True) as session:
        user = session.get(User, visitor.signed_in.user.id) if visitor.signed_in is not None else None
        if fields.get("everywhere") and user is not None:
            revoke_all(session, user, now)
        close_session(session, visitor.session_id, now)
        if user is not None:
            session.add(account_event("console_signed_out", user, now, everywhere=bool(fields.get("everywhere"))))
    response = RedirectResponse(SIGN_IN, 303)
    console.end_session(response)
    return response


def show_dashboard(console: Console, visitor: Visitor) -> Response:
    chosen = visitor.asked.language()
    with transaction(console.engine) as session:
        board = read_dashboard(session, now=console.clock(), late_days=console.late_days, language=chosen.language)
    assert visitor.signed_in is not None
    return answer("console/dashboard.html.j2", chosen, visitor.asked, title=chosen.language.gettext("Dashboard"),
                  board=board, user=visitor.signed_in.user, csrf=console.csrf_token(visitor.browser))  # fmt: skip
