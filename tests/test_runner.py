"""The main job keeps running, syncs saved files, and refuses broken ones without harm."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from tests.conftest import HLPF, MEETING, WriteTimeline
from tests.test_web import free_port
from tracker.models import Milestone
from tracker.store import open_store, transaction

TRACKER = str(Path(sys.executable).parent / "tracker")


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


@pytest.fixture
def job(database_url: str, schedules: Path, write_timeline: WriteTimeline, tmp_path: Path) -> Iterator[Job]:
    write_timeline("hlpf", HLPF)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    port = free_port()
    env.update(TRACKER_DATABASE_URL=database_url, TRACKER_SCHEDULES=str(schedules), TRACKER_PORT=str(port))
    process = subprocess.Popen(
        [TRACKER, "run"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    running = Job(process, port)
    yield running
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


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
