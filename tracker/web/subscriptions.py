"""The subscription pages: subscribe (double opt-in), confirm, preferences, unsubscribe (RFC 8058 one-click).

Each page speaks its reader's language: /subscribe the browser's (or `?lang=`), the pages behind a
subscriber's secret link the subscriber's own unless the URL names another; forms post back to
an address that keeps `?lang=`.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from tracker.bounces.recording import BY as BOUNCES
from tracker.bounces.recording import last_bounce
from tracker.clock import Clock, utc_now
from tracker.delivery.outbox import queue_confirm
from tracker.i18n.languages import N_
from tracker.i18n.wording import FEED_NAME, day_text
from tracker.store.engine import transaction
from tracker.store.models import BounceReport, Event, Subscriber, Timeline
from tracker.subscribers.links import LinkMaker
from tracker.subscribers.registry import (
    Known,
    Raw,
    SubscriberError,
    SubscriberInput,
    by_token,
    check_input,
    confirm,
    known_names,
    request_subscription,
    rotate,
    unsubscribe,
    update,
)
from tracker.subscribers.roster import set_suspended
from tracker.web.forms import (
    CSRF_COOKIE,
    CSRF_FIELD,
    NO_FIELDS,
    ONE_CLICK,
    PREFERENCES_BODY,
    SUBSCRIBE_BODY,
    Asked,
    FormError,
    TooManyRequestsError,
    answer,
    check_form_token,
    form_fields,
    form_token,
    form_values,
    gone,
    json_fields,
    list_choices,
    media_type,
    message,
    problem,
    subscriber_values,
)
from tracker.web.limits import validation_problem
from tracker.web.pages import feed_links
from tracker.web.ratelimit import SlidingWindow, client_key
from tracker.web.signups import Signups

ACCEPTED = N_(
    "If this address can be subscribed, a confirmation email is on its way. Open the link in it to start"
    " receiving reminders; nothing else is sent until then."
)
STALE_FORM = N_("This form has expired or did not come from this site: reload the page and send it again.")
FORM = "application/x-www-form-urlencoded"
SELF = "subscriber"  # the audit log's actor of what a member does through the pages and their own links
# Suspensions the member may lift themselves: the automatic ones, after bounces (BOUNCES) or after
# refused messages ("mailer"), are judgments about the address, which its owner knows better (a
# full mailbox emptied). A suspension from the console is a person's decision: only the console lifts it.
SELF_RESUMED = frozenset({BOUNCES, "mailer"})


@dataclass(frozen=True)
class Site:
    """What the subscribe and preferences pages need."""

    engine: Engine
    secret: bytes
    clock: Clock
    zone: str  # default time zone of new subscribers
    base_url: str
    from_address: str
    signups: Signups  # where the state-dependent part of a subscription request is done, after the answer


def subscription_routes(engine: Engine, secret: bytes | None, clock: Clock | None, base_url: str) -> APIRouter:
    """Routes behind the confirm and unsubscribe links; *base_url* (never the Host header) makes their links."""
    router = APIRouter(tags=["subscriptions"])
    now = clock or utc_now

    def confirm_link(token: str, post: bool, asked: Asked, base: str) -> HTMLResponse:
        with transaction(engine, write=post) as session:
            subscriber = by_token(session, secret, "confirm", token) if secret else None
            if secret is None or subscriber is None:
                return gone(asked)
            if not post:
                return confirm_question(subscriber, asked)
            confirm(session, subscriber, now(), SELF)
            return confirmed_page(subscriber, secret, base, asked)

    def unsubscribe_link(token: str, post: bool, asked: Asked, base: str) -> HTMLResponse:
        with transaction(engine, write=post) as session:
            subscriber = by_token(session, secret, "manage", token) if secret else None
            if secret is None or subscriber is None:
                return gone(asked)
            if post:
                unsubscribe(session, subscriber, now(), SELF)
            return unsubscribe_page(subscriber, secret, base, asked)

    @router.get("/confirm/{token}", response_class=HTMLResponse)
    async def confirm_question_page(token: str, request: Request, lang: str | None = None) -> HTMLResponse:
        """Show a one-button page; nothing changes until it is pressed (mail scanners open every link)."""
        return await run_in_threadpool(confirm_link, token, False, Asked.of(request), base_url)

    # No CSRF token: the secret is the link itself, which a page elsewhere cannot know.
    @router.post("/confirm/{token}", response_class=HTMLResponse, openapi_extra=NO_FIELDS)
    async def confirm_now(token: str, request: Request, lang: str | None = None) -> HTMLResponse:
        """Confirm a subscription (the button of the confirm page); say what comes next."""
        await request.body()  # whatever the form sent: nothing in it is needed
        return await run_in_threadpool(confirm_link, token, True, Asked.of(request), base_url)

    @router.get("/unsubscribe/{token}", response_class=HTMLResponse)
    async def unsubscribe_question(token: str, request: Request, lang: str | None = None) -> HTMLResponse:
        """Show a one-button page; nothing changes until it is pressed (link scanners follow GETs)."""
        return await run_in_threadpool(unsubscribe_link, token, False, Asked.of(request), base_url)

    @router.post("/unsubscribe/{token}", response_class=HTMLResponse, openapi_extra=ONE_CLICK)
    async def unsubscribe_now(token: str, request: Request, lang: str | None = None) -> HTMLResponse:
        """Unsubscribe at once: RFC 8058 one-click (body List-Unsubscribe=One-Click) or the page's button."""
        await request.body()  # RFC 8058's List-Unsubscribe=One-Click, or the button's; at most MAX_BODY
        return await run_in_threadpool(unsubscribe_link, token, True, Asked.of(request), base_url)

    return router


