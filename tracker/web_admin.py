"""The secretariat's API: record a completion over HTTP (bearer token), as `tracker done` does.

A completion is an event like any other: the running dispatcher turns it into `opened`
notices for the audience that was waiting for it, and moves `.done` dependents.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from tracker.completions import CompletionError, DoneRequest, record_done
from tracker.dates import DateError, parse_when
from tracker.display import change_json
from tracker.store import load_views, transaction

Clock = Callable[[], datetime]


class DoneBody(BaseModel):
    """When and how a milestone was done; all optional."""

    at: str | None = Field(default=None, description="YYYY-MM-DD or YYYY-MM-DDTHH:MM (local time); default: now")
    note: str = Field(default="", max_length=2000, description="Shown with the completion")
    link: str = Field(default="", max_length=2000, description="e.g. the posted document")


def admin_routes(engine: Engine, token: str, zone: str, clock: Clock) -> APIRouter:
    """Routes that change the timelines' state; every one needs `Authorization: Bearer <TRACKER_ADMIN_TOKEN>`."""
    router = APIRouter(prefix="/api", tags=["admin"])

    def refused(authorization: str | None) -> JSONResponse | None:
        if not token:
            return JSONResponse({"detail": "the admin API is off: set TRACKER_ADMIN_TOKEN to turn it on"}, 403)
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            headers = {"WWW-Authenticate": 'Bearer realm="tracker"'}
            return JSONResponse({"detail": "a valid bearer token is needed (TRACKER_ADMIN_TOKEN)"}, 401, headers)
        return None

    def complete(reference: str, body: DoneBody) -> JSONResponse:
        try:
            done_at = parse_when(body.at, zone) if body.at else clock()
        except DateError as exc:
            return JSONResponse({"detail": f"at: {exc}"}, 422)
        day = datetime.fromisoformat(body.at.strip()).date() if body.at and len(body.at.strip()) == 10 else None
        try:
            with transaction(engine, write=True) as session:
                views = {f"{v.timeline_id}/{v.key}": v for v in load_views(session)}
                request = DoneRequest(reference, done_at, day, body.note, body.link, source="api")
                changes = record_done(session, request, views.get(reference), now=clock())
        except CompletionError as exc:
            return JSONResponse({"detail": str(exc)}, 404)
        return JSONResponse({"milestone": reference, "changes": [change_json(c) for c in changes]})

    @router.post("/milestones/{timeline}/{milestone}/done")
    async def milestone_done(
        timeline: str, milestone: str, body: DoneBody | None = None, authorization: str | None = Header(default=None)
    ) -> JSONResponse:
        """Record that a milestone is done; members waiting for it are told (an `opened` notice)."""
        refusal = refused(authorization)
        if refusal is not None:
            return refusal
        return await run_in_threadpool(complete, f"{timeline}/{milestone}", body or DoneBody())

    return router
