"""The main job (`tracker run`): sync, then deliver, serve HTTP and watch the schedules folder.

All in one event loop: uvicorn stops on SIGTERM/SIGINT, and then the dispatcher stops
claiming, lets in-flight sends finish and be recorded, and gives back what it held.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import uvicorn
from rich.console import Console
from rich.logging import RichHandler
from sqlalchemy import Engine
from watchfiles import awatch

from tracker.config import Settings
from tracker.delivery.dispatcher import make_dispatcher
from tracker.delivery.scheduler import DeliveryScheduler
from tracker.display import change_line, format_at, format_distance, summarise
from tracker.feeds.calendars import Calendars
from tracker.store.engine import transaction
from tracker.timelines.files import find_files, find_shared_files
from tracker.timelines.pipeline import sync_folder
from tracker.timelines.stored import load_views
from tracker.timelines.views import list_upcoming
from tracker.web.app import create_app
from tracker.web.limits import server_options

log = logging.getLogger("tracker")


def run_main_job(engine: Engine, settings: Settings, calendars: Calendars, secret: bytes) -> None:
    """Run until interrupted; a bad file is logged and leaves the store as it was."""
    configure_logging()
    try:
        asyncio.run(main_job(engine, settings, calendars, secret))
    except KeyboardInterrupt:
        log.info("stopped")


def configure_logging() -> None:
    """Colourful logs in a terminal; plain timestamped lines on stderr for services and files."""
    if sys.stderr.isatty():
        handler: logging.Handler = RichHandler(console=Console(stderr=True), show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per job run is noise


async def main_job(engine: Engine, settings: Settings, calendars: Calendars, secret: bytes) -> None:
    """Sync, then deliver, serve HTTP and watch the schedules folder side by side."""
    folder = settings.schedules
    folder.mkdir(parents=True, exist_ok=True)
    seen = fingerprint(folder)
    if not await sync_logged(engine, settings, Failures()):
        seen = frozenset()  # the watcher tries again at its first look
    dispatcher = make_dispatcher(engine, settings, secret)
    delivery = DeliveryScheduler(dispatcher, sweep=settings.sweep)
    app = create_app(engine, calendars, metrics=dispatcher.metrics, settings=settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                            **server_options(settings.request_timeout))  # fmt: skip
    server = uvicorn.Server(config)
    log.info("mail goes %s", mail_target(settings))
    await delivery.start()
    watcher: asyncio.Task[None] | None = None
    with stop_signals_deferred():
        try:
            serving = asyncio.create_task(server.serve())
            while not server.started and not serving.done():
                await asyncio.sleep(0.02)
            if server.started:  # said once the port answers: scripts wait for this line
                metrics = "metrics at /metrics" if settings.metrics_token else "/metrics off"
                log.info("serving on http://%s:%d (feeds under /feeds/, %s)", settings.host, settings.port, metrics)
            watcher = asyncio.create_task(watch_schedules(engine, settings, seen, delivery))
            await serving
        finally:
            if watcher is not None:
                watcher.cancel()
                with suppress(asyncio.CancelledError):
                    await watcher
            await delivery.stop()
            log.info("stopped delivering; every row held was recorded or given back")


@contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Let the dispatcher finish after uvicorn stops on SIGTERM/SIGINT.

    uvicorn handles the signal, then raises it again once serving is over, with the handler it
    found in place: with Python's defaults the process would die (or a KeyboardInterrupt cut
    in) before in-flight sends are recorded and leases given back. The handler here notes the
    first signal; a second one, from an impatient operator, stops at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        seen.append(signum)
        if len(seen) > 1:
            log.warning("second stop signal: exiting without waiting for in-flight sends")
            os._exit(128 + signum)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def mail_target(settings: Settings) -> str:
    """Where mail goes, without the password."""
    if not settings.smtp_url:
        return f"into {settings.outbox_dir}/ as .eml files (set TRACKER_SMTP_URL to send)"
    parts = urlsplit(settings.smtp_url)
    return f"through {parts.scheme}://{parts.hostname}:{parts.port or ''}"


async def watch_schedules(
    engine: Engine, settings: Settings, seen: frozenset[tuple[str, int, int]], delivery: DeliveryScheduler
) -> None:
    """Sync whenever a timeline file is saved; syncs run in a thread so HTTP keeps answering.

    Nothing stops the watching: a failed sync is logged in one line and tried again at the next look.
    """
    folder = settings.schedules
    log.info("watching %s for changes (Ctrl-C to stop)", folder)
    failures = Failures()
    while True:
        try:
            # File events wake us at once; the periodic timeout also catches a save made before
            # the watcher started, or one a network file system never reported.
            async for _ in awatch(folder, debounce=400, recursive=False, rust_timeout=2000, yield_on_timeout=True):
                seen = await sync_if_changed(engine, settings, seen, delivery, failures)
        except Exception as exc:  # noqa: BLE001 - e.g. the system's limit on watched folders; watching goes on
            failures.log(f"watching {folder} failed (trying again in {WATCH_RETRY} s)", exc)
            await asyncio.sleep(WATCH_RETRY)


WATCH_RETRY = 5


async def sync_if_changed(
    engine: Engine,
    settings: Settings,
    seen: frozenset[tuple[str, int, int]],
    delivery: DeliveryScheduler,
    failures: Failures,
) -> frozenset[tuple[str, int, int]]:
    """Sync when the folder changed since *seen*; return what is now seen (unchanged when the sync failed)."""
    current = fingerprint(settings.schedules)
    if current == seen:
        return seen
    if failures.last is None:  # a retry after a failure has nothing new to announce
        log.info("changed: %s", ", ".join(sorted({name for name, *_ in current ^ seen})))
    if not await sync_logged(engine, settings, failures):
        return seen
    delivery.kick()  # notices and re-planned reminders now, not at the next sweep
    return current


async def sync_logged(engine: Engine, settings: Settings, failures: Failures) -> bool:
    """Sync in a thread; on any failure log one line with the reason and return False."""
    try:
        await asyncio.to_thread(sync_and_report, engine, settings)
    except Exception as exc:  # noqa: BLE001 - a store that cannot be written, or a bug: logged, never fatal
        failures.log("sync failed (nothing was changed; trying again every few seconds)", exc)
        return False
    failures.last = None
    return True


class Failures:
    """Log a failure in one line, and the same failure again only after something else happened."""

    def __init__(self) -> None:
        self.last: str | None = None

    def log(self, what: str, exc: BaseException) -> None:
        reason = one_line(exc)
        if reason != self.last:
            log.error("%s: %s", what, reason)
        self.last = reason


def one_line(exc: BaseException) -> str:
    """Return the exception's kind and the first line of its message (SQL errors add pages of SQL)."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {message[:300]}" if message else exc.__class__.__name__