def confirm_question(subscriber: Subscriber, asked: Asked) -> HTMLResponse:
    """The one-button page behind the confirmation link: the button posts back to the same address."""
    chosen = asked.language(subscriber)
    return answer("confirm.html.j2", chosen, asked, title=chosen.language.gettext("Confirm your subscription"),
                  email=subscriber.email, action=chosen.link(asked.path))  # fmt: skip


def confirmed_page(subscriber: Subscriber, secret: bytes, base_url: str, asked: Asked) -> HTMLResponse:
    """What happens next, the way to the settings, and the personal feed with its buttons."""
    chosen = asked.language(subscriber)
    links = LinkMaker(secret, base_url, "").of(subscriber)
    name = chosen.language.gettext(FEED_NAME)
    return answer("confirmed.html.j2", chosen, asked, title=chosen.language.gettext("Subscription confirmed"),
                  email=subscriber.email, weekly=subscriber.digest == "weekly", feed=links.feed,
                  feeds=feed_links(base_url, urlsplit(links.feed).path, name),
                  preferences=chosen.link(links.preferences), unsubscribe=chosen.link(links.unsubscribe))  # fmt: skip


def unsubscribe_page(subscriber: Subscriber, secret: bytes, base_url: str, asked: Asked) -> HTMLResponse:
    """The one-button question, or (once unsubscribed) that it is done."""
    chosen = asked.language(subscriber)
    language = chosen.language
    if subscriber.state == "unsubscribed":
        return answer("unsubscribed.html.j2", chosen, asked, title=language.gettext("Unsubscribed"),
                      email=subscriber.email)  # fmt: skip
    links = LinkMaker(secret, base_url, "").of(subscriber)
    return answer("unsubscribe.html.j2", chosen, asked, title=language.gettext("Unsubscribe"), email=subscriber.email,
                  action=chosen.link(asked.path), preferences=chosen.link(links.preferences))  # fmt: skip


