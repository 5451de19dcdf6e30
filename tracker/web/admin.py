"""The secretariat's API: record a completion over HTTP (a personal bearer token), as `tracker done` does.

A completion is an event like any other: the running dispatcher turns it into `opened`
notices for the audience that was waiting for it, and moves `.done` dependents.
The token is checked before the body is read; the body is read within the Guard's cap.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from tracker.clock import Clock
from tracker.display import change_json
from tracker.store.engine import transaction
from tracker.timelines.completions import (
    AlreadyDoneError,
    CompletionError,
    CompletionInputError,
    DoneRequest,
    NothingToReopenError,
    ReopenRequest,
    record_done,
    record_reopen,
)
from tracker.timelines.dates import DateError, parse_when, skipped_time
from tracker.timelines.stored import load_views
from tracker.web.api_auth import DEPRECATED, ApiGate, log
from tracker.web.forms import BodyError, json_object
from tracker.web.limits import TextJSONResponse, validation_problem
from tracker.web.ratelimit import client_key

Body = TypeVar("Body", bound=BaseModel)


class ReopenBody(BaseModel):
    """Why the completion is removed; optional."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=2000, description="Why: recorded, and quoted to members told it opened")
    occurrence: str | None = Field(
        default=None, max_length=10, description="A repeating milestone's occurrence (YYYY-MM-DD); default: the latest"
    )


class DoneBody(BaseModel):
    """When and how a milestone was done; all optional."""

    model_config = ConfigDict(extra="forbid")

    at: str | None = Field(
        default=None, max_length=40, description="YYYY-MM-DD or YYYY-MM-DDTHH:MM (local time, 1900–2200); default: now"
    )
    note: str = Field(default="", max_length=2000, description="Shown with the completion")
    link: str = Field(default="", max_length=2000, description="e.g. the posted document")
    amend: bool = Field(default=False, description="Change the recorded completion; fields not sent stay as they are")