def fingerprint(folder: Path) -> frozenset[tuple[str, int, int]]:
    """Name, modification time and size of each timeline file: cheap, and enough to see a save."""
    found = set()
    paths: list[Path] = []
    with suppress(OSError):  # a folder that cannot be listed looks empty until it can
        paths = [*find_files([folder]), *find_shared_files(folder)]
    for path in paths:
        with suppress(OSError):
            status = path.stat()
            found.add((path.name, status.st_mtime_ns, status.st_size))
    return frozenset(found)


def sync_and_report(engine: Engine, settings: Settings) -> None:
    now = datetime.now(UTC)
    outcome = sync_folder(
        engine, settings.schedules, zone=settings.timezone, reminders=settings.default_reminders(), now=now,
        calendar=settings.work_calendar(),
    )  # fmt: skip
    if not outcome.ok or outcome.plan is None:
        for problem in outcome.problems:
            log.error("%s", problem)
        log.error("sync refused: %d problem(s); nothing was changed", len(outcome.problems))
        return
    for problem in outcome.warnings:
        log.warning("%s", problem)
    for change in outcome.plan.changes:
        log.info("%s", change_line(change).plain.strip())
    log.info("synced %d timelines, %d milestones: %s", outcome.timelines, outcome.milestones,
             summarise(outcome.plan.changes))  # fmt: skip
    try:
        report_next(engine, now)
    except Exception as exc:  # noqa: BLE001 - the sync is done; a row that cannot be listed must not undo it
        log.error("could not list what is due next: %s", one_line(exc))


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