def signup_routes(site: Site, limiter: SlidingWindow) -> APIRouter:
    """GET /subscribe (a plain form) and POST /subscribe (form or JSON): the start of the double opt-in."""
    router = APIRouter(tags=["subscriptions"])

    @router.get("/subscribe", response_class=HTMLResponse)
    async def subscribe_page(request: Request, lang: str | None = None) -> HTMLResponse:
        """A plain subscription form; `?timelines=ID` (repeatable) ticks those timelines."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        nonce = nonce if 20 <= len(nonce) <= 64 and nonce.isascii() else secrets.token_urlsafe(24)
        asked = Asked.of(request)
        ticked = request.query_params.getlist("timelines")
        response = await run_in_threadpool(blank_form, site, nonce, asked, ticked)
        # The cookie binds the form's token to this browser; SameSite keeps it off cross-site posts.
        response.set_cookie(CSRF_COOKIE, nonce, path=request.url.path, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")  # fmt: skip
        return response

    @router.post(
        "/subscribe",
        status_code=202,
        responses={422: {"description": "A field is wrong; `detail` names it"}, 429: {"description": "Slow down"},
                   503: {"description": "Too many requests waiting; try again in a minute"}},
        openapi_extra=SUBSCRIBE_BODY,
    )  # fmt: skip
    async def subscribe(request: Request, lang: str | None = None) -> Response:
        """Ask for a subscription: JSON, or the form's fields with its CSRF token. The answer is the same
        whether or not the address is known; a confirmation email goes to new and pending addresses."""
        as_json = media_type(request.headers.get("content-type")) == "application/json"
        asked = Asked.of(request)
        try:
            wait = limiter.hit(client_key(request.client.host if request.client else None))
            if wait > 0:
                raise TooManyRequestsError(math.ceil(wait))
            body = await request.body()  # at most MAX_BODY: the Guard stops a longer one
            if as_json:
                return await run_in_threadpool(subscribe_with_json, site, body)
            if media_type(request.headers.get("content-type")) != FORM:
                raise FormError(415, N_("Send JSON (application/json) or a form ({form})."), form=FORM)
            nonce = request.cookies.get(CSRF_COOKIE, "")
            return await run_in_threadpool(subscribe_with_form, site, body, nonce, asked)
        except FormError as exc:
            return refuse(exc, as_json, asked)

    return router


def preferences_routes(site: Site) -> APIRouter:
    """GET/POST /preferences/{token}: the link in every email to change what one receives."""
    router = APIRouter(tags=["subscriptions"])

    @router.get("/preferences/{token}", response_class=HTMLResponse)
    async def preferences_page(token: str, request: Request, lang: str | None = None) -> HTMLResponse:
        """Show a subscriber's settings, their feed link and the unsubscribe link."""
        return await run_in_threadpool(show_preferences, site, token, Asked.of(request))

    @router.post("/preferences/{token}", response_class=HTMLResponse, openapi_extra=PREFERENCES_BODY)
    async def preferences_change(token: str, request: Request, lang: str | None = None) -> Response:
        """Save the settings form, or rotate the personal feed link (action=rotate-feed)."""
        asked = Asked.of(request)
        try:
            if media_type(request.headers.get("content-type")) != FORM:
                raise FormError(415, N_("Send the form ({form})."), form=FORM)
            fields = form_fields(await request.body())  # at most MAX_BODY: the Guard stops a longer one
        except FormError as exc:
            return refuse(exc, False, asked)
        return await run_in_threadpool(change_preferences, site, token, fields, asked)

    return router


def refuse(exc: FormError, as_json: bool, asked: Asked) -> Response:
    headers = {"Retry-After": str(exc.seconds)} if isinstance(exc, TooManyRequestsError) else {}
    if as_json:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)
    chosen = asked.language()
    response = message(chosen, asked, N_("Not accepted"), exc.text(chosen.language), exc.status)
    response.headers.update(headers)
    return response


def invalid(exc: SubscriberError) -> JSONResponse:
    """422 in FastAPI's own shape: which field, what is wrong."""
    where = ["body", exc.field] if exc.field else ["body"]
    return validation_problem([{"loc": where, "msg": str(exc), "type": "value_error"}])


def subscribe_with_json(site: Site, body: bytes) -> Response:
    try:
        then = ask(site, json_fields(body))
    except SubscriberError as exc:
        return invalid(exc)
    return JSONResponse({"status": "check-your-inbox", "detail": ACCEPTED}, status_code=202, background=then)