def has_bearer(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header carries `Bearer <token>` (compared in constant time)."""
    scheme, _, given = (authorization or "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@dataclass(frozen=True)
class Secretariat:
    """What the admin routes do, once the token is checked and the body read; *actor* names who (the token)."""

    engine: Engine
    zone: str
    clock: Clock

    def complete(self, reference: str, body: DoneBody, actor: str) -> JSONResponse:
        try:
            done_at = done_time(body.at, self.zone) if body.at else self.clock()
        except DateError as exc:
            return at_problem(str(exc))
        day = datetime.fromisoformat(body.at.strip()).date() if body.at and len(body.at.strip()) == 10 else None
        try:
            with transaction(self.engine, write=True) as session:
                views = {f"{v.timeline_id}/{v.key}": v for v in load_views(session)}
                keep = frozenset({"at", "note", "link"} - body.model_fields_set)
                request = DoneRequest(reference, done_at, day, body.note, body.link, "api", body.amend, keep, who=actor)
                changes = record_done(session, request, views.get(reference), now=self.clock())
        except AlreadyDoneError as exc:
            recorded = {"at": exc.done_at.isoformat(), "note": exc.note, "link": exc.link}
            fix = 'send "amend": true to change its time, note or link'
            return JSONResponse({"detail": f"{exc} ({fix})", "done": recorded}, 409)
        except CompletionInputError as exc:
            return at_problem(str(exc).removeprefix("at: ")) if exc.field == "at" else field_problem(str(exc))
        except CompletionError as exc:
            return JSONResponse({"detail": str(exc)}, 404)
        return JSONResponse({"milestone": reference, "changes": [change_json(c) for c in changes]})

    def reopen(self, reference: str, body: ReopenBody, actor: str) -> JSONResponse:
        try:
            with transaction(self.engine, write=True) as session:
                request = ReopenRequest(reference, body.note, body.occurrence, who=actor)
                changes = record_reopen(session, request, now=self.clock())
        except CompletionInputError as exc:
            return field_problem(str(exc))
        except NothingToReopenError as exc:
            return JSONResponse({"detail": str(exc)}, 409)
        except CompletionError as exc:
            return JSONResponse({"detail": str(exc)}, 404)
        return JSONResponse({"milestone": reference, "changes": [change_json(c) for c in changes]})


def admin_routes(engine: Engine, gate: ApiGate, zone: str, clock: Clock) -> APIRouter:
    """Routes that change the timelines' state; every one needs `Authorization: Bearer <token>` of a secretary or
    admin (a personal token; the old TRACKER_ADMIN_TOKEN for one more release)."""
    router = APIRouter(prefix="/api", tags=["admin"])
    secretariat = Secretariat(engine, zone, clock)
    if gate.legacy:
        log.warning(DEPRECATED)

    async def act(
        action: Callable[[str, Body, str], JSONResponse], model: type[Body], reference: str, request: Request,
        authorization: str | None,
    ) -> JSONResponse:  # fmt: skip
        """Check the token, then read the body (never before), then do *action*."""
        client = client_key(request.client.host if request.client else None)
        admitted = await run_in_threadpool(gate.admit, authorization, client)
        if isinstance(admitted, JSONResponse):
            return admitted
        body = read_body(model, await request.body())
        answer = body if isinstance(body, JSONResponse) else await run_in_threadpool(action, reference, body,
                                                                                     admitted.actor)  # fmt: skip
        if admitted.deprecated:
            answer.headers["Deprecation"] = "true"
        return answer

    refusals: dict[int | str, dict[str, Any]] = {401: {"description": "No, unknown, revoked or expired token"},
                                                 403: {"description": "The token's role is viewer"},
                                                 409: {"description": "Done already: amend it"},
                                                 422: {"description": "A field is wrong"},
                                                 429: {"description": "Too many refused tokens"}}  # fmt: skip

    @router.post("/milestones/{timeline}/{milestone}/done", openapi_extra=DONE_BODY, responses=refusals)
    async def milestone_done(
        timeline: str, milestone: str, request: Request, authorization: str | None = Header(default=None)
    ) -> JSONResponse:
        """Record that a milestone is done; members waiting for it are told (an `opened` notice)."""
        return await act(secretariat.complete, DoneBody, f"{timeline}/{milestone}", request, authorization)

    @router.post("/milestones/{timeline}/{milestone}/reopen", openapi_extra=REOPEN_BODY, responses=refusals)
    async def milestone_reopen(
        timeline: str, milestone: str, request: Request, authorization: str | None = Header(default=None)
    ) -> JSONResponse:
        """Remove a completion made by mistake; `.done` dependents move back; members told it opened are corrected."""
        return await act(secretariat.reopen, ReopenBody, f"{timeline}/{milestone}", request, authorization)

    return router


# The body is read by hand (after the token check), so the schema is given here for /openapi.json.
DONE_BODY: dict[str, Any] = {
    "requestBody": {"required": False, "content": {"application/json": {"schema": DoneBody.model_json_schema()}}}
}


REOPEN_BODY: dict[str, Any] = {
    "requestBody": {"required": False, "content": {"application/json": {"schema": ReopenBody.model_json_schema()}}}
}


def read_body(model: type[Body], raw: bytes) -> Body | JSONResponse:
    """The body a request sends (an empty one: every default), or a 422 naming the field at fault."""
    try:
        return model.model_validate(json_object(raw)) if raw.strip() else model()
    except ValidationError as exc:
        return validation_problem([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])
    except BodyError as exc:
        return validation_problem([{"loc": ("body", exc.field), "msg": str(exc), "type": "value_error"}])


def done_time(at: str, zone: str) -> datetime:
    """*at* as an instant; raise DateError for text that is not a date, a year outside 1900–2200, or a skipped time."""
    skipped = skipped_time(at, zone)  # 02:30 the night the clocks go forward names no instant
    if skipped is not None:
        raise DateError(skipped)
    return parse_when(at, zone)  # it bounds the year: 0001-01-01 east of UTC would fall before year 1


def at_problem(message: str) -> TextJSONResponse:
    return TextJSONResponse({"detail": f"at: {message}"}, 422)


def field_problem(message: str) -> TextJSONResponse:
    """A 422 whose detail starts with the field at fault ('note: …', 'link: …')."""
    return TextJSONResponse({"detail": message}, 422)
