"""Send what is due: claim outbox rows, render them, send through the mailer's pool, record.

One pass claims batches while workers (one per SMTP connection) send; a big pass has them
rendered ahead in a helper process (rendering.py). A worker's next message gets its content
written only once its previous outcome is committed (the envelope goes meanwhile), and the
commits are grouped: a crash can leave at most one accepted-but-unrecorded message per
connection, and the Message-ID (derived from the row's unique key) lets mail clients fold
even those.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, text, update
from sqlmodel import Session, col, select
from tenacity import retry, stop_after_attempt, wait_exponential

from tracker.accounts.signin import link_token
from tracker.channels import channel_of
from tracker.channels.posting import Poster, PostError
from tracker.clock import Clock, utc_now
from tracker.config import Settings
from tracker.delivery.channel_posts import ChannelsFile, channel_person, is_channel_row, request_of
from tracker.delivery.compose import Person, Skip, Store, compose
from tracker.delivery.notices import Handled, Snapshot, handle_events
from tracker.delivery.outbox import (
    CHANNEL_GONE,
    Claimed,
    Outcome,
    OutcomeWriter,
    Replan,
    claim,
    count_due,
    extend,
    load_recipients,
    milestone_revisions,
    release,
    return_expired,
    skip_stale,
)
from tracker.delivery.partial import forget_planning, plan_outbox
from tracker.delivery.planning import Escalation
from tracker.delivery.rendering import Prepared, Recipe, RenderHelper, Unrenderable, prepare
from tracker.delivery.retention import PRUNE_BATCH, PRUNE_BATCHES, prune_bounces, prune_log
from tracker.delivery.signins import sign_in_recipient
from tracker.emails import Renderer, Sender
from tracker.mail import make_mailer
from tracker.mail.smtp import DeliveryError, Mailer
from tracker.mail.verp import verp_address
from tracker.metrics import Metrics
from tracker.store.engine import transaction
from tracker.store.models import Channel, Delivery, Event, SignInLink, Subscriber, User
from tracker.subscribers.links import LinkMaker, Links
from tracker.text import describe_error, describe_text
from tracker.timelines.screening import read_names, readable_zone, screen_views
from tracker.timelines.stored import load_views, newest_view_event, views_read_once
from tracker.timelines.views import Problems

log = logging.getLogger("tracker.delivery.dispatcher")
Batch = tuple[list[Claimed], dict[int, Person], Store]  # claimed rows, their recipients, what they refer to
Hold = Callable[[], Awaitable[None]]  # returns once the worker's last outcome is committed
P = ParamSpec("P")
R = TypeVar("R")
REJECTED = "rejected by the recipient's server"
WITH_EVENT = frozenset({"failed", "quarantined"})  # outcomes recorded with an event (delivery_failed, …)
STALE = "its milestone changed after it was claimed: left to re-planning"
NO_TIME_LEFT = "the next retry would come after the deadline"
# A last attempt goes this long before the deadline, when the next backoff would end after it:
# time to send and record it, and for the message to be of use.
LAST_ATTEMPT = timedelta(seconds=30)
FRESH = 0.1  # seconds: how old the milestone revisions a message's content is checked against may be
HELPER_START = 10.0  # seconds send-due waits for its forked render helper (it takes milliseconds)


@dataclass(frozen=True)
class DispatchConfig:
    connections: int = 4
    lease: timedelta = timedelta(seconds=30)
    retry_base: timedelta = timedelta(minutes=1)
    retry_max: timedelta = timedelta(hours=1)
    horizon: timedelta = timedelta(days=35)
    reminder_hour: int = 9
    escalation: Escalation = field(default_factory=Escalation)
    suspend_after: int = 3
    base_url: str = "http://127.0.0.1:8000"
    from_address: str = "Tracker <tracker@localhost>"
    log_days: int = 365  # the delivery log's retention; 0: forever
    bounce_address: str = ""  # VERP: each message's envelope sender tags this address with its row (mail/verp.py)
    channels_file: Path | None = None  # synced into the store before each planning (docs/channels.md)

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchConfig:
        return cls(
            connections=settings.smtp_connections,
            lease=timedelta(seconds=settings.lease),
            retry_base=timedelta(seconds=settings.retry_base),
            retry_max=timedelta(seconds=settings.retry_max),
            horizon=timedelta(days=settings.horizon_days),
            reminder_hour=settings.reminder_hour,
            escalation=Escalation(settings.overdue_offsets, settings.late_days),
            suspend_after=settings.suspend_after,
            base_url=settings.base_url,
            from_address=settings.from_address,
            log_days=settings.delivery_log_days,
            bounce_address=settings.bounce_address,
            channels_file=settings.channels_path,
        )


@dataclass
class PassResult:
    """What one pass did."""

    sent: int = 0
    retrying: int = 0  # planned again for a later attempt (a refusal, or trouble on the way)
    failed: int = 0
    skipped: int = 0  # no use sending any more (composed as such, or found so before the pass)
    released: int = 0
    rendered_ahead: int = 0  # rows composed and rendered by the helper process
    quarantined: int = 0  # rows that could not be composed or rendered: set aside, the rest went on
    refused: int = 0  # answers of the server that were not an acceptance, temporary or permanent
    replanned: int = 0  # claimed for a milestone that changed since: left to re-planning, not sent as they were
    returned: int = 0  # rows of expired leases (a dead or stalled worker) given back to the pool

    def add(self, done: Done) -> None:
        state = done.outcome.state
        self.refused += done.refused
        if state == "sent":
            self.sent += 1
        elif done.stale:
            self.replanned += 1
        elif state == "planned":
            self.retrying += 1
        elif state == "failed":
            self.failed += 1
        elif state == "quarantined":
            self.quarantined += 1
        else:
            self.skipped += 1

    @property
    def total(self) -> int:
        return self.sent + self.retrying + self.failed + self.skipped + self.quarantined + self.replanned

    def line(self) -> str | None:
        """The pass in one line of counts; None when it did nothing."""
        if not (self.total or self.returned or self.released):
            return None
        extra = [f"quarantined {self.quarantined}"] * bool(self.quarantined)
        extra += [f"released {self.released} on stopping"] * bool(self.released)
        return (
            f"pass: sent {self.sent}, refused {self.refused}, retrying {self.retrying}, failed {self.failed}, "
            f"skipped {self.skipped}, re-planned {self.replanned}, returned {self.returned} expired lease(s)"
            + "".join(f", {part}" for part in extra)
        )


@dataclass(frozen=True)
class Done:
    """A row and what happened to it, on its way to the store."""

    row: Claimed
    outcome: Outcome
    permanent_rejection: bool = False
    refused: bool = False  # the server answered with a refusal
    stale: bool = False  # its milestone changed since it was claimed: not sent, left to re-planning


def backoff(attempt: int, base: timedelta, cap: timedelta) -> timedelta:
    """Exponential backoff with full jitter (±25 %): retries of many rows do not come back in step."""
    delay = min(cap.total_seconds(), base.total_seconds() * 2 ** max(attempt - 1, 0))
    return timedelta(seconds=delay * random.uniform(0.75, 1.25))


class Dispatcher:
    """Everything one instance needs to deliver: store, renderer, mailer, settings."""

    def __init__(
        self,
        engine: Engine,
        renderer: Renderer,
        mailer: Mailer,
        config: DispatchConfig,
        secret: bytes,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        offload: bool = True,
        helper: RenderHelper | None = None,
    ) -> None:
        self.engine, self.renderer, self.mailer, self.config, self.secret = engine, renderer, mailer, config, secret
        self.clock: Clock = clock or utc_now
        self.metrics = metrics or Metrics()
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = False
        self.held: set[int] = set()  # claimed by this worker and not recorded yet
        self._views: tuple[int | None, Store] | None = None
        self._returned_at = 0.0  # when expired leases were last returned (monotonic)
        self.envelope_from = parseaddr(config.from_address)[1] or "tracker@localhost"
        self.store_lost = False  # an outcome could not be recorded: send nothing more this pass
        self.links = LinkMaker(secret, config.base_url, config.from_address)
        self.outcomes = OutcomeWriter(engine)
        # Store calls in threads: the loop serves HTTP while SQLite waits for a lock (tracker run).
        # A lone pass on SQLite (send-due) runs them on the loop instead: in a thread they cost
        # more than they save, as the loop's socket writes and the thread take turns at the GIL.
        self.offload = offload
        self.helper = helper  # renders big passes ahead on another core
        self.revisions = Revisions(self.current_revisions)
        self.poster = Poster()  # channels' HTTP client, one per pass
        self.channels: dict[int, Channel] = {}  # the channels of claimed rows, by the id their rows name
        self.channels_file = ChannelsFile(config.channels_file)

    # --- the store side (see in_store) -----------------------------------------------------

    async def in_store(self, call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a store call in a thread (offload), else right here on the loop."""
        if self.offload:
            return await asyncio.to_thread(call, *args, **kwargs)
        return call(*args, **kwargs)

    def refresh(self, *, timely: bool = False, replan_all: bool = False) -> tuple[Handled, Replan | None]:
        """Turn new events into notices and re-plan reminders; a failure leaves what is planned to be sent.

        *timely*: also plan what time brought in since the last planning, and prune the delivery log
        (hourly, and on each `tracker send-due`); *replan_all*: every row, whatever changed (partial.py).
        """
        if timely or replan_all:  # often enough for a count of days
            try:
                self.keep_log()
            except Exception:  # the log is pruned at the next pass; sending must not wait for it
                log.exception("pruning the delivery log failed")
        try:
            return self.plan(timely=timely, replan_all=replan_all)
        except Exception:  # what was planned before is still worth sending: the pass goes on
            log.exception("planning failed; sending what was planned before")
            return Handled(), None

    def keep_log(self) -> int:
        """Delete the delivery log's rows, and bounce reports, older than its retention, a batch per transaction.

        Return how many rows went.
        """
        if not self.config.log_days:
            return 0
        before, deleted = self.clock() - timedelta(days=self.config.log_days), 0
        for prune in (prune_log, prune_bounces):
            for _ in range(PRUNE_BATCHES):  # the rest waits for the next pass: a pass is never held up for long
                with transaction(self.engine, write=True, exclusive=False) as session:
                    done = prune(session, before=before, limit=PRUNE_BATCH)
                deleted += done
                if done < PRUNE_BATCH:
                    break
        if deleted:
            log.info("delivery log: %d row(s) older than %d days deleted", deleted, self.config.log_days)
        return deleted

    def plan(self, *, timely: bool = False, replan_all: bool = False) -> tuple[Handled, Replan | None]:
        """Turn new events into notices; re-plan what they changed and what time brought in (partial.py)."""
        now = self.clock()
        config = self.config
        with transaction(self.engine, write=True) as session, views_read_once(session):  # notices, then planning
            self.channels_file.sync(session, now)  # its events are handled just below
            handled = handle_events(session, now, Snapshot(session))
            result = None
            if handled.replan or timely or replan_all:
                result = plan_outbox(session, handled.scope, now=now, horizon=config.horizon,
                                     reminder_hour=config.reminder_hour, escalation=config.escalation,
                                     whole=replan_all)  # fmt: skip
        if handled.notices or (result and result.changed):
            log.info("planned: %d notice(s); reminders %s", handled.notices, describe(result))
        return handled, result

    def forget_planning(self) -> None:
        with transaction(self.engine, write=True) as session:
            forget_planning(session)

    def prepare(self) -> tuple[int, int]:
        """Skip rows that are no use any more; give back rows whose worker is gone."""
        now = self.clock()
        with transaction(self.engine, write=True, exclusive=False) as session:
            return skip_stale(session, now), return_expired(session, now)

    def claim_batch(self, limit: int, result: PassResult | None = None) -> Batch:
        now = self.clock()
        with transaction(self.engine, write=True, exclusive=False) as session:
            if time.monotonic() - self._returned_at > 1.0:
                # During a long pass too: a dead instance's rows come back within seconds.
                self._returned_at = time.monotonic()
                returned = return_expired(session, now)
                if result is not None:
                    result.returned += returned
            relax_durability(session.connection())
            rows = claim(session, now=now, limit=limit, lease=self.config.lease, worker=self.worker)
            if not rows:
                return [], {}, Store({}, {}, {})
            self.held.update(row.id for row in rows)
            return rows, self.people(session, rows), self.store(session, rows)

    async def current_revisions(self, milestones: Collection[MilestoneKey]) -> dict[MilestoneKey, int]:
        return await self.in_store(self.read_revisions, milestones)

    def read_revisions(self, milestones: Collection[MilestoneKey]) -> dict[MilestoneKey, int]:
        with transaction(self.engine) as session:
            return milestone_revisions(session, milestones)

    def people(self, session: Session, rows: list[Claimed]) -> dict[int, Person]:
        found = load_recipients(session, {row.subscriber_id for row in rows if row.subscriber_id > 0})
        links = self.links
        signing_in = [-row.subscriber_id for row in rows if row.kind == "sign-in"]
        users = sign_in_people(session, signing_in, links, self.clock()) if signing_in else {}
        channel_ids = {id_ for row in rows if (id_ := channel_of(row.subscriber_id)) is not None}
        if channel_ids:
            users |= self.channel_people(session, channel_ids)
        return users | {
            s.id: Person(
                s.id, s.email, s.name, s.language, readable_zone(s.timezone), s.state,
                *followed(s.audiences, s.timelines), links.of(s),
            )
            for s in found
        }  # fmt: skip

    def channel_people(self, session: Session, ids: set[int]) -> dict[int, Person]:
        """The channels of claimed rows, as compose reads a recipient (an active channel is 'confirmed')."""
        people = {}
        for channel in session.exec(select(Channel).where(col(Channel.id).in_(ids))):
            session.expunge(channel)  # read when sending, after this session has ended
            person = channel_person(channel)
            self.channels[person.id], people[person.id] = channel, person
        return people

    def store(self, session: Session, rows: list[Claimed]) -> Store:
        """Milestones (re-read whenever an event was recorded since) and the events notices refer to."""
        # Keyed on the newest event that changes views, not on age: a milestone synced a moment
        # ago, here or by another instance, must not look removed to a row planned for it.
        newest = newest_view_event(session)
        if self._views is None or self._views[0] != newest:
            set_aside: Problems = {}
            loaded = {(v.timeline_id, v.key): v for v in screen_views(load_views(session), set_aside)}
            self._views = (newest, Store(loaded, {}, {}, set_aside))
        cached = self._views[1]
        ids = {row.event_id for row in rows if row.kind in ("opened", "correction") and row.event_id is not None}
        if not ids:
            return cached
        events = list(session.exec(select(Event).where(col(Event.id).in_(ids))))
        milestones = {e.id or 0: (e.timeline_id, e.milestone_key or "") for e in events}
        notes = {e.id or 0: str((e.detail or {}).get("note", ""))[:2000] for e in events}
        return Store(cached.views, milestones, notes, cached.set_aside)

    def write(self, done: list[Done]) -> None:
        """Record outcomes; retried, because a message the server took must not stay unrecorded."""
        try:
            self.write_once(done)
        except Exception:  # tenacity around every write cost more than the write
            log.warning("could not record %d outcome(s); trying again", len(done), exc_info=True)
            self.write_retrying(done)

    @retry(stop=stop_after_attempt(5), wait=wait_exponential(multiplier=0.2, max=5), reraise=True)
    def write_retrying(self, done: list[Done]) -> None:
        self.write_once(done)

    async def record(self, done: list[Done]) -> None:
        """Record outcomes: on PostgreSQL, on the loop without blocking it; else as write, in the store."""
        if self.outcomes.sqlite or any(d.outcome.state in WITH_EVENT for d in done):
            await self.in_store(self.write, done)
            return
        try:
            await self.outcomes.record_async([d.outcome for d in done])
        except Exception:  # RecordError, or anything else: the pooled path is worth a try
            log.warning("could not record %d outcome(s); trying again", len(done), exc_info=True)
            await self.in_store(self.write_retrying, done)
            return
        self.held.difference_update(d.row.id for d in done)

    def write_once(self, done: list[Done]) -> None:
        now = self.clock()
        if all(d.outcome.state not in WITH_EVENT for d in done):
            # The common case, through the driver: a session costs more than the update does.
            self.outcomes.record([d.outcome for d in done])
            self.held.difference_update(d.row.id for d in done)
            return
        with transaction(self.engine, write=True, exclusive=False) as session:
            relax_durability(session.connection())
            self.outcomes.record_in(session.connection(), [d.outcome for d in done])
            for d in done:
                if d.outcome.state in WITH_EVENT:
                    session.add(failure_event(d, now))
            rejected = {d.row.subscriber_id for d in done if d.permanent_rejection}
            for subscriber_id in rejected:
                suspend_if_rejected(session, subscriber_id, self.config.suspend_after, now)
        for d in done:
            self.held.discard(d.row.id)

    def give_back(self, ids: list[int]) -> int:
        # Exclusive (once, on stopping): release drops the planning mark, which a pass planning
        # at the same time on PostgreSQL would otherwise find gone under it.
        with transaction(self.engine, write=True) as session:
            return release(session, ids, self.worker, self.clock())

    def keep_leases(self) -> None:
        ids = list(self.held)
        if ids:
            with transaction(self.engine, write=True, exclusive=False) as session:
                extend(session, ids, self.worker, self.clock() + self.config.lease)

    # --- the pass ---------------------------------------------------------------------------

    async def run_pass(self) -> PassResult:
        """Send everything due now; return when nothing due is left (or on stop)."""
        result = PassResult()
        result.skipped, result.returned = await self.in_store(self.prepare)
        self.revisions = Revisions(self.current_revisions)
        size = self.config.connections
        backlog = Backlog(low=2 * size, high=64 * size)
        leftovers: list[int] = []
        try:
            async with Recorder(self.record, full=size) as recorder:
                workers = [asyncio.create_task(self.work(backlog, recorder, result, leftovers)) for _ in range(size)]
                keeper = asyncio.create_task(self.keep_leases_alive())
                try:
                    await self.feed(backlog, result)
                finally:
                    backlog.close(len(workers))
                    await asyncio.gather(*workers, return_exceptions=True)
                    keeper.cancel()
        finally:
            await self.outcomes.aclose()
            await self.poster.aclose()
            if self.helper is not None:
                self.helper.close()
                await asyncio.to_thread(self.helper.settle)
        if leftovers:
            result.released = await self.in_store(self.give_back, leftovers)
        if result.replanned or result.returned or result.retrying:
            # Rows left to re-planning, back from a dead worker or planned again for a retry: any of
            # them may have been claimed while another pass planned the move of its milestone
            # (planning leaves claimed rows alone), so the next does every row. (Rows given back
            # on stopping drop the mark in outbox.release itself.)
            await self.in_store(self.forget_planning)
        if (line := result.line()) is not None:
            log.info("%s", line)
        return result

    async def feed(self, backlog: Backlog, result: PassResult) -> None:
        while not (self.stopping or self.store_lost):
            rows, people, store = await self.in_store(self.claim_batch, backlog.claim_size(), result)
            if not rows:
                return
            batch = [(row, people.get(row.subscriber_id)) for row in rows]
            emails = [index for index, row in enumerate(rows) if not is_channel_row(row)]  # channels post as they go
            ready = await self.prepare_ahead([batch[index] for index in emails], store) if emails else []
            # Rendered ahead, a claim takes longer to be ready: ask for the next one sooner.
            backlog.refill = 1.0 if ready else 0.5
            result.rendered_ahead += len(ready)
            prepared: list[Prepared | None] = [None] * len(batch)
            for index, done in zip(emails, ready, strict=False):
                prepared[index] = done
            backlog.add([(row, person, store, p) for (row, person), p in zip(batch, prepared, strict=True)])
            await backlog.running_low()

    async def prepare_ahead(self, batch: list[tuple[Claimed, Person | None]], store: Store) -> list[Prepared]:
        """The batch composed and rendered by the helper, if one is running; else nothing (workers render)."""
        if self.helper is None:
            return []
        self.helper.note_claimed(len(batch))
        return await self.helper.prepare(batch, store, self.clock()) or []

    def expect_due(self) -> int:
        """Count the rows due now; if they are many, start the render helper before the pass (send-due).

        Forked from here, with no other thread yet, it has the renderer at once: the pass waits
        the moment it takes to answer, so that every batch goes through it.
        """
        if self.helper is None or not self.helper.after:
            return 0
        with transaction(self.engine) as session:
            due = count_due(session, self.clock(), self.helper.after + 1)
        if self.helper.wanted(due):
            self.engine.dispose()  # a fork inherits no database connection; the pool opens new ones
            self.helper.expect(due)
            self.helper.wait_ready(HELPER_START)
        return due

    async def work(self, backlog: Backlog, recorder: Recorder, result: PassResult, leftovers: list[int]) -> None:
        """Send rows one after the other; each next message's content goes only once the last is recorded.

        The envelope of the next message (MAIL, RCPT, DATA) overlaps the commit of the previous
        outcome, but the server accepts it only after that commit: at any moment a worker has at
        most one message accepted and not yet recorded.
        """
        previous: asyncio.Future[None] | None = None
        while (item := await backlog.get()) is not None:
            row, person, store, ready = item
            if self.stopping or self.store_lost:
                leftovers.append(row.id)
                continue
            try:
                hold = None if previous is None else partial(recorder.wait, previous)
                done = await self.deliver(row, person, store, hold, ready)
            except Exception:  # the last outcome could not be recorded: stop sending, leases expire
                log.exception("delivery %d not sent: the store could not record the last outcome", row.id)
                self.store_lost = True
                leftovers.append(row.id)
                continue
            previous = recorder.submit(done)
            previous.add_done_callback(partial(count_recorded, result, done))
            # Noticed even if no hold of this worker waits for it (its next row failed before its content).
            previous.add_done_callback(self.note_unrecorded)
        if previous is not None:
            with contextlib.suppress(Exception):  # logged by the recorder
                await recorder.wait(previous)

    def note_unrecorded(self, recorded: asyncio.Future[None]) -> None:
        """An outcome could not be recorded: send nothing more this pass (its row's lease will expire)."""
        if not recorded.cancelled() and recorded.exception() is not None:
            self.store_lost = True

    async def keep_leases_alive(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease.total_seconds() / 3)
            try:
                await self.in_store(self.keep_leases)
            except Exception:  # tried again in a third of a lease: one failure must not end the renewals
                log.warning("could not renew %d lease(s)", len(self.held), exc_info=True)

    async def deliver(
        self, row: Claimed, person: Person | None, store: Store, hold: Hold | None = None, ready: Prepared | None = None
    ) -> Done:
        """Compose, render (unless *ready* already) and send one row; every way it can end is an Outcome.

        *hold* waits for the commit of this worker's last outcome: the message's content is
        held until it is done (and not sent at all if it failed).
        """
        now = self.clock()
        if self.revisions.known_changed(row):  # no envelope for a row known stale already (no read: no wait)
            return await self.stale(row, hold)
        if is_channel_row(row):
            return await self.post(row, person, store, hold)
        prepared = ready
        if prepared is None or (row.deadline_at is not None and row.deadline_at <= now):
            # Not rendered ahead, or its deadline passed since it was: composed as it would be now.
            prepared = prepare(self.renderer, row, person, store, now)
        if isinstance(prepared, Skip | Unrenderable):
            if hold is not None:
                await hold()  # outcomes of one worker are recorded in order
            if isinstance(prepared, Unrenderable) and prepared.transient:
                return self.retry_later(row, prepared.error)
            if isinstance(prepared, Unrenderable):  # rendering logged it, with the traceback
                return self.quarantine(row, prepared.error, logged=True)
            if prepared.state == "quarantined":
                return self.quarantine(row, prepared.reason)
            return Done(row, Outcome(row.id, prepared.state, now, reason=prepared.reason, tried=False))
        started = time.perf_counter()
        try:
            receipt = await self.mailer.send_bytes(
                prepared.data, sender=self.envelope_sender(row.id), recipients=[prepared.recipient],
                before_data=partial(self.before_content, row, hold),
            )  # fmt: skip
        except DeliveryError as exc:
            self.metrics.smtp_error(exc, row.kind)
            return self.failure(row, exc)
        except Stale:
            return self.stale_done(row)
        except RevisionsUnread as exc:
            return self.retry_later(row, str(exc))
        sent_at = self.clock()
        self.metrics.sent(row.kind, time.perf_counter() - started, (sent_at - row.send_at).total_seconds())
        return Done(row, Outcome(row.id, "sent", sent_at, reply=receipt.reply))

    async def post(self, row: Claimed, person: Person | None, store: Store, hold: Hold | None) -> Done:
        """Compose a channel's row as an email would be, write it as the channel's payload and POST it.

        Posted only once this worker's last outcome is committed (*hold*), as an email's content:
        a crash leaves at most one post per worker delivered and not recorded, and its
        `Tracker-Delivery` header (the row's key) lets the receiver fold it.
        """
        now = self.clock()
        channel = self.channels.get(row.subscriber_id)
        composed = compose(row, person, store, now) if channel is not None and channel.state == "active" else None
        if hold is not None:
            await hold()  # outcomes of one worker are recorded in order
        if channel is None or composed is None:  # removed or quarantined since it was planned: planned again if back
            return Done(row, Outcome(row.id, "cancelled", now, reason=CHANNEL_GONE, tried=False))
        if isinstance(composed, Skip):
            if composed.state == "quarantined":
                return self.quarantine(row, composed.reason)
            return Done(row, Outcome(row.id, composed.state, now, reason=composed.reason, tried=False))
        try:
            request = request_of(self.renderer, row, channel, composed)
        except LookupError as exc:  # a variable unset where this instance runs: the operator can set it
            return self.retry_later(row, describe_text(str(exc)))
        except Exception as exc:  # noqa: BLE001  # one row's bad data quarantines that row, not the pass
            return self.quarantine(row, f"could not write the channel's message: {describe_error(exc)}")
        try:
            if await self.revisions.changed(row):
                return self.stale_done(row)
        except RevisionsUnread as exc:
            return self.retry_later(row, str(exc))
        started = time.perf_counter()
        try:
            answer = await self.poster.post(request.url, request.body, request.headers, now)
        except PostError as exc:
            if exc.permanent:
                return Done(row, Outcome(row.id, "failed", self.clock(), error=exc.message,
                                         reason="refused by the channel"), refused=True)  # fmt: skip
            done = self.retry_later(row, exc.message, at_least=exc.retry_after)
            return replace(done, refused=exc.status is not None)
        sent_at = self.clock()
        self.metrics.sent(row.kind, time.perf_counter() - started, (sent_at - row.send_at).total_seconds())
        return Done(row, Outcome(row.id, "sent", sent_at, reply=answer.reply))

    def envelope_sender(self, delivery_id: int) -> str:
        """The MAIL FROM of a row's message: its own signed bounce address (VERP), else the From address."""
        if not self.config.bounce_address:
            return self.envelope_from
        return verp_address(self.secret, self.config.bounce_address, delivery_id)

    async def before_content(self, row: Claimed, hold: Hold | None) -> None:
        """Wait for this worker's last outcome to be committed; raise Stale if *row*'s milestone changed since.

        The last moment before the content goes: a change stored before it reaches the row
        (within FRESH seconds), whether it was claimed or rendered ahead before the change.
        """
        if hold is not None:
            await hold()
        if await self.revisions.changed(row):
            raise Stale(row.id)

    async def stale(self, row: Claimed, hold: Hold | None) -> Done:
        if hold is not None:
            await hold()  # outcomes of one worker are recorded in order
        return self.stale_done(row)

    def stale_done(self, row: Claimed) -> Done:
        """Not sent: back to planned as it was, for re-planning to move it or plan it again (§3)."""
        outcome = Outcome(row.id, "planned", self.clock(), reason=STALE, tried=False)
        return Done(row, outcome, stale=True)

    async def retry_after_hold(self, row: Claimed, hold: Hold | None, error: str) -> Done:
        if hold is not None:
            await hold()
        return self.retry_later(row, error)

    def quarantine(self, row: Claimed, error: str, *, logged: bool = False) -> Done:
        """Set aside a row that cannot be composed or rendered (bad data, or a bug), with the reason; one log line."""
        error = describe_text(error)
        if not logged:
            log.warning("delivery %d (%s) quarantined; the others go on: %s", row.id, row.key_text, error)
        return Done(row, Outcome(row.id, "quarantined", self.clock(), error=error, reason=error, tried=False))

    def failure(self, row: Claimed, exc: DeliveryError) -> Done:
        now = self.clock()
        error = exc.message  # it says the server's code and words already
        refused = exc.code is not None  # an answer, not a broken connection
        if exc.permanent:
            rejected = exc.stage in ("rcpt", "data")
            reason = REJECTED if rejected else "refused by the relay"
            outcome = Outcome(row.id, "failed", now, error=error, reason=reason)
            return Done(row, outcome, permanent_rejection=rejected, refused=refused)
        return replace(self.retry_later(row, error), refused=refused)

    def retry_later(self, row: Claimed, error: str, *, at_least: timedelta | None = None) -> Done:
        """Plan the row again after a backoff (no shorter than *at_least*: a Retry-After), as for a refused message.

        A backoff that would end after the row's deadline becomes one last attempt just before
        it, if there is time for one; else the row fails, saying so.
        """
        now = self.clock()
        wait = backoff(row.attempts + 1, self.config.retry_base, self.config.retry_max)
        retry_at = now + max(wait, at_least or timedelta(0))
        reason = ""
        if row.deadline_at is not None and retry_at >= row.deadline_at:
            retry_at, reason = row.deadline_at - LAST_ATTEMPT, "last attempt before the deadline"
            if retry_at <= now or (at_least is not None and retry_at < now + at_least):  # Retry-After: not sooner
                return Done(row, Outcome(row.id, "failed", now, error=error, reason=NO_TIME_LEFT))
        return Done(row, Outcome(row.id, "planned", now, error=error, reason=reason, retry_at=retry_at))


