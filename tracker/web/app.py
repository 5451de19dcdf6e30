"""The HTTP app: public and personal feeds with proper caching headers, email links, a health check."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import APIRouter, FastAPI, Header, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from tracker import __version__
from tracker.config import Settings, get_settings
from tracker.feeds.atom import ATOM_TYPE, NewsFeeds
from tracker.feeds.calendars import Calendars, FeedBody, FeedRef
from tracker.i18n.languages import N_, choose_language
from tracker.metrics import Metrics
from tracker.web.admin import admin_routes, has_bearer
from tracker.web.api import api_routes
from tracker.web.api_auth import ApiGate
from tracker.web.console import install_console, make_console
from tracker.web.forms import Asked, FormError, message
from tracker.web.limits import REQUEST_TIMEOUT, SECURITY_HEADERS, Guard, validation_problem
from tracker.web.pages import page_routes
from tracker.web.personal import personal_routes
from tracker.web.ratelimit import SlidingWindow
from tracker.web.rendered import AnswerFront, Rendered
from tracker.web.signups import Signups
from tracker.web.subscriptions import Site, preferences_routes, signup_routes, subscription_routes

CALENDAR_TYPE = "text/calendar; charset=utf-8"
FEED_CACHE_CONTROL = "public, max-age=300"
# The fast path answers without the Guard: the same headers, written once.
FEED_SECURITY = {name.decode(): value.decode() for name, value in SECURITY_HEADERS} | {
    "Content-Security-Policy": "frame-ancestors 'none'"
}


def create_app(
    engine: Engine,
    calendars: Calendars,
    metrics: Metrics | None = None,
    settings: Settings | None = None,
    signups: Signups | None = None,
) -> ASGIApp:
    """Build the app around one store and its feeds: the fast path for cached feeds, the one for pages and
    /api/upcoming asked before, then the guard (body cap, HEAD, security headers), then the routes."""
    timeout = settings.request_timeout if settings is not None else REQUEST_TIMEOUT
    guarded = Guard(create_api(engine, calendars, metrics, settings, signups), timeout=timeout)
    return FeedFastPath(AnswerFront(guarded, calendars), calendars)


def create_api(
    engine: Engine,
    calendars: Calendars,
    metrics: Metrics | None = None,
    settings: Settings | None = None,
    signups: Signups | None = None,
) -> FastAPI:
    """Build the FastAPI app (every route, the OpenAPI document)."""
    config = settings or get_settings()
    queue = signups or Signups()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(queue.close)  # requests already answered are still handled

    app = FastAPI(title="Tracker", version=__version__, summary="Deadlines of a working group, as calendars.",
                  redirect_slashes=False, lifespan=lifespan)  # fmt: skip
    handle_errors(app, config.base_url)
    if config.metrics_token:  # without a token there is no /metrics: counts of this kind are nobody else's
        app.include_router(metrics_routes(metrics or Metrics(engine), config.metrics_token))
    app.include_router(subscription_routes(engine, calendars.secret, calendars.clock, base_url=calendars.base_url))
    rendered = Rendered(calendars)  # the pages and /api/upcoming, kept until the store changes
    app.include_router(api_routes(engine, calendars, calendars.base_url, config.late_days, rendered))
    app.include_router(page_routes(rendered, calendars.base_url, config.late_days))
    failures = SlidingWindow(config.api_token_failures, config.api_token_window)
    gate = ApiGate(engine, calendars.clock, config.admin_token, failures)
    app.include_router(admin_routes(engine, gate, config.timezone, calendars.clock))
    if calendars.secret is not None:  # without a key there are no links to confirm or manage a subscription
        site = Site(engine, calendars.secret, calendars.clock, config.timezone, config.base_url, config.from_address,
                    queue)  # fmt: skip
        app.include_router(signup_routes(site, SlidingWindow(config.subscribe_limit, config.subscribe_window)))
        app.include_router(preferences_routes(site))
        app.include_router(personal_routes(engine, calendars.secret, site.clock))
        install_console(app, make_console(config, engine, calendars.secret, calendars.clock, queue))

    @app.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        """Liveness: the process answers and the store responds."""
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok", "version": __version__})

    news = NewsFeeds(calendars, engine)

    @app.get("/feeds/all.atom", tags=["feeds"])
    async def all_news(request: Request, lang: str = "en") -> Response:
        """What changed in every timeline, newest first (Atom): moved, cancelled, completed, opened."""
        return await serve_news(news, None, lang, request)

    @app.get("/feeds/{timeline}.atom", tags=["feeds"])
    async def timeline_news(timeline: str, request: Request, lang: str = "en") -> Response:
        """What changed in one timeline, newest first (Atom)."""
        return await serve_news(news, timeline, lang, request)

    @app.get("/feeds/all.ics", tags=["feeds"])
    async def all_feed(request: Request) -> Response:
        """Every deadline, window and meeting of every timeline."""
        return await serve_feed(calendars, FeedRef("all", None), request)

    @app.get("/feeds/me/{token}.ics", tags=["feeds"])
    async def personal_feed(token: str, request: Request) -> Response:
        """A subscriber's own feed: their timelines and audiences, their reminder offsets."""
        feed = await run_in_threadpool(calendars.personal, token)
        if feed is None:
            return PlainTextResponse("No such feed: the link is wrong, or it was replaced by a newer one.\n", 404)
        return send_feed(feed, request, private=True)

    @app.get("/feeds/audiences/{audience}.ics", tags=["feeds"])
    async def audience_feed(audience: str, request: Request) -> Response:
        """What concerns one audience (e.g. membership)."""
        return await serve_feed(calendars, FeedRef("audience", audience), request)

    @app.get("/feeds/{timeline}.ics", tags=["feeds"])
    async def timeline_feed(timeline: str, request: Request) -> Response:
        """One timeline."""
        return await serve_feed(calendars, FeedRef("timeline", timeline), request)

    return app


