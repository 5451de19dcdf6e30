"""Links in every email: confirm a subscription, unsubscribe (RFC 8058 one-click)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from tracker.store import transaction
from tracker.subscribers import by_token, confirm, unsubscribe

Clock = Callable[[], datetime]
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem;
 line-height: 1.5">
<h1>{title}</h1>{body}</body></html>
"""
GONE = "This link is not valid any more: it may be mistyped, or a newer email replaced it."


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status)


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
