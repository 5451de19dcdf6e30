"""Rendering ahead in a helper process: the same bytes, every row sent once, and a dead helper loses nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from tests.support.cli import TRACKER, cli_env, tracker
from tests.support.delivery import Clock, at, deliver, make_dispatcher, rows, subscribe, sync
from tests.support.factories import REPO
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, WriteTimeline
from tracker.delivery.compose import Store
from tracker.delivery.dispatcher import Dispatcher
from tracker.delivery.outbox import Claimed
from tracker.delivery.rendering import Prepared, Recipe, Rendered, RenderHelper, prepare
from tracker.emails import Sender
from tracker.mail.smtp import on_the_wire
from tracker.mail.wire import WireReady, wire_ready, wire_ready_joined

LANGUAGES = ("en", "fr", "es", "ru", "zh", "ar")
START = 60.0  # seconds a spawned helper may take to import and build its renderer on a slow machine


@pytest.fixture
def members(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Engine:
    """HLPF's 14-day reminder due, for 24 members in the six languages."""
    write_timeline("hlpf", HLPF)
    now = at("2017-02-10 09:00")
    sync(engine, schedules, now)
    for n in range(24):
        subscribe(engine, f"member{n}@example.org", now, audiences=("secretariat",), language=LANGUAGES[n % 6])
    return engine


def with_helper(dispatcher: Dispatcher) -> RenderHelper:
    """Give *dispatcher* a helper started now, as send-due does for a big pass."""
    sender = Sender("Tracker <tracker@example.org>", "https://tracker.example.org", "<deadlines.example.org>")
    recipe = Recipe(REPO / "templates" / "emails", REPO / "locale", sender)
    helper = RenderHelper(dispatcher.renderer, recipe, after=1)
    dispatcher.helper = helper
    helper.expect(2)
    assert helper.wait_ready(START), "the helper did not start"
    return helper


def both_ways(dispatcher: Dispatcher, clock: Clock) -> tuple[list[Prepared] | None, list[Prepared], list[Claimed]]:
    """Claim the rows due and render them in a helper and in this process: (the helper's, this one's, the rows)."""
    claimed, people, store = dispatcher.claim_batch(100)
    batch = [(row, people.get(row.subscriber_id)) for row in claimed]
    helper = with_helper(dispatcher)
    try:
        ahead = asyncio.run(helper.prepare(batch, store, clock.now))
    finally:
        helper.close()
    return ahead, [prepare(dispatcher.renderer, row, person, store, clock.now) for row, person in batch], claimed