def sign_in_people(session: Session, link_ids: list[int], links: LinkMaker, now: datetime) -> dict[int, Person]:
    """The users sign-in rows go to, keyed as the rows name them; the state says whether the link may be used."""
    found = session.exec(
        select(SignInLink, User).where(col(SignInLink.id).in_(link_ids), SignInLink.user_id == User.id)
    ).all()
    people = {}
    for link, user in found:
        assert link.id is not None
        state = "used" if link.used_at is not None else "expired" if now >= link.expires_at else "unused"
        url = f"{links.base}/console/sign-in/{link_token(links.secret, link.salt)}"
        people[sign_in_recipient(link.id)] = Person(sign_in_recipient(link.id), user.email, "", user.language, "UTC",
                                                    state, (), None, Links("", "", "", "", confirm=url))  # fmt: skip
    return people


def followed(audiences: object, timelines: object) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """A recipient's stored audiences and timelines; if they do not read, none (the planner quarantines them)."""
    try:
        return read_names(audiences) or (), read_names(timelines)
    except ValueError:
        return (), ()


async def recorded(outcome: asyncio.Future[None]) -> None:
    """Wait until *outcome* is committed (raise if it could not be); a cancelled waiter leaves it be."""
    if not outcome.done():
        await asyncio.shield(outcome)
    outcome.result()


