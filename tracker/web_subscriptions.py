"""The subscription pages: subscribe (double opt-in), confirm, preferences, unsubscribe (RFC 8058 one-click)."""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from tracker.models import Subscriber
from tracker.ratelimit import SlidingWindow, client_key
from tracker.store import transaction
from tracker.subscribers import (
    Known,
    Raw,
    SubscriberError,
    by_token,
    check_input,
    confirm,
    known_names,
    links_for,
    request_subscription,
    rotate,
    unsubscribe,
    update,
)
from tracker.web_forms import (
    CSRF_COOKIE,
    CSRF_FIELD,
    MAX_BODY,
    FormError,
    check_form_token,
    choosable,
    form_fields,
    form_token,
    form_values,
    json_fields,
    media_type,
    render,
    render_page,
    subscriber_values,
)

Clock = Callable[[], datetime]
GONE = "This link is not valid any more: it may be mistyped, or a newer email replaced it."
ACCEPTED = (
    "If this address can be subscribed, a confirmation email is on its way. Open the link in it to start"
    " receiving reminders; nothing else is sent until then."
)
STALE_FORM = "This form has expired or did not come from this site: reload the page and send it again."
FORM = "application/x-www-form-urlencoded"
# Pages with secret links or form tokens: never cached, and their address never sent on as a Referer.
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True)
class Site:
    """What the subscribe and preferences pages need."""

    engine: Engine
    secret: bytes
    clock: Clock
    zone: str  # default time zone of new subscribers
    base_url: str
    from_address: str


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(render_page(title, body), status_code=status, headers=PRIVATE)


def subscription_routes(engine: Engine, secret: bytes | None, clock: Clock | None = None) -> APIRouter:
    """Routes behind the confirm and unsubscribe links."""
    router = APIRouter(tags=["subscriptions"])
    now = clock or (lambda: datetime.now(UTC))

    def confirm_link(token: str) -> HTMLResponse:
        with transaction(engine, write=True) as session:
            subscriber = by_token(session, secret, "confirm", token) if secret else None
            if subscriber is None:
                return page("Link not valid", f"<p>{GONE}</p>", 404)
            confirm(session, subscriber, now())
            address = escape(subscriber.email)
        return page("Subscription confirmed", f"<p>{address} will receive reminders before each deadline.</p>")

    def unsubscribe_link(token: str, post: bool) -> HTMLResponse:
        with transaction(engine, write=post) as session:
            subscriber = by_token(session, secret, "manage", token) if secret else None
            if subscriber is None:
                return page("Link not valid", f"<p>{GONE}</p>", 404)
            address = escape(subscriber.email)
            if post:
                unsubscribe(session, subscriber, now())
        if post:
            return page("Unsubscribed", f"<p>{address} will receive no more messages.</p>")
        button = '<button type="submit" name="List-Unsubscribe" value="One-Click">Unsubscribe</button>'
        form = f'<p>Stop every message to {address}?</p><form method="post">{button}</form>'

        return page("Unsubscribe", form)

    @router.get("/confirm/{token}", response_class=HTMLResponse)
    async def confirm_page(token: str) -> HTMLResponse:
        """Confirm a subscription (the link in the confirmation email)."""
        return await run_in_threadpool(confirm_link, token)

    @router.get("/unsubscribe/{token}", response_class=HTMLResponse)
    async def unsubscribe_page(token: str) -> HTMLResponse:
        """Show a one-button page; nothing changes until it is pressed (link scanners follow GETs)."""
        return await run_in_threadpool(unsubscribe_link, token, False)

    @router.post("/unsubscribe/{token}", response_class=HTMLResponse)
    async def unsubscribe_now(token: str, request: Request) -> HTMLResponse:
        """Unsubscribe at once: RFC 8058 one-click (body List-Unsubscribe=One-Click) or the page's button."""
        await request.body()
        return await run_in_threadpool(unsubscribe_link, token, True)

    return router


