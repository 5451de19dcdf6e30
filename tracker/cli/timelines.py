"""Timeline commands: validate, plan, sync, upcoming, done."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tracker.cli.common import (
    HELP_DEFAULT,
    app,
    err,
    fail,
    file_progress,
    now_utc,
    out,
    print_json,
    print_problems,
    settings,
    store,
    timeline_settings,
    when,
    who,
)
from tracker.cli.console import styled

if TYPE_CHECKING:
    from tracker.delivery.notices import NoticePreview
    from tracker.timelines.completions import AlreadyDoneError
    from tracker.timelines.diff import Change
    from tracker.timelines.pipeline import SyncOutcome
    from tracker.timelines.states import Process
    from tracker.timelines.views import MilestoneView, Occurrence


# PATHS are the command's extra arguments, not a declared argument: typer would check a declared one
# through pydantic (see HELP_DEFAULT), and this command runs in pre-commit hooks and CI on every save.
# Options other than --help are refused as before.
@app.command(
    context_settings={"allow_extra_args": True, "default_map": HELP_DEFAULT}, options_metavar="[OPTIONS] [PATHS]..."
)
def validate(
    ctx: typer.Context,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too")] = False,
) -> None:
    """Check timeline files; print every problem as FILE:LINE: message.

    PATHS: files or folders (default: the schedules folder, and the channels file).
    """
    from tracker.timelines.validation import validate_paths

    paths = [Path(arg) for arg in ctx.args]
    config = timeline_settings()
    specs, problems = validate_paths(
        paths or [config.schedules], config.schedules, config.timezone, calendar=config.calendar
    )
    channels = ""
    if not paths:  # the whole setup: the channels file too (docs/channels.md)
        from tracker.channels.settings import EVERYWHERE, read_channels

        found = read_channels(config.channels_path, EVERYWHERE)  # secrets are not where CI validates
        problems = [*problems, *found.problems]
        channels = f", {len(found.channels)} channels" if config.channels_path.exists() else ""
    if problems:
        print_problems(problems)
    if any(strict or not p.warning for p in problems):
        raise typer.Exit(1)
    milestones = sum(len(s.milestones) for s in specs)
    verdict = "valid, with warnings" if problems else "all valid"
    out.print(styled(("✓", "green"), f" {len(specs)} timelines, {milestones} milestones{channels}: {verdict}"))


def run_sync(dry_run: bool) -> SyncOutcome:
    from tracker.timelines.pipeline import sync_folder

    config = settings()
    engine = store()
    with file_progress(config.schedules, "Reading timelines") as on_file:
        return sync_folder(
            engine, config.schedules, zone=config.timezone, reminders=config.default_reminders(),
            now=now_utc(), dry_run=dry_run, on_file=on_file, calendar=config.work_calendar(),
        )  # fmt: skip


def report_sync(outcome: SyncOutcome, as_json: bool, verb: str) -> None:
    from tracker.display import change_json, change_line, messages_lines, notice_line, summarise

    if not outcome.ok or outcome.plan is None:
        print_problems(outcome.problems)
        err.print("Nothing was changed in the store.")
        raise typer.Exit(1)
    if outcome.warnings:
        print_problems(outcome.warnings)
    changes = outcome.plan.changes
    notices = notices_of(changes)
    if as_json:
        by_change = notices.by_change
        listed = [{**change_json(c), "notice": notice_json(by_change.get((c.timeline_id, c.milestone_key or "")))}
                  for c in changes]  # fmt: skip
        messages = [{"subscribers": n, "changes": m} for n, m in notices.messages]
        print_json({"changes": listed, "messages": messages})
        return
    for c in changes:
        out.print(change_line(c), soft_wrap=True)
        notice = notices.by_change.get((c.timeline_id, c.milestone_key or ""))
        if notice is not None:
            out.print(notice_line(*notice), style="dim")
    for line in messages_lines(notices.messages):
        out.print(line)
    head = f"{outcome.timelines} timelines, {outcome.milestones} milestones"
    out.print(f"{head}: {summarise(changes)}{verb if changes else ''}.")


def notices_of(changes: list[Change]) -> NoticePreview:
    """Notices the changes call for, as the store stands (before a dry run, after a sync)."""
    from tracker.delivery.notices import NoticePreview, preview
    from tracker.store.engine import transaction

    if not any(c.kind in ("rescheduled", "cancelled", "removed", "restored", "completed") for c in changes):
        return NoticePreview({}, [])
    with transaction(store()) as session:
        return preview(session, changes, now_utc())


def notice_json(notice: tuple[str, int] | None) -> dict[str, object] | None:
    return None if notice is None else {"kind": notice[0], "subscribers": notice[1]}


@app.command()
def plan(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """Show what `tracker sync` would change, and the notices it would send, without changing anything."""
    report_sync(run_sync(dry_run=True), as_json, " (dry run: nothing applied)")


@app.command()
def sync(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False) -> None:
    """Apply the schedules folder to the store in one transaction and record events."""
    report_sync(run_sync(dry_run=False), as_json, " applied")


OnlyTimeline = Annotated[str | None, typer.Option(help="Only this timeline")]
OnlyAudience = Annotated[str | None, typer.Option(help="Only what concerns this audience")]
SeenOn = Annotated[str | None, typer.Option(help="See it as on another day: YYYY-MM-DD[THH:MM]")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


@app.command()
def upcoming(
    days: Annotated[int, typer.Option(min=0, max=3660, help="How many days ahead (at most 3660, ten years)")] = 30,
    timeline: OnlyTimeline = None,
    audience: OnlyAudience = None,
    now: SeenOn = None,
    as_json: AsJson = False,
) -> None:
    """List what is late, then what is due in the next days."""
    from tracker.display import upcoming_json, upcoming_table
    from tracker.timelines.dates import get_zone
    from tracker.timelines.views import list_upcoming

    process, late = late_steps(timeline, audience, now)
    at = process.now
    items = list_upcoming(process.views, now=at, window=timedelta(days=days), timeline=timeline, audience=audience)
    if as_json:
        print_json(upcoming_json(late + items, process))
        return
    if late:
        out.print(f"Late: {len(late)} step(s) past due and not done", style="bold red")
        out.print(upcoming_table(late, process))
        out.print()
    if not items:
        # The day as the reader's --now names it: in the settings' zone, as --now itself is read.
        local = at.astimezone(get_zone(settings().timezone))
        out.print(f"Nothing due in the {days} day{'' if days == 1 else 's'} from {local:%Y-%m-%d}.")
        return
    out.print(upcoming_table(items, process))


@app.command()
def late(
    timeline: OnlyTimeline = None,
    audience: OnlyAudience = None,
    now: SeenOn = None,
    as_json: AsJson = False,
) -> None:
    """List the steps past due and not done (missed ones, past TRACKER_LATE_DAYS or overtaken, are left out)."""
    from tracker.display import upcoming_json, upcoming_table

    process, items = late_steps(timeline, audience, now)
    if as_json:
        print_json(upcoming_json(items, process))
    elif not items:
        out.print(f"Nothing is late on {process.now.astimezone(UTC):%Y-%m-%d %H:%M} UTC.")
    else:
        out.print(upcoming_table(items, process))


def late_steps(timeline: str | None, audience: str | None, now: str | None) -> tuple[Process, list[Occurrence]]:
    """The process as on *now* (default: now) and its late steps, for what the options select."""
    from tracker.timelines.states import Process

    config = settings()
    process = Process(listed_views(timeline, audience), now=when(now, config.timezone, "--now"),
                      late_days=config.late_days)  # fmt: skip
    return process, process.late(timeline=timeline, audience=audience)


def listed_views(timeline: str | None, audience: str | None) -> list[MilestoneView]:
    """The stored milestones that read, after checking that *timeline* and *audience* exist."""
    from tracker.store.engine import transaction
    from tracker.store.quarantine import count_quarantine
    from tracker.timelines.dates import suggest
    from tracker.timelines.screening import screen_views
    from tracker.timelines.stored import load_views

    with transaction(store()) as session:
        views = load_views(session)
        set_aside = count_quarantine(session)["milestone"]
    if timeline is not None and not any(v.timeline_id == timeline for v in views):
        fail(f"no timeline {timeline!r}; known: {', '.join(sorted({v.timeline_id for v in views})) or 'none'}")
    audiences = sorted({a for v in views if v.status != "removed" for a in (*v.audiences, v.owner) if a})
    if audience is not None and audience not in audiences:
        hint = suggest(audience, audiences) or f" (known: {', '.join(audiences) or 'none'})"
        fail(f"--audience: no audience {audience!r}{hint}")
    if set_aside:  # left out by the listing: said, so that nobody takes the list for all there is
        err.print(f"note: {set_aside} milestone(s) could not be read and are not listed; "
                  "see `tracker deliveries --status quarantined`", style="yellow")  # fmt: skip
    return screen_views(views)


@app.command()
def done(
    milestone: Annotated[str, typer.Argument(help="TIMELINE/MILESTONE")],
    at: Annotated[str | None, typer.Option(help="When it was done (default: now): YYYY-MM-DD[THH:MM]")] = None,
    note: Annotated[str | None, typer.Option(help="A note shown with the completion")] = None,
    link: Annotated[str | None, typer.Option(help="A link, e.g. to the posted document")] = None,
    amend: Annotated[
        bool, typer.Option("--amend", help="Change the recorded completion: what is not given stays")
    ] = False,
) -> None:
    """Record that a milestone is done; dates counted from it move accordingly."""
    from tracker.display import change_line
    from tracker.store.engine import transaction
    from tracker.timelines.completions import AlreadyDoneError, CompletionError, DoneRequest, record_done
    from tracker.timelines.stored import load_views

    config = settings()
    done_at = when(at, config.timezone, "--at", skipped_times=True)
    day = None
    if at is not None and len(at.strip()) == 10:
        day = datetime.fromisoformat(at.strip()).date()
    engine = store()
    try:
        with transaction(engine, write=True) as session:
            views = {f"{v.timeline_id}/{v.key}": v for v in load_views(session)}
            keep = frozenset(name for name, given in (("at", at), ("note", note), ("link", link)) if given is None)
            request = DoneRequest(milestone, done_at, day, note or "", link or "", amend=amend, keep=keep, who=who())
            changes = record_done(session, request, views.get(milestone), now=now_utc())
    except AlreadyDoneError as exc:
        fail(f"{already_done(exc, views.get(milestone))}; add --amend to change its time, note or link", 1)
    except CompletionError as exc:
        fail(str(exc))
    for c in changes:
        out.print(change_line(c), soft_wrap=True)


@app.command()
def reopen(
    milestone: Annotated[str, typer.Argument(help="TIMELINE/MILESTONE")],
    note: Annotated[str | None, typer.Option(help="Why (recorded; quoted to members told it had opened)")] = None,
    occurrence: Annotated[str | None, typer.Option(help="A repeating milestone's occurrence, YYYY-MM-DD")] = None,
) -> None:
    """Remove a completion recorded by mistake; dates counted from it move back, and members told the
    next step had opened get one correction."""
    from tracker.display import change_line
    from tracker.store.engine import transaction
    from tracker.timelines.completions import CompletionError, ReopenRequest, record_reopen

    try:
        with transaction(store(), write=True) as session:
            changes = record_reopen(session, ReopenRequest(milestone, note or "", occurrence, who=who()), now=now_utc())
    except CompletionError as exc:
        fail(str(exc), 1)
    for c in changes:
        out.print(change_line(c), soft_wrap=True)


def already_done(exc: AlreadyDoneError, view: MilestoneView | None) -> str:
    """'T/M is already done: Tue 20 Feb 2018 (note: …; link: …)', in the milestone's zone."""
    from tracker.display import format_at, printable

    when = format_at(exc.done_at, view.zone if view else "UTC", exc.day is not None)
    details = "; ".join(
        f"{name}: {printable(value)}" for name, value in (("note", exc.note), ("link", exc.link)) if value
    )
    return f"{exc.reference} is already done: {when}" + (f" ({details})" if details else "")
