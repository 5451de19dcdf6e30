"""The console's timeline pages: each milestone's state, and its actions (mark done, amend, reopen).

Each action is a form, then a confirmation page that says what will change and what will be
sent to whom (delivery/rehearsal.py: the action done and rolled back), then the same POST with
`confirm` set, which records it exactly as `tracker done`/`tracker reopen` do, by the signed-in
user ('console:EMAIL' on its events). See docs/console.md.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (see console.py).
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from tracker.accounts.roles import allows
from tracker.delivery.rehearsal import Rehearsal, rehearse
from tracker.i18n.languages import N_, Language
from tracker.i18n.wording import audiences_text, day_text, time_text
from tracker.store.audit import console_actor
from tracker.store.engine import transaction
from tracker.store.models import User
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
from tracker.timelines.dates import DateError, get_zone
from tracker.timelines.diff import Change
from tracker.timelines.screening import screen_views
from tracker.timelines.states import Process
from tracker.timelines.stored import load_views
from tracker.timelines.views import MilestoneView, timeline_title_in, title_in
from tracker.web.admin import done_time
from tracker.web.console_access import CSRF_FIELD, PREFIX, Console, RoleRule, Visitor
from tracker.web.forms import answer, form_fields, message
from tracker.web.pages import Line, list_lines, picture_of
from tracker.web.picture import render_svg

ACTIONS = ("done", "amend", "reopen")
LONGEST = 2000  # characters of a note or link taken from a form; record_done refuses longer ones by name
STALE_FORM = N_("This form has expired. Go back, reload the page and send it again.")


@dataclass(frozen=True)
class Step:
    """One milestone occurrence on the console's timeline page, with the actions it offers."""

    key: str
    line: Line
    done: bool
    open: bool  # neither done nor cancelled: it can be marked done


@dataclass(frozen=True)
class ActionForm:
    """What the action form holds: given by the person, or the recorded completion when amending."""

    at: str = ""
    note: str = ""
    link: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def timeline_routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=f"{PREFIX}/timelines", tags=["console"], include_in_schema=False)
    Viewer = Annotated[Visitor, Depends(RoleRule(console, "viewer"))]  # noqa: N806
    Secretary = Annotated[Visitor, Depends(RoleRule(console, "secretary"))]  # noqa: N806

    @router.get("", response_class=HTMLResponse)
    async def timelines(visitor: Viewer) -> Response:
        """Every timeline, with how many of its steps are late."""
        return await run_in_threadpool(show_list, console, visitor)

    @router.get("/{timeline_id}", response_class=HTMLResponse)
    async def timeline(timeline_id: str, visitor: Viewer) -> Response:
        """One timeline: its picture, each milestone's state and completion, and the actions."""
        return await run_in_threadpool(show_timeline, console, visitor, timeline_id)

    def form_route(action: str) -> None:
        async def show(timeline_id: str, milestone: str, visitor: Secretary) -> Response:
            return await run_in_threadpool(show_form, console, visitor, action, f"{timeline_id}/{milestone}")

        async def sent(timeline_id: str, milestone: str, request: Request, visitor: Secretary) -> Response:
            fields = form_fields(await request.body())
            return await run_in_threadpool(act, console, visitor, action, f"{timeline_id}/{milestone}", fields)

        path = f"/{{timeline_id}}/{{milestone}}/{action}"
        router.add_api_route(path, show, methods=["GET"], response_class=HTMLResponse, name=f"{action}_form")
        router.add_api_route(path, sent, methods=["POST"], response_class=HTMLResponse, name=f"{action}_sent")

    for action in ACTIONS:
        form_route(action)
    return router


def stored_views(console: Console) -> list[MilestoneView]:
    with transaction(console.engine) as session:
        return screen_views(load_views(session))


def show_list(console: Console, visitor: Visitor) -> Response:
    chosen, user = visitor.asked.language(), signed_in_user(visitor)
    views = stored_views(console)
    process = Process(views, now=console.clock(), late_days=console.late_days)
    late = {item.milestone.timeline_id for item in process.late()}
    listed: dict[str, tuple[str, int]] = {}
    for view in views:
        if view.status != "removed":
            title, count = listed.get(view.timeline_id, (timeline_title_in(view, chosen.code), 0))
            listed[view.timeline_id] = (title, count + 1)
    rows = [(tid, title, count, tid in late) for tid, (title, count) in sorted(listed.items())]
    return answer("console/timelines.html.j2", chosen, visitor.asked, title=chosen.language.gettext("Timelines"),
                  rows=rows, user=user, csrf=console.csrf_token(visitor.browser))  # fmt: skip