def signup_routes(site: Site, limiter: SlidingWindow) -> APIRouter:
    """GET /subscribe (a plain form) and POST /subscribe (form or JSON): the start of the double opt-in."""
    router = APIRouter(tags=["subscriptions"])

    @router.get("/subscribe", response_class=HTMLResponse)
    async def subscribe_page(request: Request) -> HTMLResponse:
        """A plain subscription form."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        nonce = nonce if 20 <= len(nonce) <= 64 and nonce.isascii() else secrets.token_urlsafe(24)
        values = form_values({"language": "en", "timezone": site.zone, "audiences": ["membership"]})
        response = await run_in_threadpool(subscribe_form, site, nonce, values)
        # The cookie binds the form's token to this browser; SameSite keeps it off cross-site posts.
        response.set_cookie(CSRF_COOKIE, nonce, path=request.url.path, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")  # fmt: skip
        return response

    @router.post(
        "/subscribe",
        status_code=202,
        responses={422: {"description": "A field is wrong; `detail` names it"}, 429: {"description": "Slow down"}},
    )
    async def subscribe(request: Request) -> Response:
        """Ask for a subscription: JSON, or the form's fields with its CSRF token. The answer is the same
        whether or not the address is known; a confirmation email goes to new and pending addresses."""
        as_json = media_type(request.headers.get("content-type")) == "application/json"
        wait = limiter.hit(client_key(request.client.host if request.client else None))
        if wait > 0:
            return refuse(429, f"Too many requests: try again in {math.ceil(wait)} seconds.", as_json,
                          {"Retry-After": str(math.ceil(wait))})  # fmt: skip
        try:
            body = await read_body(request)
            if as_json:
                return await run_in_threadpool(subscribe_with_json, site, body)
            if media_type(request.headers.get("content-type")) != FORM:
                raise FormError(415, f"Send JSON (application/json) or a form ({FORM}).")
            return await run_in_threadpool(subscribe_with_form, site, body, request.cookies.get(CSRF_COOKIE, ""))
        except FormError as exc:
            return refuse(exc.status, str(exc), as_json)

    return router


def preferences_routes(site: Site) -> APIRouter:
    """GET/POST /preferences/{token}: the link in every email to change what one receives."""
    router = APIRouter(tags=["subscriptions"])

    @router.get("/preferences/{token}", response_class=HTMLResponse)
    async def preferences_page(token: str) -> HTMLResponse:
        """Show a subscriber's settings, their feed link and the unsubscribe link."""
        return await run_in_threadpool(show_preferences, site, token)

    @router.post("/preferences/{token}", response_class=HTMLResponse)
    async def preferences_change(token: str, request: Request) -> HTMLResponse:
        """Save the settings form, or rotate the personal feed link (action=rotate-feed)."""
        try:
            if media_type(request.headers.get("content-type")) != FORM:
                raise FormError(415, f"Send the form ({FORM}).")
            fields = form_fields(await read_body(request))
        except FormError as exc:
            return page("Not accepted", f"<p>{escape(str(exc))}</p>", exc.status)
        return await run_in_threadpool(change_preferences, site, token, fields)

    return router


async def read_body(request: Request) -> bytes:
    """The request body, refused past MAX_BODY without reading it all."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise FormError(413, "The request is too large.")
    return bytes(body)


def refuse(status: int, message: str, as_json: bool, headers: Mapping[str, str] | None = None) -> Response:
    if as_json:
        return JSONResponse({"detail": message}, status_code=status, headers=headers)
    response = page("Not accepted", f"<p>{escape(message)}</p>", status)
    response.headers.update(headers or {})
    return response


def invalid(exc: SubscriberError) -> JSONResponse:
    """422 in FastAPI's own shape: which field, what is wrong."""
    where = ["body", exc.field] if exc.field else ["body"]
    return JSONResponse({"detail": [{"loc": where, "msg": str(exc), "type": "value_error"}]}, status_code=422)


def subscribe_with_json(site: Site, body: bytes) -> Response:
    try:
        ask(site, json_fields(body))
    except SubscriberError as exc:
        return invalid(exc)
    return JSONResponse({"status": "check-your-inbox", "detail": ACCEPTED}, status_code=202)


