"""Every query a delivery pass runs finds its rows through an index at 100,000 outbox rows (issue 18, point 5).

The statements are the real ones: captured as the pass's functions run them (in a transaction
rolled back), then asked for their plan with the same parameters, on SQLite and, when the
suite runs on it, PostgreSQL. A full scan of the outbox here is a pass that grows with a
month of reminders to every subscriber instead of with what is due.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from tracker.delivery import dispatcher, notices, outbox, partial, retention
from tracker.store.bulk import insert_rows
from tracker.store.engine import transaction
from tracker.store.models import Delivery

NOW = datetime(2027, 1, 1, tzinfo=UTC)
ROWS = 100_000
# Statements that may read the claim index on its state alone: the minimum of a range is its
# first entry, and claimed rows are only those in flight (a few batches), not the outbox.
BY_STATE_ALONE = ("min(deliveries.attempt_at)", "deliveries.lease_until <")


@pytest.fixture(scope="module")
def outbox_rows() -> list[dict[str, Any]]:
    """A month of reminders: a third sent, the rest planned, a few of those due now."""
    rng = random.Random(18)
    rows = []
    for n in range(ROWS):
        at = NOW + timedelta(minutes=rng.randint(-50, 60 * 24 * 35))
        rows.append({"subscriber_id": n % 5000, "timeline_id": f"t{n % 50}", "milestone_key": f"m{n % 10}",
                     "occurrence": "", "kind": "reminder", "slot": str(n), "state": "sent" if n % 3 == 0 else "planned",
                     "send_at": at, "attempt_at": at, "deadline_at": at + timedelta(days=1), "attempts": 0,
                     "created_at": NOW, "updated_at": NOW, "last_error": "", "reply": "", "reason": "",
                     "revision": None})  # fmt: skip
    return rows


def captured(engine: Engine, work: Callable[[Any], None]) -> list[tuple[str, Any]]:
    """The statements *work* runs on the outbox (in a transaction rolled back)."""
    seen: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH", "DELETE")):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        with transaction(engine, write=True) as session:
            work(session)
            session.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    return [(statement, parameters) for statement, parameters in seen if "deliveries" in statement]


def a_pass(session: Any) -> None:
    """One pass's outbox work (claim, counts, skips, returns, suspension check, re-planning, a change set)."""
    outbox.claim(session, now=NOW, limit=32, lease=timedelta(minutes=5), worker="w")
    outbox.count_due(session, NOW, 1000)
    outbox.next_attempt(session)
    outbox.skip_stale(session, NOW)
    outbox.return_expired(session, NOW)
    dispatcher.suspend_if_rejected(session, 7, 5, NOW)
    retention.prune_log(session, before=NOW - timedelta(days=365))
    # Re-plan by milestone, a span of subscribers at a time; a timeline's milestones; by subscriber.
    partial.rows_of_milestones(session, {("t3", "m3"): ("reminder",)}, NOW, (100, 2100))
    partial.kinds_of(session, set(), set(), ["t3"])
    partial.rows_of_subscribers(session, [7, 8], NOW)
    outbox.load_replannable(session, NOW, (100, 2100))  # the whole plan, a span of subscribers at a time
    change_set(session)


def change_set(session: Any) -> None:
    """A change set told a span of subscribers at a time: their unsent messages and 'opened' notices."""
    notices.Pending.load(session, (100, 2100), [("t3", "m3"), ("t4", "m4")])
    notices.opened_notices(session, [("t3", "m3"), ("t4", "m4")], (100, 2100))


def plans(engine: Engine, statements: list[tuple[str, Any]]) -> Iterator[tuple[str, str]]:
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        for statement, parameters in statements:
            cursor.execute(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + statement, parameters)
            yield statement, "\n".join(str(row[0] if postgres else row[-1]) for row in cursor.fetchall())


def full_reads(engine: Engine, statement: str, plan: str) -> list[str]:
    """The lines of *plan* that read the outbox whole (or walk all of one state)."""
    if engine.dialect.name == "postgresql":
        return re.findall(r"Seq Scan on deliveries\b.*", plan)
    found = re.findall(r"^SCAN (?:deliveries|later|opened)\b.*", plan, re.MULTILINE)
    if not any(allowed in statement for allowed in BY_STATE_ALONE):
        found += re.findall(r".*ix_deliveries_(?:claim|done) \(state=\?\)$", plan, re.MULTILINE)
    return found


def test_a_pass_reads_the_outbox_through_its_indexes(engine: Engine, outbox_rows: list[dict[str, Any]]) -> None:
    with transaction(engine, write=True) as session:
        insert_rows(session, Delivery.__table__, outbox_rows)  # type: ignore[attr-defined]
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))

    statements = captured(engine, a_pass)
    scans = {
        " ".join(s.split())[:120]: lines
        for s, plan in plans(engine, statements)
        if (lines := full_reads(engine, s, plan))
    }

    assert (
        len(statements) >= 14
    )  # claim, count, next, four skips, return, suspension, retention, four re-plans, two notices
    assert scans == {}


def test_a_change_set_reads_the_outbox_through_its_indexes_in_a_store_never_analysed(
    engine: Engine, outbox_rows: list[dict[str, Any]]
) -> None:
    # Tracker's stores are not analysed: SQLite then chooses by the indexes' shape alone. Read by kind
    # and state, a span's unsent changed messages walked every planned row (70 s for one re-plan
    # told to 100,000 subscribers).
    with transaction(engine, write=True) as session:
        insert_rows(session, Delivery.__table__, outbox_rows)  # type: ignore[attr-defined]
    statements = captured(engine, change_set)
    scans = {
        " ".join(s.split())[:120]: lines
        for s, plan in plans(engine, statements)
        if (lines := full_reads(engine, s, plan))
    }
    assert len(statements) == 2
    assert scans == {}
