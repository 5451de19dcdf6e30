"""The HTTP app: public feeds with proper caching headers, and a health check."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool

from tracker import __version__
from tracker.calendars import Calendars, FeedBody, FeedRef

CALENDAR_TYPE = "text/calendar; charset=utf-8"
FEED_CACHE_CONTROL = "public, max-age=300"


def create_app(engine: Engine, calendars: Calendars) -> FastAPI:
    """Build the app around one store and its feeds."""
    app = FastAPI(title="Tracker", version=__version__, summary="Deadlines of a working group, as calendars.")

    @app.api_route("/healthz", methods=["GET", "HEAD"], tags=["operations"])
    def healthz() -> JSONResponse:
        """Liveness: the process answers and the store responds."""
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok", "version": __version__})

    @app.api_route("/feeds/all.ics", methods=["GET", "HEAD"], tags=["feeds"])
    async def all_feed(request: Request) -> Response:
        """Every deadline, window and meeting of every timeline."""
        return await serve_feed(calendars, FeedRef("all", None), request)

    @app.api_route("/feeds/me/{token}.ics", methods=["GET", "HEAD"], tags=["feeds"])
    async def personal_feed(token: str, request: Request) -> Response:
        """A subscriber's own feed: their timelines and audiences, their reminder offsets."""
        feed = await run_in_threadpool(calendars.personal, token)
        if feed is None:
            return PlainTextResponse("No such feed: the link is wrong, or it was replaced by a newer one.\n", 404)
        return send_feed(feed, request, private=True)

    @app.api_route("/feeds/audiences/{audience}.ics", methods=["GET", "HEAD"], tags=["feeds"])
    async def audience_feed(audience: str, request: Request) -> Response:
        """What concerns one audience (e.g. membership)."""
        return await serve_feed(calendars, FeedRef("audience", audience), request)

    @app.api_route("/feeds/{timeline}.ics", methods=["GET", "HEAD"], tags=["feeds"])
    async def timeline_feed(timeline: str, request: Request) -> Response:
        """One timeline."""
        return await serve_feed(calendars, FeedRef("timeline", timeline), request)

    return app


async def serve_feed(calendars: Calendars, ref: FeedRef, request: Request) -> Response:
    # Current bytes are answered on the event loop; asking the store or rebuilding goes to a thread.
    feed = calendars.ready(ref) or await run_in_threadpool(calendars.feed, ref)
    if feed is None:
        return await run_in_threadpool(unknown_feed, calendars, ref)
    return send_feed(feed, request)


def send_feed(feed: FeedBody, request: Request, private: bool = False) -> Response:
    compressed = accepts_gzip(request)
    headers = feed_headers(feed, compressed)
    if private:  # shared caches must not keep a subscriber's feed under its secret URL
        headers["Cache-Control"] = "private, max-age=300"
    if not_modified(request, feed):
        return Response(status_code=304, headers=headers)
    body = feed.body
    if compressed:
        body = feed.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Content-Length"] = str(len(body))
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers, media_type=CALENDAR_TYPE)
    return Response(body, headers=headers, media_type=CALENDAR_TYPE)


def gzip_etag(feed: FeedBody) -> str:
    """A strong ETag names one representation, so the gzipped bytes get their own."""
    return feed.etag[:-1] + '-gzip"'


def feed_headers(feed: FeedBody, compressed: bool) -> dict[str, str]:
    return {
        "ETag": gzip_etag(feed) if compressed else feed.etag,
        "Last-Modified": format_datetime(feed.last_modified, usegmt=True),
        "Cache-Control": FEED_CACHE_CONTROL,
        "Vary": "Accept-Encoding",
    }


def not_modified(request: Request, feed: FeedBody) -> bool:
    """RFC 9110 §13.1: If-None-Match wins; If-Modified-Since only counts without it."""
    match = request.headers.get("if-none-match")
    if match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in match.split(",")}
        return bool(tags & {"*", feed.etag, gzip_etag(feed)})
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when: datetime = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    return when.tzinfo is not None and feed.last_modified <= when


def accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip" and params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            return True
    return False


def unknown_feed(calendars: Calendars, ref: FeedRef) -> PlainTextResponse:
    known = "\n".join(f"  {r.path}" for r in calendars.refs())
    what = {"all": "feed", "timeline": "timeline", "audience": "audience"}[ref.kind]
    message = f"No {what} {ref.key!r} here. The feeds are:\n{known}\n"
    return PlainTextResponse(message, status_code=404)