def count_recorded(result: PassResult, done: Done, recorded: asyncio.Future[None]) -> None:
    if not recorded.cancelled() and recorded.exception() is None:
        result.add(done)


def relax_durability(connection: Connection) -> None:
    """Claims and outcomes need not wait for PostgreSQL's disk flush (synchronous_commit off).

    A crash of a Tracker process loses nothing by this: the commit is on the server. Only a
    crash of the database server itself can undo the last few, and then a claim comes back
    (harmless) or a sent message is sent again with the same Message-ID, which clients fold:
    the same bound SQLite's synchronous=NORMAL gives. Syncs and planning keep full durability.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL synchronous_commit TO OFF"))


def describe(result: Replan | None) -> str:
    if result is None or not result.changed:
        return "unchanged"
    return f"+{result.added} added, {result.moved} moved, {result.revived} planned again, {result.cancelled} cancelled"


def failure_event(done: Done, now: datetime) -> Event:
    row, outcome = done.row, done.outcome
    return Event(
        at=now,
        kind=f"delivery_{outcome.state}",
        timeline_id=row.timeline_id,
        milestone_key=row.milestone_key or None,
        subscriber_id=row.subscriber_id,
        detail={"delivery": row.id, "kind": row.kind, "error": outcome.error, "reason": outcome.reason},
        actor="mailer",
    )


def suspend_if_rejected(session: Session, subscriber_id: int, limit: int, now: datetime) -> bool:
    """Suspend an address whose last *limit* messages were all rejected; cancel what was planned."""
    last = session.exec(
        select(Delivery.state, Delivery.reason)
        .where(Delivery.subscriber_id == subscriber_id, col(Delivery.state).in_(("sent", "failed")))
        .order_by(col(Delivery.updated_at).desc(), col(Delivery.id).desc())
        .limit(limit)
    ).all()
    if len(last) < limit or any(state != "failed" or reason != REJECTED for state, reason in last):
        return False
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.state != "confirmed":
        return False
    subscriber.state, subscriber.changed_at = "suspended", now
    session.add(subscriber)
    session.add(Event(at=now, kind="subscriber_suspended", subscriber_id=subscriber_id,
                      detail={"email": subscriber.email, "after": limit}, actor="mailer"))  # fmt: skip
    session.execute(
        update(Delivery.__table__)  # type: ignore[attr-defined]
        .where(col(Delivery.subscriber_id) == subscriber_id, col(Delivery.state) == "planned")
        .values(state="cancelled", reason="address suspended", updated_at=now)
    )
    log.warning("suspended %s after %d rejected messages", subscriber.email, limit)
    return True


Item = tuple[Claimed, Person | None, Store, Prepared | None]
MilestoneKey = tuple[str, str]  # timeline, milestone


class Stale(Exception):  # noqa: N818  # a state of the row, not a failure
    """A claimed reminder's milestone changed since its claim: its content must not go."""


