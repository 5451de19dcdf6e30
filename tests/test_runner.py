"""The main job keeps running, syncs saved files, and refuses broken ones without harm."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, text
from sqlmodel import select

from tests.support.cli import TRACKER
from tests.support.processes import free_port
from tests.support.timelines import HLPF, MEETING, WriteTimeline
from tracker.store.engine import open_store, transaction
from tracker.store.models import Milestone


class Job:
    """A running `tracker run` whose log lines can be awaited."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.rstrip())

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"never logged {text!r}; got:\n" + "\n".join(self.seen))


StartJob = Callable[[], Job]


@pytest.fixture
def start_job(database_url: str, schedules: Path, tmp_path: Path) -> Iterator[StartJob]:
    """Start `tracker run` on the schedules folder as it is (each call starts one; all are stopped after)."""
    started: list[subprocess.Popen[str]] = []

    def start() -> Job:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
        port = free_port()
        env.update(TRACKER_DATABASE_URL=database_url, TRACKER_SCHEDULES=str(schedules), TRACKER_PORT=str(port))
        process = subprocess.Popen(
            [TRACKER, "run"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        return Job(process, port)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.fixture
def job(start_job: StartJob, write_timeline: WriteTimeline) -> Job:
    write_timeline("hlpf", HLPF)
    return start_job()


def count_milestones(database_url: str) -> int:
    with transaction(open_store(database_url)) as session:
        return session.exec(select(func.count()).select_from(Milestone)).one()


@pytest.mark.slow
def test_the_main_job_syncs_at_start_then_on_every_saved_file(
    job: Job, database_url: str, write_timeline: WriteTimeline
) -> None:
    job.wait_for("synced 1 timelines, 4 milestones: 4 added")
    job.wait_for("watching")

    write_timeline("cwg-32", MEETING)

    job.wait_for("synced 2 timelines, 6 milestones: 2 added")
    assert count_milestones(database_url) == 6


@pytest.mark.slow
def test_a_broken_file_is_logged_with_its_line_and_nothing_is_applied(
    job: Job, database_url: str, write_timeline: WriteTimeline
) -> None:
    job.wait_for("watching")

    write_timeline("cwg-32", MEETING.replace("starts: 2018-01-24", "starts: 2018-13-24"))

    problem = job.wait_for("cwg-32.yaml:8:")
    assert "2018-13-24 is not a date" in problem
    job.wait_for("sync refused")
    assert count_milestones(database_url) == 4
    assert job.process.poll() is None  # still running


@pytest.mark.slow
def test_the_main_job_stops_cleanly_on_interrupt(job: Job) -> None:
    job.wait_for("watching")

    job.process.send_signal(signal.SIGINT)

    assert job.process.wait(timeout=15) == 0


@pytest.mark.slow
def test_the_main_job_serves_the_feeds_of_what_it_synced(job: Job, write_timeline: WriteTimeline) -> None:
    job.wait_for("serving on")
    job.wait_for("watching")

    first = httpx.get(f"http://127.0.0.1:{job.port}/feeds/all.ics", timeout=10)
    write_timeline("cwg-32", MEETING)
    job.wait_for("synced 2 timelines")
    time.sleep(1.1)  # served feeds may lag the store by up to a second
    second = httpx.get(f"http://127.0.0.1:{job.port}/feeds/all.ics", timeout=10)

    assert first.status_code == 200 and first.content.count(b"BEGIN:VEVENT") == 4
    assert second.content.count(b"BEGIN:VEVENT") == 6


# A broken file or store never stops the main job: it starts, serves, logs the reason and keeps watching.


@pytest.mark.slow
def test_50000_nested_brackets_are_reported_and_the_main_job_starts_all_the_same(
    start_job: StartJob, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    write_timeline("deep", "id: deep\ntitle: Deep\nmilestones: " + "[" * 50_000 + "\n")

    job = start_job()

    job.wait_for("deep.yaml:3: lists and mappings nest more than 100 levels deep")
    job.wait_for("serving on")
    assert httpx.get(f"http://127.0.0.1:{job.port}/healthz", timeout=10).status_code == 200


@pytest.mark.slow
def test_an_offset_of_5000_digits_is_reported_and_the_watcher_keeps_watching(
    job: Job, database_url: str, write_timeline: WriteTimeline
) -> None:
    job.wait_for("watching")

    write_timeline("cwg-32", MEETING.replace("due: meeting - 30d", "due: meeting - " + "9" * 5000 + "d"))
    job.wait_for("cwg-32.yaml:13: due: the date is 5011 characters long")
    write_timeline("cwg-32", MEETING)

    job.wait_for("synced 2 timelines, 6 milestones: 2 added")
    assert count_milestones(database_url) == 6


@pytest.mark.slow
def test_a_36kb_due_expression_neither_stalls_the_server_nor_the_watcher(
    job: Job, write_timeline: WriteTimeline
) -> None:
    job.wait_for("watching")
    expression = "meeting" + "-1d" * 12_000 + "!"  # once read by a quadratic pattern that held the GIL for 8 s

    write_timeline("cwg-32", MEETING.replace("due: meeting - 30d", f"due: {expression}"))
    slowest = 0.0
    for _ in range(20):
        started = time.monotonic()
        assert httpx.get(f"http://127.0.0.1:{job.port}/healthz", timeout=30).status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.1)

    assert slowest < 1
    job.wait_for("cwg-32.yaml:13: due: the date is 36008 characters long")


@pytest.mark.slow
def test_a_sync_that_fails_is_logged_in_one_line_and_tried_again(
    job: Job, database_url: str, write_timeline: WriteTimeline
) -> None:
    job.wait_for("watching")
    store = open_store(database_url)
    with store.begin() as connection:  # as during a restore or a migration by hand: the store cannot be written
        connection.execute(text("ALTER TABLE sync_state RENAME TO sync_state_away"))

    write_timeline("cwg-32", MEETING)
    failure = job.wait_for("sync failed")
    with store.begin() as connection:
        connection.execute(text("ALTER TABLE sync_state_away RENAME TO sync_state"))

    assert "sync_state" in failure and "Traceback" not in "\n".join(job.seen)
    job.wait_for("synced 2 timelines, 6 milestones: 2 added")  # without another save
    assert job.process.poll() is None


@pytest.mark.slow
def test_a_rule_an_older_version_stored_does_not_stop_the_main_job_from_starting(
    job: Job, database_url: str, start_job: StartJob, write_timeline: WriteTimeline
) -> None:
    job.wait_for("watching")
    job.process.send_signal(signal.SIGINT)
    job.process.wait(timeout=15)
    store = open_store(database_url)
    with store.begin() as connection:  # what validation accepted before rules were checked
        connection.execute(text("UPDATE milestones SET repeat = 'FREQ=YEARLY;BYMONTH=13;BYDAY=99MO;INTERVAL=0'"))

    again = start_job()

    again.wait_for("serving on")
    again.wait_for("watching")
    write_timeline("cwg-32", MEETING)
    again.wait_for("synced 2 timelines, 6 milestones: 2 added")
