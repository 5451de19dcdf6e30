"""Timing: APScheduler wakes the dispatcher at the next due row and on a short sweep.

APScheduler keeps only its in-memory jobs, derived from the store: a restart rebuilds
them, and other instances' work is found by the sweep (docs/architecture.md §2). No state lives here.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from tracker.delivery.dispatcher import Dispatcher
from tracker.delivery.outbox import next_attempt
from tracker.store.engine import transaction

log = logging.getLogger("tracker.delivery.scheduler")
REPLAN_EVERY = timedelta(hours=1)  # the planning horizon moves on; so do digests' weeks


class DeliveryScheduler:
    """Start, wake and stop one dispatcher; passes never overlap."""

    def __init__(self, dispatcher: Dispatcher, *, sweep: float) -> None:
        self.dispatcher = dispatcher
        self.sweep_seconds = sweep
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.running: asyncio.Task[None] | None = None
        self.again = False
        self.replan_due = True

    async def start(self) -> None:
        self.scheduler.start()
        self.scheduler.add_job(self.sweep, IntervalTrigger(seconds=self.sweep_seconds), id="sweep",
                               next_run_time=datetime.now(UTC), coalesce=True, max_instances=1)  # fmt: skip
        self.scheduler.add_job(self.plan_again, IntervalTrigger(seconds=REPLAN_EVERY.total_seconds()), id="replan")
        log.info("delivering as %s (sweep every %ss)", self.dispatcher.worker, self.sweep_seconds)

    # Jobs are coroutines: AsyncIOScheduler runs those on the event loop (plain functions
    # would go to a thread pool, away from the loop that owns the mailer's connections).

    async def plan_again(self) -> None:
        self.replan_due = True
        self.kick()

    async def sweep(self) -> None:
        """Look for work: new events, rows other instances planned, expired leases."""
        self.kick()

    async def wake(self) -> None:
        self.kick()

    def kick(self) -> None:
        """Run a cycle now, or once more right after the one running."""
        if self.running is not None and not self.running.done():
            self.again = True
            return
        self.running = asyncio.get_running_loop().create_task(self.cycle())

    async def cycle(self) -> None:
        try:
            while True:
                self.again = False
                timely, self.replan_due = self.replan_due, False
                await asyncio.to_thread(self.dispatcher.refresh, timely=timely)
                result = await self.dispatcher.run_pass()
                # Rows left to re-planning (their milestone changed), or come back from a dead
                # worker maybe as such: re-planned now, so that they go at their new time (§3).
                self.replan_due = self.replan_due or bool(result.replanned or result.returned)
                if not (self.again or result.replanned or result.returned) or self.dispatcher.stopping:
                    break
            await self.schedule_wake()
        except Exception:  # a cycle that fails is retried by the next sweep; the loop must live on
            log.exception("delivery cycle failed; retrying at the next sweep")

    async def schedule_wake(self) -> None:
        """A job at the next due row: on time, not at the next sweep."""
        if self.dispatcher.stopping:
            return
        at = await asyncio.to_thread(self.next_due)
        if at is None:
            return
        run_at = max(at, datetime.now(UTC))
        self.scheduler.add_job(self.wake, DateTrigger(run_date=run_at), id="wake", replace_existing=True,
                               misfire_grace_time=None)  # fmt: skip

    def next_due(self) -> datetime | None:
        with transaction(self.dispatcher.engine) as session:
            return next_attempt(session)

    async def stop(self) -> None:
        """Stop claiming, let in-flight sends finish and record, give back the rest."""
        self.dispatcher.stopping = True
        self.scheduler.shutdown(wait=False)
        if self.running is not None:
            await self.running
        await self.dispatcher.mailer.close()
