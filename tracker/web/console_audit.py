"""The console's audit log: who did what and when, filtered by a GET form, newest first, a page at a time.

It reads what `tracker events` reads (store/audit.py). See docs/console.md, "Audit log".
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations (see console.py).
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from tracker.store.audit import AuditQuery, list_events
from tracker.store.engine import transaction
from tracker.text import whole_number
from tracker.web.console_access import PREFIX, Console, RoleRule, Visitor
from tracker.web.forms import answer

PAGE = 50  # events a page shows


def audit_routes(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["console"], include_in_schema=False)
    Viewer = Annotated[Visitor, Depends(RoleRule(console, "viewer"))]  # noqa: N806

    @router.get("/audit", response_class=HTMLResponse)
    async def audit(visitor: Viewer) -> Response:
        """Every recorded change with who, when and what; filters: kind, actor, since; `before` pages on."""
        return await run_in_threadpool(show_audit, console, visitor)

    return router


def show_audit(console: Console, visitor: Visitor) -> Response:
    chosen, asked = visitor.asked.language(), visitor.asked.query
    kind, actor, since = (asked.get(name, "").strip()[:120] for name in ("kind", "actor", "since"))
    start, bad_since = since_of(since)
    before = asked.get("before", "")
    page_end = whole_number(before, 15)
    query = AuditQuery(kind or None, actor or None, start, page_end, PAGE + 1)
    with transaction(console.engine) as session:
        entries = list_events(session, query) if not bad_since else []
    more = len(entries) > PAGE
    entries = entries[:PAGE]
    filters = {name: value for name, value in (("kind", kind), ("actor", actor), ("since", since)) if value}
    older = f"{PREFIX}/audit?{urlencode({**filters, 'before': entries[-1].id})}" if more else ""
    assert visitor.signed_in is not None
    return answer("console/audit.html.j2", chosen, visitor.asked, 422 if bad_since else 200,
                  title=chosen.language.gettext("Audit log"), entries=entries, kind=kind, actor=actor, since=since,
                  bad_since=bad_since, older=older, user=visitor.signed_in.user,
                  csrf=console.csrf_token(visitor.browser))  # fmt: skip


def since_of(text: str) -> tuple[datetime | None, bool]:
    """The day (YYYY-MM-DD, UTC) the form names, and whether it named none that reads."""
    if not text:
        return None, False
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return None, True
    return day.replace(tzinfo=UTC), False
