"""The console's outbox and log: search every message, read one as it is sent, retry, hold, release.

Routes only: the store side is delivery/outbox_log.py, the message delivery/showing.py.
See docs/console.md, "Outbox and log".
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (see console.py).
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tracker.config import Settings
from tracker.delivery.dispatcher import make_renderer
from tracker.delivery.outbox_log import KINDS, STATES, Action, LogQuery, act, find_row, may, search
from tracker.delivery.showing import show_message
from tracker.emails import Renderer
from tracker.i18n.languages import N_
from tracker.store.engine import transaction
from tracker.text import whole_number
from tracker.web.console_access import CSRF_FIELD, PREFIX, Console, RoleRule, Visitor
from tracker.web.forms import answer, form_fields, message

ACTIONS: tuple[Action, ...] = ("retry", "hold", "release")
Id = Annotated[int, Path(ge=1, lt=2**31)]  # a row id: larger numbers overflow the store's integers (a 500, not a 404)
MAX_FIELD = 320
STALE_FORM = N_("This form has expired. Go back, reload the page and send it again.")
DONE = {
    "retry": N_("The message is planned again and goes with the next pass."),
    "hold": N_("The message is held: it is not sent until someone releases it."),
    "release": N_("The message is released: it goes when its time comes."),
}
NOT_DONE = N_("Nothing changed: the message is no longer in a state that allows this. Its state is shown below.")


def add_outbox_routes(router: APIRouter, console: Console, settings: Settings) -> None:
    """The outbox pages (viewer) and its actions (secretary)."""
    Viewer = Annotated[Visitor, Depends(RoleRule(console, "viewer"))]  # noqa: N806
    Secretary = Annotated[Visitor, Depends(RoleRule(console, "secretary"))]  # noqa: N806
    renderer = lru_cache(maxsize=1)(lambda: make_renderer(settings))  # templates compiled on first use

    @router.get("/outbox", response_class=HTMLResponse)
    async def outbox(visitor: Viewer) -> Response:
        """Search the outbox and log by address, timeline/milestone, kind, state and date."""
        return await run_in_threadpool(show_outbox, console, visitor)

    @router.get("/outbox/{row_id}", response_class=HTMLResponse)
    async def outbox_row(row_id: Id, visitor: Viewer) -> Response:
        """One message: its rendered text and headers, its state, the server's reply or last error."""
        return await run_in_threadpool(show_row, console, visitor, row_id, renderer)

    @router.post("/outbox/{row_id}/{action}", response_class=HTMLResponse)
    async def outbox_action(row_id: Id, action: str, request: Request, visitor: Secretary) -> Response:
        """Retry a failed message, hold a planned one, release one held by hand."""
        fields = form_fields(await request.body())
        return await run_in_threadpool(do_action, console, visitor, row_id, action, fields)


def read_query(asked: Mapping[str, str]) -> tuple[LogQuery, list[str]]:
    """The search form's fields as a query; the problems with them (catalog entries, with the field)."""
    text = {name: asked.get(name, "").strip()[:MAX_FIELD] for name in ("address", "milestone", "kind", "state")}
    problems: list[str] = []
    timeline, _, milestone = text["milestone"].partition("/")
    kind = text["kind"] if text["kind"] in KINDS else ""
    state = text["state"] if text["state"] in STATES else ""
    if text["kind"] and not kind:
        problems.append(N_("Kind: choose one of the list."))
    if text["state"] and not state:
        problems.append(N_("State: choose one of the list."))
    since, until = day_of(asked.get("from", "")), day_of(asked.get("to", ""))
    if since is None or until is None:
        problems.append(N_("Dates: write them as YYYY-MM-DD."))
    before = asked.get("before", "")
    query = LogQuery(
        address=text["address"].lower(),
        timeline=timeline,
        milestone=milestone,
        kind=kind,
        state=state,
        since_at=start_of(since),
        until_at=start_of(until, 1),
        before_id=found if (found := whole_number(before, 10)) is not None and found < 2**31 else None,
    )
    return query, problems


def day_of(text: str) -> date | str | None:
    """A YYYY-MM-DD date; '' for none given; None when it does not read."""
    text = text.strip()
    if not text:
        return ""
    try:
        return date.fromisoformat(text[:10]) if len(text) == 10 else None
    except ValueError:
        return None


def start_of(day: date | str | None, days: int = 0) -> datetime | None:
    return datetime.combine(day, time(), UTC) + timedelta(days=days) if isinstance(day, date) else None


def show_outbox(console: Console, visitor: Visitor) -> Response:
    chosen = visitor.asked.language()
    query, problems = read_query(visitor.asked.query)
    with transaction(console.engine) as session:
        rows, more = search(session, query) if not problems else ([], False)
    after = None
    if more and rows:
        after = urlencode({**visitor.asked.query, "before": str(rows[-1].row.id)})
    assert visitor.signed_in is not None
    return answer("console/outbox.html.j2", chosen, visitor.asked, 422 if problems else 200,
                  title=chosen.language.gettext("Outbox and log"), rows=rows, fields=visitor.asked.query,
                  kinds=KINDS, states=STATES, problems=[chosen.language.gettext(p) for p in problems], after=after,
                  user=visitor.signed_in.user, csrf=console.csrf_token(visitor.browser))  # fmt: skip


def show_row(console: Console, visitor: Visitor, row_id: int, renderer: Callable[[], Renderer]) -> Response:
    chosen = visitor.asked.language()
    now = console.clock()
    with transaction(console.engine) as session:
        found = find_row(session, row_id)
        shown = show_message(session, renderer(), found.row, console.base_url, now) if found else None
    if found is None or shown is None:
        text = chosen.language.gettext("There is no message with this number.")
        return message(chosen, visitor.asked, N_("Not found"), text, 404)
    assert visitor.signed_in is not None
    actions = [a for a in ACTIONS if may(a, found.row, now)]
    done = visitor.asked.query.get("done", "")
    notice = DONE.get(done, NOT_DONE if done == "none" else "")
    return answer("console/outbox_row.html.j2", chosen, visitor.asked, title=chosen.language.gettext("Message"),
                  found=found, shown=shown, actions=actions, notice=chosen.language.gettext(notice) if notice else "",
                  user=visitor.signed_in.user, csrf=console.csrf_token(visitor.browser))  # fmt: skip


def do_action(console: Console, visitor: Visitor, row_id: int, action: str, fields: dict[str, object]) -> Response:
    chosen = visitor.asked.language()
    if not console.csrf_ok(visitor.browser, fields.get(CSRF_FIELD)):
        return message(chosen, visitor.asked, N_("Form expired"), chosen.language.gettext(STALE_FORM), 403)
    if action not in ACTIONS:
        text = chosen.language.gettext("There is no such action.")
        return message(chosen, visitor.asked, N_("Not found"), text, 404)
    assert visitor.signed_in is not None
    with transaction(console.engine, write=True) as session:
        done = act(session, action, row_id, visitor.signed_in.user.email, console.clock())
    return RedirectResponse(f"{PREFIX}/outbox/{row_id}?done={action if done else 'none'}", 303)
