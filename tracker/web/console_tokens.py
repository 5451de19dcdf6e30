"""The console's API tokens (admins): list, create (the token shown once, on the answer page), revoke.

The store side is accounts/api_tokens.py, as for `tracker users token`. See docs/console.md, "API tokens".
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (see console.py).
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tracker.accounts.api_tokens import (
    MAX_DAYS,
    TokenError,
    create_token,
    list_tokens,
    owner_of,
    revoke_token,
    token_event,
)
from tracker.accounts.roles import ROLES, Role
from tracker.accounts.users import UserError, find_user
from tracker.i18n.languages import N_
from tracker.store.audit import console_actor
from tracker.store.engine import transaction
from tracker.store.models import ApiToken
from tracker.text import whole_number
from tracker.web.console_access import CSRF_FIELD, PREFIX, Console, RoleRule, Visitor
from tracker.web.forms import answer, form_fields, message

Id = Annotated[int, Path(ge=1, lt=2**31)]
STALE_FORM = N_("This form has expired. Go back, reload the page and send it again.")
PROBLEMS = {
    "owner": N_("Owner: no user has this address. Add them first with `tracker users add`."),
    "name": N_("Name: 1 to 60 letters, digits, spaces, '.', '-' or '_', starting with a letter or a digit."),
    "taken": N_("Name: a token of this name exists. Choose another name, or revoke that token first."),
    "role": N_("Role: a token cannot have a role above its owner's."),
    "days": N_("Expires after: a whole number of days from 1 to 3650, or empty for never."),
}


def token_routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["console"], include_in_schema=False)
    Admin = Annotated[Visitor, Depends(RoleRule(console, "admin"))]  # noqa: N806

    @router.get("/tokens", response_class=HTMLResponse)
    async def tokens(visitor: Admin) -> Response:
        """Every API token (never the token itself), and the form to create one."""
        return await run_in_threadpool(show_tokens, console, visitor, typed_of({}), "", 200)

    @router.post("/tokens", response_class=HTMLResponse)
    async def token_created(request: Request, visitor: Admin) -> Response:
        """Create a token: the answer shows it, once."""
        fields = form_fields(await request.body())
        return await run_in_threadpool(make_token, console, visitor, fields)

    @router.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
    async def token_revoked(token_id: Id, request: Request, visitor: Admin) -> Response:
        """Revoke a token: the next request that uses it is refused."""
        fields = form_fields(await request.body())
        return await run_in_threadpool(revoke, console, visitor, token_id, fields)

    return router


def show_tokens(console: Console, visitor: Visitor, typed: dict[str, str], problem: str, status: int) -> Response:
    chosen = visitor.asked.language()
    with transaction(console.engine) as session:
        listed = list_tokens(session)
    assert visitor.signed_in is not None
    error = chosen.language.gettext(PROBLEMS[problem]) if problem else ""
    return answer("console/tokens.html.j2", chosen, visitor.asked, status, title=chosen.language.gettext("API tokens"),
                  tokens=listed, typed=typed, error=error, roles=ROLES, now=console.clock(),
                  user=visitor.signed_in.user, csrf=console.csrf_token(visitor.browser))  # fmt: skip


def typed_of(fields: dict[str, object]) -> dict[str, str]:
    """The form's text fields, bounded, to fill the form in again."""
    limits = {"owner": 320, "name": 60, "role": 12, "days": 5}
    return {name: str(fields.get(name) or "").strip()[:most] for name, most in limits.items()}


def make_token(console: Console, visitor: Visitor, fields: dict[str, object]) -> Response:
    chosen = visitor.asked.language()
    if not console.csrf_ok(visitor.browser, fields.get(CSRF_FIELD)):
        return message(chosen, visitor.asked, N_("Form expired"), chosen.language.gettext(STALE_FORM), 403)
    assert visitor.signed_in is not None
    typed = typed_of(fields)
    role: Role | None = next((r for r in ROLES if r == typed["role"]), None)
    days = whole_number(typed["days"], 9)
    if (typed["days"] and days is None) or (days is not None and not 1 <= days <= MAX_DAYS):
        return show_tokens(console, visitor, typed, "days", 422)
    saved = save_token(console, visitor.signed_in.user.email, typed, role, days)
    if isinstance(saved, str):
        return show_tokens(console, visitor, typed, saved, 422)
    row, token, owner = saved
    return answer("console/token_created.html.j2", chosen, visitor.asked, 201, title=chosen.language.gettext(
        "Token created"), token=token, row=row, owner=owner, user=visitor.signed_in.user,
        csrf=console.csrf_token(visitor.browser))  # fmt: skip


def save_token(
    console: Console, by: str, typed: dict[str, str], role: Role | None, days: int | None
) -> tuple[ApiToken, str, str] | str:
    """Create the token the form asks for (owner: *by* when empty): its row, the token, its owner's address; or
    the key of the problem in PROBLEMS."""
    now = console.clock()
    with transaction(console.engine, write=True) as session:
        try:
            owner = find_user(session, typed["owner"] or by)
            if owner is None:
                return "owner"
            row, token = create_token(session, owner, typed["name"], role, days, now)
        except UserError:
            return "owner"
        except TokenError as exc:
            return exc.reason
        session.add(token_event("api_token_created", row, owner.email, console_actor(by), now))
    return row, token, owner.email


def revoke(console: Console, visitor: Visitor, token_id: int, fields: dict[str, object]) -> Response:
    chosen = visitor.asked.language()
    if not console.csrf_ok(visitor.browser, fields.get(CSRF_FIELD)):
        return message(chosen, visitor.asked, N_("Form expired"), chosen.language.gettext(STALE_FORM), 403)
    assert visitor.signed_in is not None
    now = console.clock()
    with transaction(console.engine, write=True) as session:
        row = session.get(ApiToken, token_id)
        if row is not None and revoke_token(session, row, now):
            owner = owner_of(session, row)
            session.add(token_event("api_token_revoked", row, owner, console_actor(visitor.signed_in.user.email), now))
    if row is None:
        text = chosen.language.gettext(N_("There is no such token."))
        return message(chosen, visitor.asked, N_("Not found"), text, 404)
    return RedirectResponse(chosen.link(f"{PREFIX}/tokens"), 303)
