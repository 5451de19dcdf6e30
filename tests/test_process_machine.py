"""A state machine of the process (issue 15): random syncs, moves, completions, reopenings and clock
advances never remind anyone of a step that is waiting, done or cancelled, and never send one
subscriber two `changed` messages for one change set.

Each step runs the real engine: the store, the dispatcher, a real SMTP server.
"""

from __future__ import annotations

import tempfile
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlmodel import select

from tests.support.database import empty_database
from tests.support.delivery import Clock, at, deliver, make_dispatcher, mark_done, subscribe, sync
from tests.support.smtp_server import SMTPTestServer
from tracker.store.engine import open_store, transaction
from tracker.store.models import CompletionRecord, Delivery
from tracker.timelines.completions import ReopenRequest, record_reopen
from tracker.timelines.states import Process
from tracker.timelines.stored import load_views
from tracker.timelines.views import find_occurrence, occurrence_of

CHAIN = """
    id: chain
    title: Drafting chain
    timezone: Europe/Zurich
    audiences: [membership, secretariat]
    reminders: [7d, 1d, 4h]
    milestones:
      - id: draft
        title: Draft posted
        owner: secretariat
        due: 2017-03-{draft:02d}
      - id: comments
        title: Comments on the draft
        owner: membership
        due: draft.done + 10d
        opens_after: draft
      - id: final
        title: Final text
        owner: secretariat
        due: comments + 7d
      - id: meeting
        title: Meeting
        starts: 2017-04-{meeting:02d} 10:00
        ends: 2017-04-{meeting:02d} 17:00
        status: {status}
"""
SMTP = SMTPTestServer()
pytestmark = pytest.mark.store


class Process15(RuleBasedStateMachine):
    """One store, one timeline, two members; the clock only moves forward."""

    def __init__(self) -> None:
        super().__init__()
        if not SMTP.running:  # one server for every example (a daemon thread, gone with the test process)
            SMTP.start()
        self.folder = Path(tempfile.mkdtemp(prefix="machine-"))
        self.database = empty_database(self.folder)
        self.engine = open_store(self.database.__enter__())
        self.schedules = self.folder / "schedules"
        self.schedules.mkdir()
        self.clock = Clock(at("2017-03-01 08:00"))
        self.file = {"draft": 10, "meeting": 20, "status": "active"}
        self.write_and_sync()
        subscribe(self.engine, "member@example.org", self.clock.now, audiences=("membership",))
        subscribe(self.engine, "sec@example.org", self.clock.now, audiences=("secretariat",))
        self.deliver()  # the first pass takes the history as it is

    def write_and_sync(self) -> None:
        (self.schedules / "chain.yaml").write_text(textwrap.dedent(CHAIN.format(**self.file)).lstrip())
        sync(self.engine, self.schedules, self.clock.now)

    @rule(hours=st.integers(min_value=1, max_value=240))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(hours=hours)
        self.deliver()

    def deliver(self) -> None:
        deliver(make_dispatcher(self.engine, SMTP.url, self.clock))  # one pass, as `tracker send-due` makes
        self.no_reminder_of_a_step_not_open()  # checked against the state the pass saw

    @rule(day=st.integers(min_value=1, max_value=28))
    def the_draft_is_rescheduled(self, day: int) -> None:
        self.file["draft"] = day
        self.write_and_sync()

    @rule(day=st.integers(min_value=1, max_value=28), status=st.sampled_from(["active", "cancelled"]))
    def the_meeting_moves_or_is_called_off(self, day: int, status: str) -> None:
        self.file.update(meeting=day, status=status)
        self.write_and_sync()

    @precondition(lambda self: not self.draft_done())
    @rule()
    def the_draft_is_posted(self) -> None:
        mark_done(self.engine, "chain/draft", self.clock.now)

    @precondition(lambda self: self.draft_done())
    @rule()
    def the_completion_was_a_mistake(self) -> None:
        with transaction(self.engine, write=True) as session:
            record_reopen(session, ReopenRequest("chain/draft", "by mistake"), now=self.clock.now)

    def draft_done(self) -> bool:
        with transaction(self.engine) as session:
            return session.exec(select(CompletionRecord)).first() is not None

    def no_reminder_of_a_step_not_open(self) -> None:
        with transaction(self.engine) as session:
            views = load_views(session)
            # Rows are planned long before they go: what went in the last pass is what was sent at `now`.
            sent = session.exec(
                select(Delivery).where(Delivery.kind == "reminder", Delivery.sent_at == self.clock.now)
            ).all()
        process = Process(views, now=self.clock.now)
        by_key = {(v.timeline_id, v.key): v for v in views}
        for row in sent:
            view = by_key[(row.timeline_id, row.milestone_key)]
            item = find_occurrence(view, row.occurrence) if row.occurrence else occurrence_of(view, None)
            assert item is not None
            state = process.state(item)
            assert state not in ("waiting", "done", "cancelled"), (row.milestone_key, row.slot, state)

    @invariant()
    def one_changed_message_per_change_set_and_subscriber(self) -> None:
        with transaction(self.engine) as session:
            rows = session.exec(select(Delivery).where(Delivery.kind == "changed", Delivery.state == "sent")).all()
        counts = Counter((row.subscriber_id, row.slot) for row in rows)
        assert all(count == 1 for count in counts.values()), counts

    def teardown(self) -> None:
        self.engine.dispose()
        self.database.__exit__(None, None, None)


Process15.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=14,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestProcessMachine = Process15.TestCase
