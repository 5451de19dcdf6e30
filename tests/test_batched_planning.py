"""A plan made a batch of subscribers at a time is the plan made at once (issue 18, point 2).

Planning holds one batch of subscribers in memory, not everyone's every message. Whatever the
batches, the outbox must come out the same: the same rows (keys, times, states, reasons), the
same quarantine entries, the same counts. The same story is told to two stores, one planned in
batches cut small (spans of two subscribers, or cut by the messages a batch may hold) and one
with the default batches (everyone at once at this size), and the stores compared after each
pass: a first whole plan with held windows and digests, a pass after a hand hold, an
unsubscription and a moved milestone (its re-planning batched too), late steps a fortnight
later (overdue and delayed notices) after a row was sent, a whole plan over that history, and
passes that find nothing to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlmodel import Session, col

from tests.support.database import empty_database
from tests.support.delivery import Clock, at, make_dispatcher, rows, set_subscriber, subscribe, sync
from tests.support.timelines import HLPF
from tracker.delivery import outbox
from tracker.delivery.outbox import Replan
from tracker.delivery.outbox_log import act
from tracker.delivery.planning import Followed
from tracker.store.engine import open_store, transaction
from tracker.store.models import Delivery, Quarantine, Subscriber
from tracker.subscribers.registry import unsubscribe
from tracker.timelines.stored import load_views
from tracker.timelines.views import follows

pytestmark = pytest.mark.store  # its stores are made by the test: PostgreSQL schemas under TRACKER_TEST_DATABASE_URL

START = at("2017-02-10 09:00")  # the HLPF draft is due on 24 February; its comment window waits for it


def group(a_due: str) -> str:
    steps = [("a", a_due), ("b", "2017-03-01"), ("c", "2017-02-20")]
    milestones = "".join(f"\n  - {{id: {key}, title: Step {key}, owner: membership, due: {due}}}" for key, due in steps)
    return f"id: wg\ntitle: Working group\naudiences: [membership]\nreminders: [7d, 1d]\nmilestones:{milestones}\n"


Snapshot = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


def snapshot(engine: Engine) -> Snapshot:
    """Every outbox row but its id (keys, times, states, reasons, revisions), and the quarantine."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    columns = [column for column in table.c if column.name not in ("id", "claimed_by", "lease_until")]
    with transaction(engine) as session:
        # A notice's slot is drawn at random: notices are not planned here, and are compared without it.
        found = sorted(tuple(value if column.name != "slot" or row.kind in outbox.REPLANNED_KINDS else ""
                             for column, value in zip(columns, row, strict=True))
                       for row in session.execute(select(*columns)))  # fmt: skip
        entries = sorted(tuple(row) for row in session.execute(select(Quarantine.__table__)))  # type: ignore[attr-defined]
    return found, entries


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two empty stores (SQLite files, or PostgreSQL schemas), each with its own timeline folder."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with empty_database(tmp_path / "a") as one, empty_database(tmp_path / "b") as other:
        engines = open_store(one), open_store(other)
        yield engines
        for engine in engines:
            engine.dispose()