def metrics_routes(metrics: Metrics, token: str) -> APIRouter:
    """GET /metrics for Prometheus, behind `Authorization: Bearer <TRACKER_METRICS_TOKEN>`."""
    router = APIRouter(tags=["operations"])

    @router.get("/metrics", response_class=PlainTextResponse, responses={401: {"description": "No or wrong token"}})
    def metrics_page(authorization: str | None = Header(default=None)) -> Response:
        """Prometheus metrics: deliveries by state and kind, queue depth, send latency, lateness, SMTP errors."""
        if not has_bearer(authorization, token):
            headers = {"WWW-Authenticate": 'Bearer realm="tracker metrics"'}
            return PlainTextResponse("A valid bearer token is needed (TRACKER_METRICS_TOKEN).\n", 401, headers)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


def handle_errors(app: FastAPI, base_url: str) -> None:
    """422 that never fails to render; a missing or extra trailing slash redirected to TRACKER_BASE_URL."""
    base = base_url.rstrip("/")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        return validation_problem(exc.errors())

    @app.exception_handler(FormError)
    async def unreadable_form(request: Request, exc: FormError) -> Response:
        """A form body no route could read (bad UTF-8, %00, too many fields): its page, never a 500."""
        asked = Asked.of(request)
        chosen = asked.language()
        return message(chosen, asked, N_("Not accepted"), exc.text(chosen.language), exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        other = other_slash(app, request.scope) if exc.status_code == 404 else None
        if other is None:
            return await http_exception_handler(request, exc)
        query = request.url.query
        # Never from the Host header: that is the client's to choose.
        return RedirectResponse(f"{base}{other}{'?' + query if query else ''}", 307)


def other_slash(app: FastAPI, scope: Scope) -> str | None:
    """The path with its trailing slash added or removed, when only that one names a route."""
    path: str = scope["path"]
    if path == "/":
        return None
    other = path.rstrip("/") if path.endswith("/") else f"{path}/"
    routes = app.router.routes
    if any(route.matches(scope)[0] is Match.FULL for route in routes):
        return None
    moved = {**scope, "path": other}
    return other if any(route.matches(moved)[0] is not Match.NONE for route in routes) else None


async def serve_feed(calendars: Calendars, ref: FeedRef, request: Request) -> Response:
    # Current bytes are answered on the event loop; asking the store or rebuilding goes to a thread.
    feed = calendars.ready(ref) or await run_in_threadpool(calendars.feed, ref)
    if feed is None:
        return await run_in_threadpool(unknown_feed, calendars, ref)
    return send_feed(feed, request)


async def serve_news(news: NewsFeeds, timeline: str | None, lang: str, request: Request) -> Response:
    feed = await run_in_threadpool(news.feed, timeline, choose_language(lang[:20]))
    if feed is None:
        where = news.calendars.base_url
        message = f"No timeline {str(timeline)[:100]!r} here. The overview lists them, each with its feeds: {where}/\n"
        return PlainTextResponse(message, status_code=404)
    return send_feed(feed, request, content_type=ATOM_TYPE)


def send_feed(feed: FeedBody, request: Request, private: bool = False, content_type: str = CALENDAR_TYPE) -> Response:
    status, headers, body = feed_response(feed, request.headers, request.method, private=private,
                                          content_type=content_type)  # fmt: skip
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


def feed_response(
    feed: FeedBody, asked: Mapping[str, str], method: str, *, private: bool = False, content_type: str = CALENDAR_TYPE
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body for a feed request: 304, HEAD, gzip or identity."""
    compressed = accepts_gzip(asked)
    headers = feed_headers(feed, compressed)
    if private:  # shared caches must not keep a subscriber's feed under its secret URL
        headers["Cache-Control"] = "private, max-age=300"
    if not_modified(asked, feed):
        return 304, encode(headers), b""
    body = feed.gzipped if compressed else feed.body
    if compressed:
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    return 200, encode(headers), b"" if method == "HEAD" else body


def encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def gzip_etag(feed: FeedBody) -> str:
    """A strong ETag names one representation, so the gzipped bytes get their own."""
    return feed.etag[:-1] + '-gzip"'


def feed_headers(feed: FeedBody, compressed: bool) -> dict[str, str]:
    return {
        "ETag": gzip_etag(feed) if compressed else feed.etag,
        "Last-Modified": format_datetime(feed.last_modified, usegmt=True),
        "Cache-Control": FEED_CACHE_CONTROL,
        "Vary": "Accept-Encoding",
        **FEED_SECURITY,
    }


def not_modified(asked: Mapping[str, str], feed: FeedBody) -> bool:
    """RFC 9110 §13.1: If-None-Match wins; If-Modified-Since only counts without it."""
    match = asked.get("if-none-match")
    if match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in match.split(",")}
        return bool(tags & {"*", feed.etag, gzip_etag(feed)})
    since = asked.get("if-modified-since")
    if since is None:
        return False
    try:
        when: datetime = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    return when.tzinfo is not None and feed.last_modified <= when


def accepts_gzip(asked: Mapping[str, str]) -> bool:
    for part in asked.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip" and params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            return True
    return False


class FeedFastPath:
    """ASGI front for public feeds whose bytes are current: answered without the framework.

    Everything else (a stale feed, an unknown one, every other path) goes to the app.
    A cached feed is the most requested thing we serve: calendar clients poll it.
    """

    def __init__(self, app: ASGIApp, calendars: Calendars) -> None:
        self.app = app
        self.calendars = calendars
        self.served = 0  # answers given without the app (tests look)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ref = feed_ref(scope["path"]) if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") else None
        feed = self.calendars.ready(ref) if ref is not None else None
        if feed is None:
            await self.app(scope, receive, send)
            return
        self.served += 1
        status, headers, body = feed_response(feed, Headers(scope=scope), scope["method"])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def feed_ref(path: str) -> FeedRef | None:
    """The public feed a path names, if it names one."""
    if not path.startswith("/feeds/") or not path.endswith(".ics"):
        return None
    name = path[len("/feeds/") : -len(".ics")]
    if name == "all":
        return FeedRef("all", None)
    if name.startswith("audiences/") and name.count("/") == 1:
        return FeedRef("audience", name.split("/", 1)[1])
    return FeedRef("timeline", name) if "/" not in name else None


def unknown_feed(calendars: Calendars, ref: FeedRef) -> PlainTextResponse:
    known = "\n".join(f"  {r.path}" for r in calendars.refs())
    what = {"all": "feed", "timeline": "timeline", "audience": "audience"}[ref.kind]
    message = f"No {what} {ref.key!r} here. The feeds are:\n{known}\n"
    return PlainTextResponse(message, status_code=404)