def show_timeline(console: Console, visitor: Visitor, timeline_id: str) -> Response:
    chosen, user = visitor.asked.language(), signed_in_user(visitor)
    views = stored_views(console)
    mine = [v for v in views if v.timeline_id == timeline_id and v.status != "removed"]
    if not mine:
        return unknown(console, visitor, timeline_id)
    process = Process(views, now=console.clock(), late_days=console.late_days)
    picture = picture_of(mine, process)
    marks = [(row.view.key, mark) for row in picture.rows for mark in row.marks]
    steps = [Step(key, line, mark.standing.completion is not None, mark.state not in ("done", "cancelled"))
             for (key, mark), line in zip(marks, list_lines(picture, chosen.language), strict=True)]  # fmt: skip
    return answer("console/timeline.html.j2", chosen, visitor.asked, title=timeline_title_in(mine[0], chosen.code),
                  timeline_id=timeline_id, steps=steps, svg=Markup(render_svg(picture, language=chosen.language)),
                  may_act=allows(user.role, "secretary"), user=user,
                  csrf=console.csrf_token(visitor.browser))  # fmt: skip


def show_form(console: Console, visitor: Visitor, action: str, reference: str) -> Response:
    view = find_view(console, reference)
    if view is None:
        return unknown(console, visitor, reference)
    return form_page(console, visitor, action, view, recorded_form(view, action, console.zone))


def recorded_form(view: MilestoneView, action: str, zone: str) -> ActionForm:
    """An amendment starts from what is recorded (its time on *zone*'s clock, as the form reads it); the
    other forms start empty."""
    completion = view.completions.get("")
    if action != "amend" or completion is None:
        return ActionForm()
    at = completion.done_at.astimezone(get_zone(zone)).strftime("%Y-%m-%dT%H:%M")
    return ActionForm(at, completion.note, completion.link)


def act(console: Console, visitor: Visitor, action: str, reference: str, fields: dict[str, object]) -> Response:
    """Check the form; without `confirm`, show what would happen; with it, do it and go back to the timeline."""
    chosen = visitor.asked.language()
    if not console.csrf_ok(visitor.browser, fields.get(CSRF_FIELD)):
        return message(chosen, visitor.asked, N_("Form expired"), chosen.language.gettext(STALE_FORM), 403)
    view = find_view(console, reference)
    if view is None:
        return unknown(console, visitor, reference)
    given = ActionForm(text_of(fields, "at", 40), text_of(fields, "note", LONGEST), text_of(fields, "link", LONGEST))
    try:
        perform = action_of(console, visitor, action, reference, view, given)
    except DateError as exc:
        return form_page(console, visitor, action, view, with_error(given, "at", str(exc)), 422)
    try:
        if fields.get("confirm") == "1":
            with transaction(console.engine, write=True) as session:
                perform(session)
            return RedirectResponse(f"{PREFIX}/timelines/{view.timeline_id}#{view.key}", 303)
        rehearsal = rehearse(console.engine, perform, now=console.clock())
    except CompletionError as exc:
        return refused(console, visitor, action, view, given, exc)
    return confirm_page(console, visitor, action, view, given, rehearsal)


def action_of(console: Console, visitor: Visitor, action: str, reference: str, view: MilestoneView,
              given: ActionForm) -> Callable[[Session], list[Change]]:  # fmt: skip
    """The action as `tracker done`/`done --amend`/`reopen` runs it, by this user; DateError for a bad time."""
    who, now = console_actor(signed_in_user(visitor).email), console.clock()
    if action == "reopen":
        request = ReopenRequest(reference, given.note, None, who=who)
        return lambda session: record_reopen(session, request, now=now)
    at = given.at.strip()
    done_at = done_time(at, console.zone) if at else now
    day = datetime.fromisoformat(at).date() if len(at) == 10 else None
    # An amendment whose time is left as the form showed it keeps the recorded one (a plain date stays one).
    kept = action == "amend" and at in ("", recorded_form(view, action, console.zone).at)
    keep = frozenset({"at"}) if kept else frozenset()
    done = DoneRequest(reference, done_at, day, given.note, given.link, "console", action == "amend", keep, who=who)
    return lambda session: record_done(session, done, view, now=now)