def subscribe_with_form(site: Site, body: bytes, nonce: str, asked: Asked) -> Response:
    fields = form_fields(body)
    token = fields.pop(CSRF_FIELD, "")
    if not isinstance(token, str) or not check_form_token(site.secret, nonce, token, site.clock()):
        raise FormError(403, STALE_FORM)
    try:
        then = ask(site, fields)
    except SubscriberError as exc:
        return subscribe_form(site, nonce, asked, form_values(fields), error=exc)
    chosen = asked.language()
    response = message(chosen, asked, N_("Check your inbox"), chosen.language.gettext(ACCEPTED), 202)
    response.background = then
    return response


def ask(site: Site, raw: Raw) -> BackgroundTask:
    """Check the request and reserve its place in the queue; return the task that queues the start of the double
    opt-in once the answer is sent. The answer, and the time it takes, are the same whether the address is new,
    pending or confirmed (tracker/web/signups.py)."""
    with transaction(site.engine) as session:
        known = known_names(session)
    data = check_input(raw, zone=site.zone, known=known)
    asked_at = site.clock()
    reservation = site.signups.reserve()  # before answering: a full queue is a 503, not a 202 and nothing
    if reservation is None:
        raise FormError(503, N_("Too many requests are waiting: try again in a minute."))
    return BackgroundTask(site.signups.start, reservation, partial(start_opt_in, site.engine, data, asked_at))


def start_opt_in(engine: Engine, data: SubscriberInput, now: datetime) -> None:
    with transaction(engine, write=True) as session:
        pending = request_subscription(session, data, now, SELF)
        if pending is not None:
            queue_confirm(session, pending, now)  # or not: the address had enough confirmation emails


def blank_form(site: Site, nonce: str, asked: Asked, ticked: list[str]) -> HTMLResponse:
    """The form as first shown: the page's language, the default zone (the browser's, with JavaScript),
    the default audience, and the timelines the link asked for that exist."""
    with transaction(site.engine) as session:
        known = known_names(session)
    values = form_values({"language": asked.language().code, "timezone": site.zone, "audiences": ["membership"],
                          "timelines": [t for t in ticked if t in known.timelines]})  # fmt: skip
    return subscribe_form(site, nonce, asked, values, guess_zone=True)


def subscribe_form(
    site: Site,
    nonce: str,
    asked: Asked,
    values: Mapping[str, object],
    *,
    error: SubscriberError | None = None,
    guess_zone: bool = False,
) -> HTMLResponse:
    chosen = asked.language()
    language = chosen.language
    with transaction(site.engine) as session:
        choices = list_choices(known_names(session), values, timeline_titles(session, chosen.code), language,
                               site.clock())  # fmt: skip
    return answer("subscribe.html.j2", chosen, asked, 422 if error else 200, title=language.gettext("Subscribe"),
                  v=values, choices=choices, error=problem(error, language), guess_zone=guess_zone,
                  csrf=form_token(site.secret, nonce, site.clock()), action=chosen.link(asked.path))  # fmt: skip


def timeline_titles(session: Session, code: str) -> dict[str, str]:
    """Every stored timeline's title in language *code*, by id (as planning.timeline_title_in picks it)."""
    return {t.id: (t.titles or {}).get(code) or t.title for t in session.exec(select(Timeline))}


def show_preferences(site: Site, token: str, asked: Asked) -> HTMLResponse:
    with transaction(site.engine) as session:
        subscriber = by_token(session, site.secret, "manage", token)
        if subscriber is None:
            return gone(asked)
        return preferences_form(site, session, subscriber, token, asked)