def subscribe_with_form(site: Site, body: bytes, nonce: str) -> Response:
    fields = form_fields(body)
    token = fields.pop(CSRF_FIELD, "")
    if not isinstance(token, str) or not check_form_token(site.secret, nonce, token, site.clock()):
        raise FormError(403, STALE_FORM)
    try:
        ask(site, fields)
    except SubscriberError as exc:
        return subscribe_form(site, nonce, form_values(fields), exc, 422)
    return page("Check your inbox", f"<p>{escape(ACCEPTED)}</p>", 202)


def ask(site: Site, raw: Raw) -> None:
    """Check the request, then start the double opt-in; whether an email was queued is nobody's business."""
    with transaction(site.engine) as session:
        known = known_names(session)
    data = check_input(raw, zone=site.zone, known=known)
    with transaction(site.engine, write=True) as session:
        request_subscription(session, data, site.clock())


def subscribe_form(
    site: Site, nonce: str, values: Mapping[str, object], error: SubscriberError | None = None, status: int = 200
) -> HTMLResponse:
    with transaction(site.engine) as session:
        known = known_names(session)
    html = render("subscribe", title="Subscribe", v=values, known=choosable(known, values), error=problem(error),
                  csrf=form_token(site.secret, nonce, site.clock()))  # fmt: skip
    return HTMLResponse(html, status_code=status, headers=PRIVATE)


def problem(error: SubscriberError | None) -> dict[str, str] | None:
    return None if error is None else {"field": error.field, "message": str(error)}


def show_preferences(site: Site, token: str) -> HTMLResponse:
    with transaction(site.engine) as session:
        subscriber = by_token(session, site.secret, "manage", token)
        if subscriber is None:
            return page("Link not valid", f"<p>{GONE}</p>", 404)
        return preferences_form(site, session, subscriber, token)


def change_preferences(site: Site, token: str, fields: dict[str, object]) -> HTMLResponse:
    with transaction(site.engine, write=True) as session:
        subscriber = by_token(session, site.secret, "manage", token)
        if subscriber is None:
            return page("Link not valid", f"<p>{GONE}</p>", 404)
        csrf = fields.pop(CSRF_FIELD, "")
        if not isinstance(csrf, str) or not check_form_token(site.secret, token, csrf, site.clock()):
            return page("Not accepted", f"<p>{STALE_FORM}</p>", 403)
        if fields.get("action") == "rotate-feed":
            rotate(session, subscriber, ["feed"], site.clock())
            return preferences_form(site, session, subscriber, token, notice="Your new feed link is below; "
                                    "the old one no longer works.")  # fmt: skip
        known = with_chosen(known_names(session), subscriber)
        try:  # the address is not a choice here: changing it would need a new confirmation
            data = check_input({**fields, "email": subscriber.email}, zone=subscriber.timezone, known=known)
        except SubscriberError as exc:
            return preferences_form(site, session, subscriber, token, values=form_values(fields), error=exc)
        changed = update(session, subscriber, data, site.clock())
        notice = "Saved." if changed else "Nothing to save: these were already your settings."
        return preferences_form(site, session, subscriber, token, notice=notice)


def with_chosen(known: Known, subscriber: Subscriber) -> Known:
    """What exists, plus what the subscriber already follows: a removed timeline must not block saving."""
    return Known(known.timelines | set(subscriber.timelines or ()), known.audiences | set(subscriber.audiences or ()))


def preferences_form(
    site: Site,
    session: Session,
    subscriber: Subscriber,
    token: str,
    *,
    values: Mapping[str, object] | None = None,
    notice: str = "",
    error: SubscriberError | None = None,
) -> HTMLResponse:
    links = links_for(subscriber, site.secret, site.base_url, site.from_address)
    shown = values or subscriber_values(subscriber)
    feed = links.feed if subscriber.state == "confirmed" else None  # unconfirmed feeds answer 404
    html = render("preferences", title="Your settings", email=subscriber.email, state=subscriber.state, v=shown,
                  known=choosable(with_chosen(known_names(session), subscriber), shown), notice=notice,
                  error=problem(error), csrf=form_token(site.secret, token, site.clock()), feed=feed,
                  unsubscribe=links.unsubscribe)  # fmt: skip
    return HTMLResponse(html, status_code=422 if error else 200, headers=PRIVATE)
