"""Personal data on request, from a member's own preferences link: download it all, or erase it.

GET /preferences/{token}/data answers one JSON file; GET /preferences/{token}/erase asks for
confirmation; POST /preferences/{token}/erase, with the page's token (as the preferences form
has), erases. The store side is subscribers/personal.py; docs/console.md, "Personal data".
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from tracker.i18n.languages import N_
from tracker.store.engine import transaction
from tracker.subscribers.personal import erase_person, export_person
from tracker.subscribers.registry import by_token
from tracker.web.forms import (
    CSRF_FIELD,
    FORM_TYPE,
    TEXT,
    Asked,
    answer,
    check_form_token,
    documented_body,
    form_fields,
    form_token,
    gone,
    media_type,
    message,
)

SELF = "subscriber"  # the audit log's actor, as for every other change a member makes through their link
ERASE_BODY = documented_body(True, **{FORM_TYPE: {"type": "object", "properties": {CSRF_FIELD: TEXT}}})
STALE_FORM = N_("This form has expired or did not come from this site: reload the page and send it again.")
ERASED = N_(
    "Your subscription and your personal data are erased: nothing more is sent to you, and your links no longer"
    " work. The log of messages already sent keeps only a count, without your address or name."
)


def download(data: dict[str, Any], name: str) -> Response:
    """*data* as a JSON file to save: every value encoded by json, never cached, never shown inline."""
    body = json.dumps(data, ensure_ascii=False, indent=1).encode()
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store",
               "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}  # fmt: skip
    return Response(body, media_type="application/json", headers=headers)


def personal_routes(engine: Any, secret: bytes, clock: Any) -> APIRouter:
    """The download and the erasure behind a member's preferences link."""
    router = APIRouter(tags=["subscriptions"])

    @router.get("/preferences/{token}/data")
    async def my_data(token: str, request: Request, lang: str | None = None) -> Response:
        """Everything held about the link's subscriber, as a JSON file."""
        return await run_in_threadpool(data_of, engine, secret, token, clock(), Asked.of(request))

    @router.get("/preferences/{token}/erase", response_class=HTMLResponse)
    async def erase_question(token: str, request: Request, lang: str | None = None) -> HTMLResponse:
        """Ask before erasing: nothing changes until the button is pressed."""
        return await run_in_threadpool(ask_erase, engine, secret, token, clock(), Asked.of(request))

    @router.post("/preferences/{token}/erase", response_class=HTMLResponse, openapi_extra=ERASE_BODY)
    async def erase_now(token: str, request: Request, lang: str | None = None) -> HTMLResponse:
        """Erase the subscriber and their personal data (the confirmation page's button)."""
        asked = Asked.of(request)
        # A body no form can be read from is the app's FormError handler's (400, a page).
        form = media_type(request.headers.get("content-type")) == FORM_TYPE
        fields = form_fields(await request.body()) if form else {}
        csrf = fields.get(CSRF_FIELD, "")
        return await run_in_threadpool(erase, engine, secret, token, csrf if isinstance(csrf, str) else "", clock(),
                                       asked)  # fmt: skip

    return router


def data_of(engine: Any, secret: bytes, token: str, now: datetime, asked: Asked) -> Response:
    with transaction(engine) as session:
        subscriber = by_token(session, secret, "manage", token)
        if subscriber is None:
            return gone(asked)
        return download(export_person(session, subscriber, now), "my-subscription-data.json")


def ask_erase(engine: Any, secret: bytes, token: str, now: datetime, asked: Asked) -> HTMLResponse:
    with transaction(engine) as session:
        subscriber = by_token(session, secret, "manage", token)
        if subscriber is None:
            return gone(asked)
        chosen = asked.language(subscriber)
        return answer("erase.html.j2", chosen, asked, title=chosen.language.gettext("Erase my data"),
                      email=subscriber.email, csrf=form_token(secret, token, now), action=chosen.link(asked.path),
                      back=chosen.link(asked.path.rpartition("/")[0]))  # fmt: skip


def erase(engine: Any, secret: bytes, token: str, csrf: str, now: datetime, asked: Asked) -> HTMLResponse:
    with transaction(engine, write=True) as session:
        subscriber = by_token(session, secret, "manage", token)
        if subscriber is None:
            return gone(asked)
        chosen = asked.language(subscriber)
        if not check_form_token(secret, token, csrf, now):
            return message(chosen, asked, N_("Not accepted"), chosen.language.gettext(STALE_FORM), 403)
        erase_person(session, subscriber, secret, now, SELF)
    return message(chosen, asked, N_("Erased"), chosen.language.gettext(ERASED), 200)