class RevisionsUnread(Exception):  # noqa: N818
    """The milestones' revisions could not be read: a row that cannot be checked is not sent now."""


class Revisions:
    """The current revision of each milestone whose reminders this pass sends, read again once FRESH seconds old.

    One read for every worker, of every milestone the pass has met, never a query per row: a
    change stored during a pass reaches the rows claimed or rendered before it within FRESH seconds.
    """

    def __init__(
        self, read: Callable[[Collection[MilestoneKey]], Awaitable[dict[MilestoneKey, int]]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.read, self.clock = read, clock
        self.watched: set[MilestoneKey] = set()
        self.known: dict[MilestoneKey, int | None] = {}
        self.read_at = -math.inf  # when the read that gave *known* began
        self.reading: asyncio.Future[None] | None = None

    async def changed(self, row: Claimed) -> bool:
        """Tell whether *row* is a reminder whose milestone has a revision other than the one it was claimed for."""
        if row.kind != "reminder" or row.revision is None:
            return False
        key, asked = (row.timeline_id, row.milestone_key), self.clock()
        while key not in self.known or self.read_at < asked - FRESH:
            self.watched.add(key)
            if self.reading is None:
                self.reading = asyncio.ensure_future(self.read_all())
            await asyncio.shield(self.reading)
        current = self.known[key]
        return current is not None and current != row.revision

    def known_changed(self, row: Claimed) -> bool:
        """Tell, from the revisions read already, whether *row* is a reminder whose milestone changed."""
        if row.kind != "reminder" or row.revision is None:
            return False
        current = self.known.get((row.timeline_id, row.milestone_key))
        return current is not None and current != row.revision

    async def read_all(self) -> None:
        keys, started = set(self.watched), self.clock()
        try:
            found = await self.read(keys)
        except Exception as exc:
            raise RevisionsUnread(f"could not read its milestone's revision: {describe_error(exc)}") from exc
        finally:
            self.reading = None
        self.known = {key: found.get(key) for key in keys}
        self.read_at = started


class Backlog:
    """Rows claimed and not yet taken by a worker, and how many to claim next.

    A claim is about AHEAD seconds of sending at the rate rows were taken since the last one,
    within [low, high], and the next is made once `refill` of one is left (half; a whole one when
    batches are rendered ahead, as they take longer to be ready). A fast pass makes few
    large claims (each claim costs a transaction); behind a slow relay an instance holds only a
    few rows, so the rest stay free for other instances, and a crash strands few behind a lease.
    """

    AHEAD = 0.1  # seconds

    def __init__(
        self, low: int, high: int, clock: Callable[[], float] = time.monotonic, *, refill: float = 0.5
    ) -> None:
        self.low, self.high, self.size = low, high, low
        self.refill = refill  # claim again once this fraction of a claim or less is left
        self.clock = clock
        self.items: asyncio.Queue[Item | None] = asyncio.Queue()
        self.taken, self.since = 0, clock()
        self.low_water = asyncio.Event()

    def claim_size(self) -> int:
        now = self.clock()
        if self.taken and now > self.since:
            wanted = int(self.taken / (now - self.since) * self.AHEAD)
            self.size = min(max(wanted, self.low), self.high)
        self.taken, self.since = 0, now
        return self.size

    def add(self, items: list[Item]) -> None:
        for item in items:
            self.items.put_nowait(item)

    async def get(self) -> Item | None:
        """The next row for a worker; None once the pass is over."""
        item = await self.items.get()
        self.taken += 1
        if self.items.qsize() <= self.size * self.refill:
            self.low_water.set()
        return item

    async def running_low(self) -> None:
        """Return once *refill* of a claim or less is left."""
        while self.items.qsize() > self.size * self.refill:
            self.low_water.clear()
            await self.low_water.wait()

    def close(self, workers: int) -> None:
        """Tell each worker that nothing more comes, once it has taken what is left."""
        for _ in range(workers):
            self.items.put_nowait(None)


@dataclass
class Recorder:
    """Group commit: a write takes every outcome queued when it starts, typically one per worker.

    It starts once *full* outcomes are queued (one from each worker: the others are sending
    their next envelope meanwhile), or when a worker needs one committed (wait). Writing each
    outcome as it came made several times as many commits, each costing more than it saved.
    """

    write: Callable[[list[Done]], Awaitable[None]]
    full: int = 1_000_000  # this many outcomes queued start a write before anyone waits
    pending: list[tuple[Done, asyncio.Future[None]]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False
    task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Recorder:
        self.task = asyncio.create_task(self.loop())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.closing = True
        self.wake.set()
        if self.task is not None:
            await self.task

    def submit(self, done: Done) -> asyncio.Future[None]:
        """Queue *done* for the next write; the future is done once it is committed."""
        future = asyncio.get_running_loop().create_future()
        self.pending.append((done, future))
        if len(self.pending) >= self.full:
            self.wake.set()
        return future

    async def wait(self, outcome: asyncio.Future[None]) -> None:
        """Return once *outcome* is committed (raise if it could not be), asking for the write."""
        if not outcome.done():
            self.wake.set()
        await recorded(outcome)

    async def loop(self) -> None:
        while True:
            if not self.pending:
                if self.closing:
                    return
                await self.wake.wait()
                self.wake.clear()
                continue
            batch, self.pending = self.pending, []
            try:
                await self.write([done for done, _ in batch])
            except Exception as exc:
                log.exception("could not record %d outcome(s); their leases will expire", len(batch))
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for _, future in batch:
                future.set_result(None)


def make_renderer(settings: Settings) -> Renderer:
    """The renderer every message of this process goes through (templates compiled once)."""
    return recipe_of(settings).build()


def recipe_of(settings: Settings) -> Recipe:
    host = urlsplit(settings.base_url).hostname or "localhost"
    sender = Sender(settings.from_address, settings.base_url, f"<deadlines.{host}>", settings.reminder_hour)
    return Recipe(tuple(settings.template_folders("emails")), settings.locales, sender, settings.dkim_signer())


def make_dispatcher(
    engine: Engine, settings: Settings, secret: bytes, *, clock: Clock | None = None, offload: bool = True
) -> Dispatcher:
    """A dispatcher wired from the settings: SMTP pool (or .eml folder), renderer, metrics."""
    mailer = make_mailer(
        settings.smtp_url, settings.outbox_dir, connections=settings.smtp_connections, rate=settings.smtp_rate
    )
    config = DispatchConfig.from_settings(settings)
    metrics = Metrics(engine, clock)
    renderer = make_renderer(settings)
    helper = RenderHelper(renderer, recipe_of(settings), after=settings.render_helper_after)
    return Dispatcher(
        engine, renderer, mailer, config, secret, clock=clock, metrics=metrics, offload=offload, helper=helper
    )