def story(engine: Engine, schedules: Path) -> Iterator[tuple[Replan | None, Snapshot]]:
    """Tell the story to *engine*; yield what each pass planned and the outbox after it."""
    schedules.mkdir(exist_ok=True)
    (schedules / "hlpf.yaml").write_text(HLPF)
    (schedules / "wg.yaml").write_text(group("2017-03-10"))
    sync(engine, schedules, START)
    ids = [subscribe(engine, f"m{n}@example.org", START, audiences=("membership",)) for n in range(4)]
    ids += [subscribe(engine, f"s{n}@example.org", START, audiences=("secretariat",)) for n in range(2)]
    ids.append(subscribe(engine, "both@example.org", START, audiences=("membership", "secretariat")))
    ids.append(subscribe(engine, "wg@example.org", START, timelines=("wg",)))
    ids.append(subscribe(engine, "pending@example.org", START, confirmed=False))
    ids.append(subscribe(engine, "poisoned@example.org", START))
    set_subscriber(engine, ids[1], reminders=["3d", "1d"])
    set_subscriber(engine, ids[2], digest="weekly")
    set_subscriber(engine, ids[6], digest="weekly", reminders=["14d"])
    set_subscriber(engine, ids[-1], reminders="7d")  # stored as text, not a list: quarantined

    def refresh(now: datetime, **options: bool) -> tuple[Replan | None, Snapshot]:
        _, result = make_dispatcher(engine, "smtp://127.0.0.1:1", Clock(now)).refresh(timely=True, **options)
        return result, snapshot(engine)

    yield refresh(START)  # the first plan: everything
    with transaction(engine, write=True) as session:
        assert act(session, "hold", row_of(session, ids[4], "revised-draft", "14d"), "ops@example.org", START)
        subscriber = session.get(Subscriber, ids[3])
        assert subscriber is not None
        unsubscribe(session, subscriber, START)
    (schedules / "wg.yaml").write_text(group("2017-03-12"))
    sync(engine, schedules, START + timedelta(hours=1))
    yield refresh(START + timedelta(hours=1))  # the moved milestone and the subscriber: a part
    with transaction(engine, write=True) as session:  # one reminder went out
        sent = row_of(session, ids[0], "c", "7d")
        session.execute(update(Delivery).where(col(Delivery.id) == sent).values(state="sent"))
    yield refresh(at("2017-02-25 09:00"))  # the draft is late: overdue, delayed; a new week's digests
    yield refresh(at("2017-02-25 10:00"), replan_all=True)  # a whole plan over that history
    yield refresh(at("2017-02-25 10:00"), replan_all=True)  # again: nothing to do
    yield refresh(at("2017-02-25 11:00"))  # a quiet pass