def change_preferences(site: Site, token: str, fields: dict[str, object], asked: Asked) -> HTMLResponse:
    with transaction(site.engine, write=True) as session:
        subscriber = by_token(session, site.secret, "manage", token)
        if subscriber is None:
            return gone(asked)
        csrf = fields.pop(CSRF_FIELD, "")
        if not isinstance(csrf, str) or not check_form_token(site.secret, token, csrf, site.clock()):
            chosen = asked.language(subscriber)
            return message(chosen, asked, N_("Not accepted"), chosen.language.gettext(STALE_FORM), 403)
        if fields.get("action") == "resume":
            if suspended_by(session, subscriber) not in SELF_RESUMED:  # the form is not offered; made by hand
                notice = N_("Only the organisers can resume emails to this address.")
                return preferences_form(site, session, subscriber, token, asked, notice=notice, status=403)
            resumed = set_suspended(session, subscriber, False, subscriber.email, site.clock(), actor=SELF)
            notice = N_("Emails to your address are resumed.") if resumed else N_("Nothing to resume.")
            return preferences_form(site, session, subscriber, token, asked, notice=notice)
        if fields.get("action") == "rotate-feed":
            rotate(session, subscriber, ["feed"], site.clock(), SELF)
            notice = N_("Your new feed link is below; the old one no longer works.")
            return preferences_form(site, session, subscriber, token, asked, notice=notice)
        known = with_chosen(known_names(session), subscriber)
        try:  # the address is not a choice here: changing it would need a new confirmation
            data = check_input({**fields, "email": subscriber.email}, zone=subscriber.timezone, known=known)
        except SubscriberError as exc:
            return preferences_form(site, session, subscriber, token, asked, values=form_values(fields), error=exc)
        changed = update(session, subscriber, data, site.clock(), SELF)
        notice = N_("Saved.") if changed else N_("Nothing to save: these were already your settings.")
        return preferences_form(site, session, subscriber, token, asked, notice=notice)


def with_chosen(known: Known, subscriber: Subscriber) -> Known:
    """What exists, plus what the subscriber already follows: a removed timeline must not block saving."""
    return Known(known.timelines | set(subscriber.timelines or ()), known.audiences | set(subscriber.audiences or ()))


def preferences_form(
    site: Site,
    session: Session,
    subscriber: Subscriber,
    token: str,
    asked: Asked,
    *,
    values: Mapping[str, object] | None = None,
    notice: str = "",
    error: SubscriberError | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The settings page, in the subscriber's language as saved (a change of language shows at once)."""
    chosen = asked.language(subscriber)
    language = chosen.language
    links = LinkMaker(site.secret, site.base_url, site.from_address).of(subscriber)
    shown = values or subscriber_values(subscriber)
    known = with_chosen(known_names(session), subscriber)
    confirmed = subscriber.state == "confirmed"  # unconfirmed feeds answer 404
    feeds = feed_links(site.base_url, urlsplit(links.feed).path, language.gettext(FEED_NAME)) if confirmed else None
    by = suspended_by(session, subscriber)
    bounced = suspending_bounce(session, subscriber) if by == BOUNCES else None
    return answer("preferences.html.j2", chosen, asked, 422 if error else status,
                  title=language.gettext("Your settings"), email=subscriber.email, state=subscriber.state, v=shown,
                  choices=list_choices(known, shown, timeline_titles(session, chosen.code), language, site.clock()),
                  notice=language.gettext(notice) if notice else "", error=problem(error, language),
                  csrf=form_token(site.secret, token, site.clock()), action=chosen.link(asked.path),
                  feed=links.feed if confirmed else None, feeds=feeds,
                  unsubscribe=chosen.link(links.unsubscribe), my_data=chosen.link(f"{asked.path}/data"),
                  erase=chosen.link(f"{asked.path}/erase"),
                  bounced_on=day_text(bounced.received_at, subscriber.timezone, language) if bounced else "",
                  bounce_reason=bounced.diagnostic if bounced else "", suspended_by=by,
                  resumable=by in SELF_RESUMED)  # fmt: skip


def suspended_by(session: Session, subscriber: Subscriber) -> str | None:
    """Who suspended *subscriber* (the actor of the latest suspension event), or None when not suspended."""
    if subscriber.state != "suspended" or subscriber.id is None:
        return None
    latest = (
        select(Event.actor)
        .where(Event.subscriber_id == subscriber.id, Event.kind == "subscriber_suspended")
        .order_by(col(Event.at).desc(), col(Event.id).desc())
    )
    return session.exec(latest.limit(1)).first() or ""


def suspending_bounce(session: Session, subscriber: Subscriber) -> BounceReport | None:
    """The last bounce received by the time bounces suspended *subscriber* (asked only when bounces did)."""
    if subscriber.id is None or subscriber.changed_at is None:
        return None
    bounce = last_bounce(session, subscriber.id)
    return bounce if bounce is not None and bounce.received_at <= subscriber.changed_at else None
