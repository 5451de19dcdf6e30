"""The console's subscribers: search, view, add, edit, suspend, resend confirmation, import and export CSV.

Routes only: the store side is subscribers/roster.py and registry.py (the CLI's checks), the
upload kept between preview and confirmation web/uploads.py. See docs/console.md, "Subscribers".
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (see console.py).
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from tracker.config import Settings
from tracker.delivery.outbox import queue_confirm, queue_confirms
from tracker.i18n.languages import N_
from tracker.store.audit import console_actor
from tracker.store.engine import transaction
from tracker.store.models import Subscriber
from tracker.subscribers.csvfiles import EXPORTED, write_rows
from tracker.subscribers.personal import erase_person, export_person
from tracker.subscribers.registry import SubscriberError, check_input, known_names, save
from tracker.subscribers.roster import (
    PAGE,
    STATES,
    ImportReport,
    check_import,
    recent_messages,
    save_import,
    search,
    set_suspended,
)
from tracker.web.console_access import CSRF_FIELD, PREFIX, Console, RoleRule, Visitor
from tracker.web.console_outbox import Id
from tracker.web.forms import FIELD_LABELS, answer, form_fields, message
from tracker.web.personal import download
from tracker.web.uploads import MAX_UPLOAD, Uploads, UploadTooLargeError

HERE = f"{PREFIX}/subscribers"
ACTIONS = ("suspend", "unsuspend", "confirm")
EDITED = ("name", "language", "timezone", "audiences", "timelines", "digest", "reminders")
STALE_FORM = N_("This form has expired. Go back, reload the page and send it again.")
DONE = {
    "added": N_("The subscriber is saved."),
    "updated": N_("The changes are saved."),
    "unchanged": N_("Nothing to change: the subscriber already had these choices."),
    "suspend": N_("The address is suspended: nothing is sent to it, and its planned messages are cancelled."),
    "unsuspend": N_("The address is confirmed again: its messages are planned with the next pass."),
    "confirm": N_("A confirmation email is queued."),
    "none": N_("Nothing changed: the subscriber is not in a state that allows this."),
    "limit": N_("No confirmation email queued: this address had one in the last 5 minutes, or 3 today."),
    "erased": N_("The subscriber is erased: nothing more is sent, and the logs keep only a reference."),
}
EXPORT_CHUNK = 1000
GONE = N_("This upload is gone: it was saved or dropped already, or it is over an hour old.")


def add_subscriber_routes(router: APIRouter, console: Console, settings: Settings) -> None:
    """The subscriber pages (viewer) and their changes, import and export (secretary)."""
    Viewer = Annotated[Visitor, Depends(RoleRule(console, "viewer"))]  # noqa: N806
    Secretary = Annotated[Visitor, Depends(RoleRule(console, "secretary"))]  # noqa: N806
    uploads, zone = Uploads(), settings.timezone

    @router.get("/subscribers", response_class=HTMLResponse)
    async def subscribers(visitor: Viewer) -> Response:
        """Search subscribers by address, name and state."""
        return await run_in_threadpool(show_list, console, visitor)

    @router.post("/subscribers", response_class=HTMLResponse)
    async def add(request: Request, visitor: Secretary) -> Response:
        """Add (or update) one subscriber, with the checks of `tracker subscribers add`."""
        fields = form_fields(await request.body())
        return await run_in_threadpool(add_subscriber, console, visitor, fields, zone)

    @router.get("/subscribers/export")
    async def export(visitor: Secretary) -> Response:
        """Every subscriber as CSV, streamed; cells a spreadsheet would run are neutralised."""
        return export_csv(console, visitor.asked.query.get("state", ""))

    @router.post("/subscribers/import", response_class=HTMLResponse)
    async def upload(request: Request, visitor: Secretary) -> Response:
        """Upload a CSV: see every bad row and what would change; nothing is saved yet."""
        try:
            form = await request.form(max_files=1, max_fields=10, max_part_size=4096)
        except MultiPartException:
            return refuse(visitor, N_("The upload could not be read."), 400)
        try:
            return await run_in_threadpool(preview_import, console, visitor, form, uploads, zone)
        finally:
            await form.close()  # its spooled temporary file: the upload is copied to our own by then

    @router.post("/subscribers/import/{upload}", response_class=HTMLResponse)
    async def confirm_import(upload: str, request: Request, visitor: Secretary) -> Response:
        """Save the good rows of an upload seen in preview (or drop it)."""
        fields = form_fields(await request.body())
        return await run_in_threadpool(apply_import, console, visitor, upload, fields, uploads, zone)

    @router.get("/subscribers/{subscriber_id}", response_class=HTMLResponse)
    async def subscriber(subscriber_id: Id, visitor: Viewer) -> Response:
        """One subscriber: their choices, state and latest messages."""
        return await run_in_threadpool(show_one, console, visitor, subscriber_id)

    @router.post("/subscribers/{subscriber_id}", response_class=HTMLResponse)
    async def edit(subscriber_id: Id, request: Request, visitor: Secretary) -> Response:
        """Change a subscriber's choices (not the address)."""
        fields = form_fields(await request.body())
        return await run_in_threadpool(edit_subscriber, console, visitor, subscriber_id, fields, zone)

    @router.get("/subscribers/{subscriber_id}/data")
    async def data(subscriber_id: Id, visitor: Secretary) -> Response:
        """Everything held about one subscriber, as the JSON file they get from their preferences page."""
        return await run_in_threadpool(download_data, console, visitor, subscriber_id)

    @router.post("/subscribers/{subscriber_id}/{action}", response_class=HTMLResponse)
    async def act(subscriber_id: Id, action: str, request: Request, visitor: Secretary) -> Response:
        """Suspend, unsuspend, send the confirmation email again, or erase (after a confirmation)."""
        fields = form_fields(await request.body())
        return await run_in_threadpool(act_on, console, visitor, subscriber_id, action, fields)