@pytest.mark.parametrize(
    ("subscribers", "messages"),
    [(2, 10**9), (1000, 12), (3, 1)],
    ids=["spans of two subscribers", "cut by messages", "one subscriber at a time"],
)
def test_batches_plan_exactly_what_one_batch_plans(
    stores: tuple[Engine, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, subscribers: int, messages: int
) -> None:
    whole, batched = stores
    at_once = list(story(whole, tmp_path / "whole"))
    with monkeypatch.context() as patch:
        patch.setattr(outbox, "BATCH_SUBSCRIBERS", subscribers)
        patch.setattr(outbox, "BATCH_MESSAGES", messages)
        in_batches = list(story(batched, tmp_path / "batched"))

    for step, ((result, found), (expected_result, expected)) in enumerate(zip(in_batches, at_once, strict=True)):
        assert found == expected, f"pass {step}"
        assert result == expected_result, f"pass {step}"
    outcomes = [result for result, _ in at_once]
    assert outcomes[0] is not None and outcomes[0].added > 0
    assert outcomes[1] is not None and outcomes[1].moved and outcomes[1].cancelled
    assert outcomes[4] is not None and not outcomes[4].changed  # a second whole plan plans nothing new
    assert outcomes[5] is None  # a quiet pass reads nothing
    table, quarantine = at_once[3][1]
    states = {(row[4], row[6]) for row in table}  # (kind, state)
    assert {("reminder", "held"), ("reminder", "cancelled"), ("reminder", "sent"), ("digest", "planned"),
            ("overdue", "planned"), ("delayed", "planned")} <= states  # fmt: skip
    assert [entry[:2] for entry in quarantine] == [("subscriber", str(rows_of_poisoned(whole)))]


def row_of(session: Session, subscriber_id: int, milestone_key: str, slot: str) -> int:
    """The id of a subscriber's reminder: ids differ between the stores, the keys do not."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    statement = select(table.c.id).where(table.c.subscriber_id == subscriber_id, table.c.kind == "reminder")
    statement = statement.where(table.c.milestone_key == milestone_key, table.c.slot == slot)
    return int(session.scalars(statement).one())


def rows_of_poisoned(engine: Engine) -> int:
    with transaction(engine) as session:
        table = Subscriber.__table__  # type: ignore[attr-defined]
        return int(session.scalars(select(table.c.id).where(table.c.email == "poisoned@example.org")).one())


def test_spans_cover_every_subscriber_once_and_the_last_is_open(stores: tuple[Engine, Engine]) -> None:
    engine, _ = stores
    ids = [subscribe(engine, f"p{n}@example.org", START) for n in range(5)]
    with transaction(engine) as session:
        spans = list(outbox.subscriber_spans(session, 2))
    assert spans == [(None, ids[1]), (ids[1], ids[3]), (ids[3], None)]
    assert rows(engine) == []


def test_choices_nested_deeper_than_the_decoder_goes_set_that_subscriber_aside_not_the_pass(tmp_path: Path) -> None:
    # Found by an outside review: json.loads raises RecursionError, not ValueError, and planning stopped for all.
    from sqlalchemy import text

    from tracker.store.engine import open_store, transaction

    start = at("2017-02-10 09:00")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "hlpf.yaml").write_text(HLPF)
    with empty_database(tmp_path) as url:
        engine = open_store(url)
        sync(engine, tmp_path / "s", start)
        good = subscribe(engine, "good@example.org", start)
        bad = subscribe(engine, "bad@example.org", start)
        with transaction(engine, write=True) as session:
            session.execute(text("UPDATE subscribers SET audiences = :v WHERE id = :i"),
                            {"v": "[" * 5000 + "]" * 5000, "i": bad})  # fmt: skip
        make_dispatcher(engine, "smtp://127.0.0.1:1", Clock(start)).refresh(timely=True)
        assert rows(engine, subscriber_id=good)
        assert not rows(engine, subscriber_id=bad)
        engine.dispose()


def test_what_a_choice_follows_is_what_follows_says(stores: tuple[Engine, Engine], tmp_path: Path) -> None:
    engine, _ = stores
    (tmp_path / "open.yaml").write_text("id: open\ntitle: Open\nmilestones:\n  - {id: x, title: X, due: 2017-03-01}\n")
    (tmp_path / "two.yaml").write_text(
        "id: two\ntitle: Two\naudiences: [secretariat, other]\nmilestones:\n  - {id: y, title: Y, due: 2017-03-02}\n"
    )
    list(zip(story(engine, tmp_path), range(1), strict=False))  # the timelines of the story, and one more
    sync(engine, tmp_path, START)
    with transaction(engine) as session:
        views = load_views(session)
    assert {view.owner for view in views} >= {None, "membership", "secretariat"}
    followed = Followed(views)
    for timelines in (None, ("wg",), ("hlpf", "open", "two"), ()):
        for audiences in ((), ("membership",), ("secretariat",), ("other",), ("membership", "other"), ("nobody",)):
            expected = [(v.timeline_id, v.key) for v in views if follows(v, timelines, audiences)]
            assert followed((timelines, audiences)) == expected, (timelines, audiences)


def change_story(engine: Engine, schedules: Path) -> Iterator[Snapshot]:
    """Change sets told to readers of several choices, folded and unfolded; yield the outbox after each pass."""
    schedules.mkdir(exist_ok=True)
    (schedules / "hlpf.yaml").write_text(HLPF)
    (schedules / "wg.yaml").write_text(group("2017-03-10"))
    sync(engine, schedules, START)
    for n in range(3):
        subscribe(engine, f"m{n}@example.org", START, audiences=("membership",))
    subscribe(engine, "s@example.org", START, audiences=("secretariat",))
    subscribe(engine, "wg@example.org", START, timelines=("wg",))
    subscribe(engine, "both@example.org", START, audiences=("membership", "secretariat"))
    subscribe(engine, "pending@example.org", START, confirmed=False)
    subscribe(engine, "board@example.org", START, audiences=("board",))  # follows nothing that moves

    def moved(now: datetime, a_due: str, submission: str = "2017-04-28 12:00") -> Snapshot:
        (schedules / "wg.yaml").write_text(group(a_due))
        (schedules / "hlpf.yaml").write_text(HLPF.replace("2017-04-28 12:00", submission))
        sync(engine, schedules, now)
        make_dispatcher(engine, "smtp://127.0.0.1:1", Clock(now)).refresh(timely=True)
        return snapshot(engine)

    make_dispatcher(engine, "smtp://127.0.0.1:1", Clock(START)).refresh(timely=True)
    yield moved(START + timedelta(hours=1), "2017-03-12", "2017-05-05 12:00")  # one change set, two timelines
    set_subscriber(engine, 6, audiences=["board"])  # both's reader follows neither now: their unsent message stays
    yield moved(START + timedelta(hours=2), "2017-03-14", "2017-05-05 12:00")  # folded into the unsent messages
    yield moved(START + timedelta(hours=3), "2017-03-14")  # the submission back: its line goes, wg's stays
    with transaction(engine, write=True) as session:  # the wg messages go out
        session.execute(update(Delivery).where(col(Delivery.kind) == "changed").values(state="sent"))
    yield moved(START + timedelta(hours=4), "2017-03-10")  # after they went: a new message each


@pytest.mark.parametrize("subscribers", [1, 2], ids=["one subscriber a span", "two a span"])
def test_change_sets_told_a_span_of_subscribers_at_a_time_are_told_as_at_once(
    stores: tuple[Engine, Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, subscribers: int
) -> None:
    # A change set told to 100,000 readers holds a span's readers and unsent messages at a time.
    whole, spans = stores
    at_once = list(change_story(whole, tmp_path / "whole"))
    with monkeypatch.context() as patch:
        patch.setattr(outbox, "BATCH_SUBSCRIBERS", subscribers)
        in_spans = list(change_story(spans, tmp_path / "spans"))
    for step, (found, expected) in enumerate(zip(in_spans, at_once, strict=True)):
        assert found == expected, f"pass {step}"
    changed = [[row for row in table if row[4] == "changed"] for table, _ in at_once]
    told = [{(row[0], row[6]): [line[:3] for line in row[14]] for row in rows} for rows in changed]  # fmt: skip
    a, submission = ["wg", "a", "moved"], ["hlpf", "submission", "moved"]
    # Subscribers 1-3 (membership), 4 (secretariat), 5 (wg only), 6 (both); 7 is not confirmed.
    first = {(1, "planned"): [a], (2, "planned"): [a], (3, "planned"): [a], (4, "planned"): [submission],
             (5, "planned"): [a], (6, "planned"): [a, submission]}  # fmt: skip
    assert told[0] == told[1] == first  # the second move folded into the same messages
    folded = {row[0]: row[14][0][4] for row in changed[1] if row[14][0][1] == "a"}
    assert folded == dict.fromkeys((1, 2, 3, 5, 6), "2017-03-14T22:59:59+00:00")  # 6's too, though it follows no more
    back = {key: lines for key, lines in first.items() if key[0] != 4} | {(4, "cancelled"): [submission]}
    assert told[2] == back | {(6, "planned"): [a]}  # the submission moved back: its line goes, and a message left empty
    names = [c.name for c in Delivery.__table__.c if c.name not in ("id", "claimed_by", "lease_until")]  # type: ignore[attr-defined]
    reasons = [row[names.index("reason")] for row in changed[2] if row[0] == 4]
    assert reasons == ["nothing left to tell: moved back to its earlier date"]
    # After the messages went: a new message each to those it concerns now (not 6).
    assert {key: lines for key, lines in told[3].items() if key[1] == "planned"} == {
        (n, "planned"): [a] for n in (1, 2, 3, 5)
    }