def refused(console: Console, visitor: Visitor, action: str, view: MilestoneView, given: ActionForm,
            exc: CompletionError) -> Response:  # fmt: skip
    """The form again, saying what is wrong and where: the time, the note, the link, or the step's state."""
    language = visitor.asked.language().language
    if isinstance(exc, CompletionInputError):
        text = str(exc).removeprefix(f"{exc.field}: ")
        return form_page(console, visitor, action, view, with_error(given, exc.field, text), 422)
    if isinstance(exc, AlreadyDoneError):
        text = language.gettext("This step is done already: amend its completion instead.")
    elif isinstance(exc, NothingToReopenError):
        text = language.gettext("This completion cannot be reopened here: it is not recorded, or its file records it.")
    else:
        text = language.gettext("This step is not done yet: mark it done instead.")
    return form_page(console, visitor, action, view, with_error(given, "", text), 409)


def with_error(given: ActionForm, name: str, text: str) -> ActionForm:
    return ActionForm(given.at, given.note, given.link, {name: text})


def form_page(console: Console, visitor: Visitor, action: str, view: MilestoneView, given: ActionForm,
              status: int = 200) -> Response:  # fmt: skip
    chosen = visitor.asked.language()
    return answer("console/timeline_action.html.j2", chosen, visitor.asked, status,
                  title=action_title(action, view, chosen.language), action=action, view=view, form=given,
                  zone=console.zone, user=signed_in_user(visitor), csrf=console.csrf_token(visitor.browser),
                  back=f"{PREFIX}/timelines/{view.timeline_id}")  # fmt: skip


def confirm_page(console: Console, visitor: Visitor, action: str, view: MilestoneView, given: ActionForm,
                 rehearsal: Rehearsal) -> Response:  # fmt: skip
    chosen = visitor.asked.language()
    language = chosen.language
    titles = {(v.timeline_id, v.key): title_in(v, language.code) for v in stored_views(console)}
    changes = [(titles.get((c.timeline_id, c.milestone_key or ""), c.title), c.kind, when_of(c.old_at, c, language),
                when_of(c.new_at, c, language)) for c in rehearsal.changes]  # fmt: skip
    notices = [(n.kind, title_in(n.about, language.code), n.subscribers, n.withdrawn, audience_of(n.about, language))
               for n in rehearsal.notices]  # fmt: skip
    return answer("console/timeline_confirm.html.j2", chosen, visitor.asked,
                  title=action_title(action, view, language), action=action, view=view, form=given,
                  changes=changes, notices=notices, user=signed_in_user(visitor),
                  csrf=console.csrf_token(visitor.browser), back=f"{PREFIX}/timelines/{view.timeline_id}")  # fmt: skip


def action_title(action: str, view: MilestoneView, language: Language) -> str:
    title = title_in(view, language.code)
    if action == "reopen":
        return language.gettext("Reopen “{title}”", title=title)
    if action == "amend":
        return language.gettext("Amend the completion of “{title}”", title=title)
    return language.gettext("Mark “{title}” done", title=title)


def when_of(at: datetime | None, change: Change, language: Language) -> str:
    if at is None:
        return ""
    day = day_text(at, change.zone, language)
    return day if change.all_day and change.kind not in ("completed", "amended", "reopened") else (
        f"{day} {time_text(at, change.zone, language)}")  # fmt: skip


def audience_of(view: MilestoneView, language: Language) -> str:
    return audiences_text([view.owner] if view.owner else [], language)


def find_view(console: Console, reference: str) -> MilestoneView | None:
    timeline_id, _, key = reference.partition("/")
    found = [v for v in stored_views(console) if (v.timeline_id, v.key) == (timeline_id, key)]
    return found[0] if found and found[0].status != "removed" else None


def unknown(console: Console, visitor: Visitor, asked: str) -> Response:
    chosen = visitor.asked.language()
    text = chosen.language.gettext("There is no timeline or milestone “{asked}”.", asked=asked[:100])
    return message(chosen, visitor.asked, N_("Not found"), text, 404)


def text_of(fields: dict[str, object], name: str, longest: int) -> str:
    """A text field, cut to *longest* + 1 characters (one more than allowed: the check says it is too long)."""
    value = fields.get(name)
    return value[: longest + 1] if isinstance(value, str) else ""


def signed_in_user(visitor: Visitor) -> User:
    assert visitor.signed_in is not None  # the route's role rule let only a signed-in user in
    return visitor.signed_in.user
