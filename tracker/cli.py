"""`tracker` command line: parse options, call one function, print the result."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tracker.calendars import Calendars, FeedRef
from tracker.completions import CompletionError, DoneRequest, record_done
from tracker.config import Settings, get_settings
from tracker.dates import DateError, parse_when
from tracker.display import change_json, change_line, summarise, upcoming_json, upcoming_table
from tracker.pipeline import SyncOutcome, sync_folder, validate_paths
from tracker.planning import list_upcoming
from tracker.schedules import Problem, find_files
from tracker.store import load_views, open_store, transaction

app = typer.Typer(
    help="Tracker: deadlines of a working group, as code, calendars and reminders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        fail("bad settings (TRACKER_* variables or tracker.toml):\n  " + "\n  ".join(lines), 2)


def store() -> Engine:
    try:
        return open_store(settings().database_url)
    except SQLAlchemyError as exc:
        fail(f"cannot open the store at {settings().database_url}: {exc.__class__.__name__}: {exc}", 2)


def print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        err.print(str(problem), markup=False, soft_wrap=True)
    files = len({p.path for p in problems})
    err.print(f"[red]✗ {len(problems)} problem{'s' * (len(problems) != 1)} in {files} file{'s' * (files != 1)}[/red]")


@contextmanager
def file_progress(folder: Path, label: str) -> Iterator[Callable[[Path], None] | None]:
    """Show a progress bar when there are many files (large syncs take seconds)."""
    total = len(find_files([folder])) if folder.is_dir() else 0
    if total < 200 or not err.is_terminal:
        yield None
        return
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda _path: progress.advance(task)


def now_utc() -> datetime:
    return datetime.now(UTC)


def when(text: str | None, zone: str, option: str) -> datetime:
    if text is None:
        return now_utc()
    try:
        return parse_when(text, zone)
    except DateError as exc:
        fail(f"{option}: {exc}")


@app.command()
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (default: the schedules folder)")] = None,
) -> None:
    """Check timeline files; print every problem as FILE:LINE: message."""
    config = settings()
    specs, problems = validate_paths(paths or [config.schedules], config.schedules, config.timezone)
    if problems:
        print_problems(problems)
        raise typer.Exit(1)
    milestones = sum(len(s.milestones) for s in specs)
    out.print(f"[green]✓[/green] {len(specs)} timelines, {milestones} milestones: all valid")


def run_sync(dry_run: bool) -> SyncOutcome:
    config = settings()
    engine = store()
    with file_progress(config.schedules, "Reading timelines") as on_file:
        return sync_folder(
            engine, config.schedules, zone=config.timezone, reminders=config.default_reminders(),
            now=now_utc(), dry_run=dry_run, on_file=on_file,
        )  # fmt: skip


def report_sync(outcome: SyncOutcome, as_json: bool, verb: str) -> None:
    if not outcome.ok or outcome.plan is None:
        print_problems(outcome.problems)
        err.print("Nothing was changed in the store.")
        raise typer.Exit(1)
    changes = outcome.plan.changes
    if as_json:
        out.print_json(json.dumps({"changes": [change_json(c) for c in changes]}))
        return
    for c in changes:
        out.print(change_line(c), soft_wrap=True)
    head = f"{outcome.timelines} timelines, {outcome.milestones} milestones"
    out.print(f"{head}: {summarise(changes)}{verb if changes else ''}.")


@app.command()
def plan(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """Show what `tracker sync` would change, without changing anything."""
    report_sync(run_sync(dry_run=True), as_json, " (dry run: nothing applied)")


@app.command()
def sync(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """Apply the schedules folder to the store in one transaction and record events."""
    report_sync(run_sync(dry_run=False), as_json, " applied")


@app.command()
def upcoming(
    days: Annotated[int, typer.Option(min=0, help="How many days ahead")] = 30,
    timeline: Annotated[str | None, typer.Option(help="Only this timeline")] = None,
    audience: Annotated[str | None, typer.Option(help="Only what concerns this audience")] = None,
    now: Annotated[str | None, typer.Option(help="See it as on another day: YYYY-MM-DD[THH:MM]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """List what is due in the next days."""
    config = settings()
    at = when(now, config.timezone, "--now")
    with transaction(store()) as session:
        views = load_views(session)
    items = list_upcoming(views, now=at, window=timedelta(days=days), timeline=timeline, audience=audience)
    if timeline is not None and not any(v.timeline_id == timeline for v in views):
        fail(f"no timeline {timeline!r}; known: {', '.join(sorted({v.timeline_id for v in views})) or 'none'}")
    if as_json:
        out.print_json(json.dumps(upcoming_json(items)))
        return
    if not items:
        out.print(f"Nothing due in the {days} days from {at.astimezone(UTC):%Y-%m-%d}.")
        return
    out.print(upcoming_table(items, at))


@app.command()
def done(
    milestone: Annotated[str, typer.Argument(help="TIMELINE/MILESTONE")],
    at: Annotated[str | None, typer.Option(help="When it was done (default: now): YYYY-MM-DD[THH:MM]")] = None,
    note: Annotated[str, typer.Option(help="A note shown with the completion")] = "",
    link: Annotated[str, typer.Option(help="A link, e.g. to the posted document")] = "",
) -> None:
    """Record that a milestone is done; dates counted from it move accordingly."""
    config = settings()
    done_at = when(at, config.timezone, "--at")
    day = None
    if at is not None and len(at.strip()) == 10:
        day = datetime.fromisoformat(at.strip()).date()
    engine = store()
    try:
        with transaction(engine, write=True) as session:
            views = {f"{v.timeline_id}/{v.key}": v for v in load_views(session)}
            request = DoneRequest(milestone, done_at, day, note, link)
            changes = record_done(session, request, views.get(milestone), now=now_utc())
    except CompletionError as exc:
        fail(str(exc))
    for c in changes:
        out.print(change_line(c), soft_wrap=True)


HostOption = Annotated[str | None, typer.Option(help="Address to listen on (default: TRACKER_HOST)")]
PortOption = Annotated[int | None, typer.Option(help="Port (default: TRACKER_PORT)")]


def calendars(engine: Engine) -> Calendars:
    config = settings()
    grace = timedelta(days=config.cancelled_grace_days)
    return Calendars(engine, base_url=config.base_url, cancelled_grace=grace, reminder_hour=config.reminder_hour)


@app.command()
def feed(
    timeline: Annotated[str | None, typer.Option(help="Only this timeline")] = None,
    audience: Annotated[str | None, typer.Option(help="Only what concerns this audience")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE (default: stdout)")] = None,
) -> None:
    """Write one calendar feed (.ics): all timelines, one timeline, or one audience."""
    if timeline and audience:
        fail("give --timeline or --audience, not both")
    ref = (
        FeedRef("timeline", timeline)
        if timeline
        else FeedRef("audience", audience)
        if audience
        else FeedRef("all", None)
    )
    feeds = calendars(store())
    body = feeds.feed(ref)
    if body is None:
        fail(f"no such feed {ref.path}; the feeds are: {', '.join(r.path for r in feeds.refs())}")
    if output is None:
        sys.stdout.buffer.write(body.body)
        return
    output.write_bytes(body.body)
    err.print(f"wrote {output} ({len(body.body):,} bytes)")


@app.command()
def publish(out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the static site into")]) -> None:
    """Write every public feed as static files, byte for byte what `tracker serve` sends."""
    feeds = calendars(store())
    refs = feeds.refs()
    with Progress(console=err, transient=True, disable=len(refs) < 20) as progress:
        for ref in progress.track(refs, description="Writing feeds"):
            body = feeds.feed(ref)
            assert body is not None  # refs() lists existing feeds only
            target = out_dir / ref.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body.body)
    out.print(f"[green]✓[/green] wrote {len(refs)} feeds to {out_dir}")


@app.command()
def serve(host: HostOption = None, port: PortOption = None) -> None:
    """HTTP only: feeds and the health check."""
    import uvicorn

    from tracker.web import create_app

    config = settings()
    engine = store()
    app = create_app(engine, calendars(engine))
    uvicorn.run(app, host=host or config.host, port=port or config.port, log_level="info")


@app.command()
def run(host: HostOption = None, port: PortOption = None) -> None:
    """The main job: migrate, sync, watch the schedules folder and serve HTTP."""
    from tracker.runner import run_main_job

    config = settings()
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    config = config.model_copy(update=overrides)
    engine = store()
    run_main_job(engine, config, calendars(engine))


def main() -> None:
    """Console entry point: no traceback reaches the user, whatever happens."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("TRACKER_DEBUG"):
            raise
        err.print(f"[red]error:[/red] {exc.__class__.__name__}: {exc}", markup=True)
        err.print("(set TRACKER_DEBUG=1 to see the traceback)")
        sys.exit(70)
