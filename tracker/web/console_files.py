"""The console's timeline files: what the schedules folder holds and how it compares with the store, and a
dry run of an uploaded file (what `tracker validate` and `tracker plan` would say; nothing applied).

Routes only: the folder is read by timelines/loaded.py, the upload planned by delivery/dry_run.py.
See docs/console.md, "Timeline files".
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (see console.py).
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from tracker.accounts.roles import allows
from tracker.config import Settings
from tracker.delivery.dry_run import DryRun, dry_run
from tracker.i18n.languages import N_, Language
from tracker.i18n.wording import day_text, time_text
from tracker.timelines.diff import Change
from tracker.timelines.files import MAX_FILE_BYTES
from tracker.timelines.loaded import FolderCache, Reading
from tracker.web.console_access import CSRF_FIELD, Console, RoleRule, Visitor
from tracker.web.console_timelines import when_of
from tracker.web.forms import answer, message

STALE_FORM = N_("This form has expired. Go back, reload the page and send it again.")
SAFE_NAME = re.compile(r"[^\w.\- ]")
MAX_SIZE_MB = MAX_FILE_BYTES // 1_000_000


def add_file_routes(router: APIRouter, console: Console, settings: Settings) -> None:
    """The timeline files page (viewer) and its dry run of an upload (secretary)."""
    Viewer = Annotated[Visitor, Depends(RoleRule(console, "viewer"))]  # noqa: N806
    Secretary = Annotated[Visitor, Depends(RoleRule(console, "secretary"))]  # noqa: N806
    reading = Reading(settings.schedules, settings.timezone, tuple(settings.default_reminders()),
                      settings.work_calendar())  # fmt: skip
    cache = FolderCache()

    @router.get("/files", response_class=HTMLResponse)
    async def files(visitor: Viewer) -> Response:
        """Every timeline file, its timelines, how it compares with the store, its problems."""
        return await run_in_threadpool(show_files, console, visitor, reading, cache)

    @router.post("/files/dry-run", response_class=HTMLResponse)
    async def upload(request: Request, visitor: Secretary) -> Response:
        """Upload one YAML file: what validate and plan would say for it; nothing is applied."""
        try:
            form = await request.form(max_files=1, max_fields=5, max_part_size=4096)
        except MultiPartException:
            return refuse(visitor, N_("The upload could not be read."), 400)
        try:
            return await run_in_threadpool(show_dry_run, console, visitor, reading, form)
        finally:
            await form.close()


def refuse(visitor: Visitor, text: str, status: int) -> Response:
    chosen = visitor.asked.language()
    title = N_("Form expired") if text == STALE_FORM else N_("Not accepted")
    return message(chosen, visitor.asked, title, chosen.language.gettext(text), status)


def page(template: str, console: Console, visitor: Visitor, title: str, status: int = 200, **context: Any) -> Response:
    chosen = visitor.asked.language()
    assert visitor.signed_in is not None  # the route's role rule let only a signed-in user in
    user = visitor.signed_in.user
    return answer(template, chosen, visitor.asked, status, title=chosen.language.gettext(title), user=user,
                  csrf=console.csrf_token(visitor.browser), may_upload=allows(user.role, "secretary"),
                  max_mb=MAX_SIZE_MB, **context)  # fmt: skip


def show_files(console: Console, visitor: Visitor, reading: Reading, cache: FolderCache) -> Response:
    now = console.clock()
    report = cache.report_for(console.engine, reading, now)
    language = visitor.asked.language().language
    synced = moment(report.last_sync.at, console.zone, language) if report.last_sync else ""
    return page("console/files.html.j2", console, visitor, N_("Timeline files"), report=report, synced=synced)


def show_dry_run(console: Console, visitor: Visitor, reading: Reading, form: Any) -> Response:
    if not console.csrf_ok(visitor.browser, form.get(CSRF_FIELD)):
        return refuse(visitor, STALE_FORM, 403)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        return refuse(visitor, N_("Choose a YAML file to check."), 422)
    data = upload.file.read(MAX_FILE_BYTES + 1)  # one byte past the limit is enough to say it is too big
    result = dry_run(console.engine, reading, file_name(upload), data, now=console.clock())
    language = visitor.asked.language().language
    return page("console/files_dry_run.html.j2", console, visitor, N_("Dry run of a timeline file"), result=result,
                changes=change_rows(result, result.changes or [], language),
                elsewhere=change_rows(result, result.elsewhere, language))  # fmt: skip


def file_name(upload: UploadFile) -> str:
    """The uploaded file's name as problems name it: its last part, printable, short, ending .yaml or .yml."""
    name = SAFE_NAME.sub("_", Path((upload.filename or "").replace("\\", "/")).name)[:80].strip()
    name = name if name and not name.startswith(".") else "upload.yaml"
    return name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"


def change_rows(result: DryRun, changes: list[Change], language: Language) -> list[tuple[Any, ...]]:
    """Each change as the page shows it: what, its kind, old and new time, fields, and its notice (kind, count)."""
    by_change = result.notices.by_change
    return [
        (f"{c.timeline_id}/{c.milestone_key}" if c.milestone_key else c.timeline_id, c.title, c.kind,
         when_of(c.old_at, c, language), when_of(c.new_at, c, language), ", ".join(c.fields),
         by_change.get((c.timeline_id, c.milestone_key or "")))
        for c in changes
    ]  # fmt: skip


def moment(at: datetime, zone: str, language: Language) -> str:
    return f"{day_text(at, zone, language)} {time_text(at, zone, language)} ({zone})"