def refuse(visitor: Visitor, text: str, status: int) -> Response:
    chosen = visitor.asked.language()
    title = N_("Form expired") if text == STALE_FORM else N_("Not accepted")
    return message(chosen, visitor.asked, title, chosen.language.gettext(text), status)


def page(template: str, console: Console, visitor: Visitor, title: str, status: int = 200, **context: Any) -> Response:
    chosen = visitor.asked.language()
    assert visitor.signed_in is not None
    return answer(template, chosen, visitor.asked, status, title=chosen.language.gettext(title),
                  user=visitor.signed_in.user, csrf=console.csrf_token(visitor.browser), **context)  # fmt: skip


def show_list(console: Console, visitor: Visitor, *, error: str = "", status: int = 200,
              typed: dict[str, object] | None = None) -> Response:  # fmt: skip
    query = visitor.asked.query
    text, state = query.get("q", "")[:320], query.get("state", "")
    state = state if state in STATES else ""
    with transaction(console.engine) as session:
        found = search(session, text, state, query.get("after", "")[:320])
    after = found.subscribers[-1].email_key if found.more and found.subscribers else None
    done = query.get("done", "")
    notice = visitor.asked.language().language.gettext(DONE[done]) if done == "erased" else ""
    return page("console/subscribers.html.j2", console, visitor, N_("Subscribers"), status, found=found, q=text,
                notice=notice,
                state=state, states=STATES, after=after, error=error, typed=typed or {}, page_size=PAGE,
                max_upload=MAX_UPLOAD // (1024 * 1024))  # fmt: skip


def raw_of(fields: dict[str, object], names: tuple[str, ...]) -> dict[str, object]:
    """The form's fields as check_input reads them: lists as ;-separated text."""
    raw: dict[str, object] = {}
    for name in names:
        value = fields.get(name)
        if value is not None:
            raw[name] = ";".join(v for v in value if isinstance(v, str)) if isinstance(value, list) else value
    return raw


def problem_text(visitor: Visitor, exc: SubscriberError) -> str:
    """The problem, with the field named in the reader's words (the problem itself stays in English)."""
    chosen = visitor.asked.language()
    label = FIELD_LABELS.get(exc.field)
    return f"{chosen.language.gettext(label)}: {exc}" if label else str(exc)


def add_subscriber(console: Console, visitor: Visitor, fields: dict[str, object], zone: str) -> Response:
    if not console.csrf_ok(visitor.browser, fields.get(CSRF_FIELD)):
        return refuse(visitor, STALE_FORM, 403)
    raw = raw_of(fields, ("email", "name", "language", "timezone", "audiences", "timelines"))
    now = console.clock()
    with transaction(console.engine, write=True) as session:
        try:
            data = check_input(raw, zone=zone, known=known_names(session))
        except SubscriberError as exc:
            error = problem_text(visitor, exc)
        else:
            person, outcome = save(
                session, data, confirmed=fields.get("confirmed") == "1", now=now, actor=actor_of(visitor)
            )
            queue_confirm(session, person, now)
            return RedirectResponse(f"{HERE}/{person.id}?done={outcome}", 303)
    return show_list(console, visitor, error=error, status=422, typed=raw)


def show_one(console: Console, visitor: Visitor, subscriber_id: int, *, error: str = "", status: int = 200) -> Response:
    with transaction(console.engine) as session:
        person = session.get(Subscriber, subscriber_id)
        messages = recent_messages(session, subscriber_id) if person else []
    if person is None:
        chosen = visitor.asked.language()
        text = chosen.language.gettext("There is no subscriber with this number.")
        return message(chosen, visitor.asked, N_("Not found"), text, 404)
    done = visitor.asked.query.get("done", "")
    notice = visitor.asked.language().language.gettext(DONE[done]) if done in DONE else ""
    return page("console/subscriber.html.j2", console, visitor, N_("Subscriber"), status, person=person,
                messages=messages, notice=notice, error=error)  # fmt: skip


def edit_subscriber(console: Console, visitor: Visitor, subscriber_id: int, fields: dict[str, object],
                    zone: str) -> Response:  # fmt: skip
    if not console.csrf_ok(visitor.browser, fields.get(CSRF_FIELD)):
        return refuse(visitor, STALE_FORM, 403)
    now = console.clock()
    with transaction(console.engine, write=True) as session:
        person = session.get(Subscriber, subscriber_id)
        if person is None:
            return show_one(console, visitor, subscriber_id)
        try:
            raw = {"email": person.email, **raw_of(fields, EDITED)}
            data = check_input(raw, zone=zone, known=known_names(session))
        except SubscriberError as exc:
            error = problem_text(visitor, exc)
        else:
            _, outcome = save(session, data, confirmed=False, now=now, actor=actor_of(visitor))
            return RedirectResponse(f"{HERE}/{subscriber_id}?done={outcome}", 303)
    return show_one(console, visitor, subscriber_id, error=error, status=422)


def act_on(console: Console, visitor: Visitor, subscriber_id: int, action: str, fields: dict[str, object]) -> Response:
    if not console.csrf_ok(visitor.browser, fields.get(CSRF_FIELD)):
        return refuse(visitor, STALE_FORM, 403)
    if action == "erase":
        return erase_subscriber(console, visitor, subscriber_id, fields.get("confirm") == "erase")
    if action not in ACTIONS:
        return refuse(visitor, N_("There is no such action."), 404)
    assert visitor.signed_in is not None
    now, by = console.clock(), visitor.signed_in.user.email
    with transaction(console.engine, write=True) as session:
        person = session.get(Subscriber, subscriber_id)
        if person is None:
            return show_one(console, visitor, subscriber_id)
        if action == "confirm":
            done = (
                "none" if person.state != "pending" else "confirm" if queue_confirm(session, person, now) else "limit"
            )
        else:
            done = action if set_suspended(session, person, action == "suspend", by, now) else "none"
    return RedirectResponse(f"{HERE}/{subscriber_id}?done={done}", 303)


def download_data(console: Console, visitor: Visitor, subscriber_id: int) -> Response:
    with transaction(console.engine) as session:
        person = session.get(Subscriber, subscriber_id)
        if person is None:
            return show_one(console, visitor, subscriber_id)
        data = export_person(session, person, console.clock())
    return download(data, f"subscriber-{subscriber_id}-data.json")


def erase_subscriber(console: Console, visitor: Visitor, subscriber_id: int, confirmed: bool) -> Response:
    """Ask first (the page says what goes and what stays); erase once the question's button is pressed."""
    with transaction(console.engine, write=confirmed) as session:
        person = session.get(Subscriber, subscriber_id)
        if person is None:
            return show_one(console, visitor, subscriber_id)
        if not confirmed:
            return page("console/subscriber_erase.html.j2", console, visitor, N_("Erase a subscriber"), person=person)
        erase_person(session, person, console.secret, console.clock(), actor_of(visitor))
    return RedirectResponse(f"{HERE}?done=erased", 303)


SAFE_NAME = re.compile(r"[^\w.\- ]")


def file_name(upload: UploadFile) -> str:
    """The uploaded file's name as problems name it: its last part, printable, short."""
    name = Path((upload.filename or "upload.csv").replace("\\", "/")).name
    return SAFE_NAME.sub("_", name)[:80] or "upload.csv"


def preview_import(console: Console, visitor: Visitor, form: Any, uploads: Uploads, zone: str) -> Response:
    if not console.csrf_ok(visitor.browser, form.get(CSRF_FIELD)):
        return refuse(visitor, STALE_FORM, 403)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        return refuse(visitor, N_("Choose a CSV file to import."), 422)
    assert visitor.signed_in is not None and visitor.signed_in.user.id is not None
    try:
        key = uploads.keep(upload.file, visitor.signed_in.user.id)
    except UploadTooLargeError:
        return refuse(visitor, N_("The file is larger than 10 MB: split it, and import each part."), 413)
    name, confirmed = file_name(upload), form.get("confirmed") == "1"
    report = read_upload(console, uploads.find(visitor.signed_in.user.id, key), name, zone, confirmed, save=False)
    return page("console/subscribers_import.html.j2", console, visitor, N_("Import subscribers"), report=report,
                shown_name=name, upload=key, confirmed=confirmed, saved=False)  # fmt: skip


def read_upload(console: Console, path: Path | None, name: str, zone: str, confirmed: bool, *,
                save: bool, actor: str = "") -> ImportReport:  # fmt: skip
    assert path is not None
    now = console.clock()
    with path.open(encoding="utf-8-sig", newline="") as stream:
        if save:
            return save_import(console.engine, stream, name, zone=zone, confirmed=confirmed, now=now,
                               invite=queue_confirms, actor=actor)  # fmt: skip
        return check_import(console.engine, stream, name, zone=zone, confirmed=confirmed, now=now)


def apply_import(console: Console, visitor: Visitor, key: str, fields: dict[str, object], uploads: Uploads,
                 zone: str) -> Response:  # fmt: skip
    if not console.csrf_ok(visitor.browser, fields.get(CSRF_FIELD)):
        return refuse(visitor, STALE_FORM, 403)
    assert visitor.signed_in is not None and visitor.signed_in.user.id is not None
    path = uploads.find(visitor.signed_in.user.id, key)
    if path is None:
        return refuse(
            visitor, N_("This upload is gone: it was saved or dropped already, or it is over an hour old."), 410
        )
    name = str(fields.get("name", "upload.csv"))[:80]
    try:
        if fields.get("drop"):
            return RedirectResponse(HERE, 303)
        report = read_upload(
            console, path, name, zone, fields.get("confirmed") == "1", save=True, actor=actor_of(visitor)
        )
    finally:
        path.unlink(missing_ok=True)
    return page("console/subscribers_import.html.j2", console, visitor, N_("Import subscribers"), report=report,
                shown_name=name, upload=key, confirmed=False, saved=True)  # fmt: skip


def export_csv(console: Console, state: str) -> Response:
    state = state if state in STATES else ""
    headers = {"Content-Disposition": 'attachment; filename="subscribers.csv"'}
    return StreamingResponse(export_lines(console, state), media_type="text/csv; charset=utf-8", headers=headers)


def export_lines(console: Console, state: str) -> Iterator[str]:
    """The CSV a chunk of subscribers at a time, each chunk read in its own short transaction."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    after: str | None = None
    while True:
        query = select(*(table.c[name] for name in EXPORTED), table.c.email_key).order_by(table.c.email_key)
        if state:
            query = query.where(table.c.state == state)
        if after is not None:
            query = query.where(table.c.email_key > after)
        with transaction(console.engine) as session:
            rows = [dict(row) for row in session.execute(query.limit(EXPORT_CHUNK)).mappings()]
        buffer = io.StringIO()
        write_rows(buffer, rows)
        text = buffer.getvalue()
        yield text if after is None else text.partition("\n")[2]  # the header once, at the top
        if len(rows) < EXPORT_CHUNK:
            return
        after = str(rows[-1]["email_key"])


def actor_of(visitor: Visitor) -> str:
    """Who acts, as the audit log records it."""
    assert visitor.signed_in is not None  # the route's role rule let only a signed-in user in
    return console_actor(visitor.signed_in.user.email)