def test_the_helper_renders_the_same_bytes_as_this_process(members: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-10 09:00"))
    dispatcher = make_dispatcher(members, smtp.url, clock)
    dispatcher.refresh(timely=True)
    ahead, here, _ = both_ways(dispatcher, clock)
    assert ahead is not None and len(ahead) == len(here) == 24
    assert ahead == here  # recipient and bytes, in six languages
    rendered = [p for p in ahead if isinstance(p, Rendered)]
    assert len(rendered) == 24
    # Checked in the helper: marked unless the wire needs a change (a soft-wrapped link can start a line with a dot).
    for message in rendered:
        needs_change = on_the_wire(bytes(message.data)) != message.data + b".\r\n"
        assert (type(message.data) is WireReady) is not needs_change
    assert any(type(message.data) is WireReady for message in rendered)
    assert {p.recipient for p in rendered} == {f"member{n}@example.org" for n in range(24)}


def test_the_helper_renders_with_the_milestones_as_the_sender_last_read_them(
    members: Engine, smtp: SMTPTestServer
) -> None:
    # The views go to the helper once, not with every batch: a batch after the sender read them again
    # (an event changed one) must be rendered from the new ones, and one after it from the same again.
    clock = Clock(at("2017-02-10 09:00"))
    dispatcher = make_dispatcher(members, smtp.url, clock)
    dispatcher.refresh(timely=True)
    claimed, people, store = dispatcher.claim_batch(100)
    batch = [(row, people.get(row.subscriber_id)) for row in claimed]
    renamed = {key: replace(view, title=f"{view.title} (renamed)") for key, view in store.views.items()}
    later = Store(renamed, {}, {}, store.set_aside)
    helper = with_helper(dispatcher)
    try:
        first = asyncio.run(helper.prepare(batch[:12], store, clock.now))
        second = asyncio.run(helper.prepare(batch[12:], later, clock.now))
        third = asyncio.run(helper.prepare(batch[:12], later, clock.now))
    finally:
        helper.close()
    here = [prepare(dispatcher.renderer, row, person, store, clock.now) for row, person in batch[:12]]
    assert first == here
    assert second == [prepare(dispatcher.renderer, row, person, later, clock.now) for row, person in batch[12:]]
    assert third == [prepare(dispatcher.renderer, row, person, later, clock.now) for row, person in batch[:12]]
    assert third != first
    assert all(b"(renamed)" in p.data for p in third if isinstance(p, Rendered))


def test_the_helper_renders_a_change_set_as_this_process_does(
    members: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline
) -> None:
    # A changed message's shared parts (its calendar, the fixed lines of its text) come back from the
    # helper once a batch, by reference: the messages must still be each reader's own, byte for byte.
    clock = Clock(at("2017-02-10 09:00"))
    dispatcher = make_dispatcher(members, smtp.url, clock)
    dispatcher.refresh(timely=True)
    deliver(dispatcher)  # the 14-day reminders: the members now know the dates
    write_timeline("hlpf", HLPF.replace("2017-02-24", "2017-03-03").replace("2017-04-28 12:00", "2017-05-05 12:00"))
    sync(members, schedules, clock.now)
    dispatcher.refresh(timely=True)
    ahead, here, claimed = both_ways(dispatcher, clock)
    assert [row.kind for row in claimed] == ["changed"] * 24
    assert ahead == here
    # Equal bytes compare equal marked or not: the mark must be the same too (it spares the wire check).
    assert [type(getattr(p, "data", None)) for p in ahead] == [type(getattr(p, "data", None)) for p in here]
    assert all(isinstance(p, Rendered) and b"Content-Type: text/calendar" in p.data for p in ahead)
    assert len({p.data for p in ahead if isinstance(p, Rendered)}) == 24  # each with its own links


def test_a_pass_rendered_ahead_sends_every_row_once(members: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-10 09:00"))
    dispatcher = make_dispatcher(members, smtp.url, clock)
    with_helper(dispatcher)
    result = deliver(dispatcher)
    assert (result.sent, result.rendered_ahead) == (24, 24)
    assert dispatcher.renderer.contents.made == 0  # this process rendered nothing: the helper's bytes went
    assert sorted(m.rcpt_tos[0] for m in smtp.received) == sorted(f"member{n}@example.org" for n in range(24))
    assert len(rows(members, state="sent")) == 24


def test_when_the_helper_dies_the_pass_renders_here_and_loses_nothing(
    members: Engine, smtp: SMTPTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(at("2017-02-10 09:00"))
    dispatcher = make_dispatcher(members, smtp.url, clock)
    helper = with_helper(dispatcher)
    assert helper.pid is not None
    os.kill(helper.pid, signal.SIGKILL)
    with caplog.at_level(logging.WARNING, logger="tracker.delivery.rendering"):
        result = deliver(dispatcher)
    assert (result.sent, result.rendered_ahead) == (24, 0)
    assert dispatcher.renderer.contents.made > 0
    assert len(smtp.received) == 24
    assert "rendering in this process" in caplog.text


def test_a_pass_ends_at_once_though_its_helper_is_still_busy(members: Engine, smtp: SMTPTestServer) -> None:
    # `tracker run` closes the helper at the end of every pass and waits for it to exit (so that a command
    # ending then does not race the executor's exit handler): a helper still busy must not hold the pass.
    dispatcher = make_dispatcher(members, smtp.url, Clock(at("2017-02-10 09:00")))
    helper = with_helper(dispatcher)
    pid = helper.pid
    assert helper._pool is not None and pid is not None
    busy = helper._pool.submit(time.sleep, 60)  # a batch that takes a minute, as a stuck render would
    time.sleep(0.2)
    helper.close()
    stopping = list(helper._stopping)
    helper.settle(timeout=30)
    assert stopping and not any(thread.is_alive() for thread in stopping), "the executor's thread outlived the wait"
    assert busy.done()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the helper is gone, not left rendering
    assert deliver(dispatcher).sent == 24  # and the next pass still sends


def test_ctrl_c_leaves_the_helper_to_the_process_that_started_it(members: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-10 09:00"))
    dispatcher = make_dispatcher(members, smtp.url, clock)
    helper = with_helper(dispatcher)
    assert helper.pid is not None
    os.kill(helper.pid, signal.SIGINT)  # as a Ctrl-C reaches the whole process group
    result = deliver(dispatcher)
    assert (result.sent, result.rendered_ahead) == (24, 24)


def test_a_row_rendered_ahead_whose_deadline_passed_meanwhile_is_not_sent(
    members: Engine, smtp: SMTPTestServer
) -> None:
    clock = Clock(at("2017-02-24 23:59"))  # reminders due, the deadline (the end of the day) a minute away
    dispatcher = make_dispatcher(members, smtp.url, clock)
    dispatcher.refresh(timely=True)
    claimed, people, store = dispatcher.claim_batch(1)
    [row] = claimed
    ahead = prepare(dispatcher.renderer, row, people.get(row.subscriber_id), store, clock.now)
    assert isinstance(ahead, Rendered)
    clock.advance(minutes=2)  # the batch waited past the deadline
    done = asyncio.run(dispatcher.deliver(row, people.get(row.subscriber_id), store, None, ahead))
    assert (done.outcome.state, done.outcome.reason) == ("skipped", "deadline passed before it could be sent")
    assert smtp.received == []


def test_marked_bytes_go_as_they_are_and_unmarked_ones_are_checked() -> None:
    message = b"Subject: x\r\n\r\n.a line with a dot\nand a bare line end\r\n"
    assert on_the_wire(message) == b"Subject: x\r\n\r\n..a line with a dot\r\nand a bare line end\r\n.\r\n"
    ready = WireReady(b"Subject: x\r\n\r\nfine\r\n")
    assert on_the_wire(ready) == b"Subject: x\r\n\r\nfine\r\n.\r\n"


def test_send_due_forks_a_helper_for_a_big_pass(
    members: Engine, database_url: str, schedules: Path, tmp_path: Path, smtp: SMTPTestServer
) -> None:
    env = cli_env(database_url, schedules, TRACKER_SMTP_URL=smtp.url, TRACKER_RENDER_HELPER_AFTER="10")
    result = tracker("send-due", "--now", "2017-02-10 09:05", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sent 24" in result.stdout
    # The pass was started with the helper ready (forked), so every row went through it.
    assert "24 rendered ahead in a helper process" in result.stdout
    assert sorted(m.rcpt_tos[0] for m in smtp.received) == sorted(f"member{n}@example.org" for n in range(24))

    small = cli_env(database_url, schedules, TRACKER_SMTP_URL=smtp.url)  # 24 rows: not worth a process
    again = tracker("send-due", "--now", "2017-02-10 09:06", env=small, cwd=tmp_path)
    assert "sent 0" in again.stdout and "helper" not in again.stdout


def test_a_helper_does_not_outlive_a_killed_send_due(
    members: Engine, database_url: str, schedules: Path, tmp_path: Path, smtp: SMTPTestServer
) -> None:
    import subprocess
    import time

    smtp.delay = 0.5  # a slow relay: the pass is still sending when it is killed
    env = cli_env(database_url, schedules, TRACKER_SMTP_URL=smtp.url, TRACKER_RENDER_HELPER_AFTER="10")
    sending = subprocess.Popen([TRACKER, "send-due", "--now", "2017-02-10 09:05"], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        smtp.wait_until(lambda server: len(server.received) >= 1, timeout=60)
        [helper] = children_of(sending.pid)
    finally:
        sending.kill()
        sending.wait()
    deadline = time.monotonic() + 10
    while running(helper):
        assert time.monotonic() < deadline, "the helper outlived the process it rendered for"
        time.sleep(0.1)


def children_of(pid: int) -> list[int]:
    """The processes whose parent is *pid* (read from /proc: Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


PIECE = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"a", b"a\r\n", b".a\r\n"]), max_size=4).map(b"".join)


@settings(max_examples=2000, deadline=None)
@given(st.lists(PIECE, max_size=6))
def test_a_message_joined_from_checked_pieces_is_marked_exactly_when_the_whole_would_be(pieces: list[bytes]) -> None:
    # The shared parts of a message (its calendar part) are checked once and marked; a message made of
    # them must be marked only if its whole bytes pass, or a dot line or a bare line end goes out unfixed.
    marked = [wire_ready(piece) or piece for piece in pieces]
    joined = wire_ready_joined(marked)
    whole = b"".join(pieces)
    assert (joined is not None) == (wire_ready(whole) is not None)
    assert joined is None or bytes(joined) == whole
