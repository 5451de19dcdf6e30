"""`tracker events`: the audit log, who did what and when, newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from tracker.cli.common import app, err, out, print_json, settings, store, when
from tracker.display import format_at

if TYPE_CHECKING:
    from rich.table import Table

    from tracker.store.audit import AuditEntry


@app.command("events")
def events(
    kind: Annotated[str | None, typer.Option(help="Only this kind, e.g. completed, console_signed_in.")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Only this actor: 'cli:alice', 'console:EMAIL', or a kind of actor: console.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only from this time on: YYYY-MM-DD[THH:MM].")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Show at most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The audit log: every recorded change (sync, completion, subscriber, sign-in) with who, when and what."""
    from tracker.store.audit import AuditQuery, list_events
    from tracker.store.engine import transaction

    config = settings()
    start = when(since, config.timezone, "--since") if since is not None else None
    query = AuditQuery(kind=kind or None, actor=actor or None, since=start, limit=limit)
    with transaction(store()) as session:
        entries = list_events(session, query)
    if as_json:
        print_json([entry_json(entry) for entry in entries])
    elif not entries:
        err.print("no events match")
    else:
        out.print(events_table(entries, config.timezone))


def entry_json(entry: AuditEntry) -> dict[str, object]:
    return {"id": entry.id, "at": entry.at.isoformat(), "actor": entry.actor, "kind": entry.kind,
            "subject": entry.subject or None, "detail": entry.detail or None}  # fmt: skip


def events_table(entries: list[AuditEntry], zone: str) -> Table:
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for name in ("#", "when", "who", "what", "about", "detail"):
        table.add_column(name, overflow="fold")
    for entry in entries:
        # Text, not markup: addresses, notes and titles are data.
        table.add_row(str(entry.id), format_at(entry.at, zone, False), Text(entry.actor or "—"), Text(entry.kind),
                      Text(entry.subject or "—"), Text(entry.detail))  # fmt: skip
    return table
