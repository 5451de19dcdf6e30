"""The main job (`tracker run`): sync at start, then watch the schedules folder.

Later the scheduler, mailer and HTTP server join this same event loop.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from rich.logging import RichHandler
from sqlalchemy import Engine
from watchfiles import awatch

from tracker.config import Settings
from tracker.display import change_line, format_at, format_distance, summarise
from tracker.pipeline import sync_folder
from tracker.planning import list_upcoming
from tracker.store import load_views, transaction

log = logging.getLogger("tracker")


def run_main_job(engine: Engine, settings: Settings) -> None:
    """Run until interrupted; a bad file is logged and leaves the store as it was."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)])
    try:
        asyncio.run(main_job(engine, settings))
    except KeyboardInterrupt:
        log.info("stopped")


async def main_job(engine: Engine, settings: Settings, stop: asyncio.Event | None = None) -> None:
    sync_and_report(engine, settings)
    folder = settings.schedules
    folder.mkdir(parents=True, exist_ok=True)
    log.info("watching %s for changes (Ctrl-C to stop)", folder)
    async for changes in awatch(folder, stop_event=stop, debounce=400, recursive=False):
        names = sorted({path.rsplit("/", 1)[-1] for _, path in changes})
        if any(name.endswith((".yaml", ".yml")) for name in names):
            log.info("changed: %s", ", ".join(names))
            sync_and_report(engine, settings)


def sync_and_report(engine: Engine, settings: Settings) -> None:
    now = datetime.now(UTC)
    outcome = sync_folder(
        engine, settings.schedules, zone=settings.timezone, reminders=settings.default_reminders(), now=now
    )
    if not outcome.ok or outcome.plan is None:
        for problem in outcome.problems:
            log.error("%s", problem)
        log.error("sync refused: %d problem(s); nothing was changed", len(outcome.problems))
        return
    for change in outcome.plan.changes:
        log.info("%s", change_line(change).plain.strip())
    log.info("synced %d timelines, %d milestones: %s", outcome.timelines, outcome.milestones,
             summarise(outcome.plan.changes))  # fmt: skip
    report_next(engine, now)


def report_next(engine: Engine, now: datetime, count: int = 5) -> None:
    with transaction(engine) as session:
        views = load_views(session)
    items = list_upcoming(views, now=now, window=timedelta(days=366))[:count]
    if not items:
        log.info("nothing due in the coming year")
    for item in items:
        m = item.milestone
        log.info("next: %s (%s)  %s — %s", format_at(item.at, m.zone, m.all_day), format_distance(item.at, now),
                 m.title, m.timeline_id)  # fmt: skip
