"""Real `tracker` processes for end-to-end delivery tests: settings, the main job, CLI calls, mail counts."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import Popen
from typing import TypedDict, cast
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import create_engine, text

from tests.support.cli import TRACKER
from tests.support.factories import REPO
from tests.support.smtp_server import ReceivedMail, SMTPTestServer

ZONE = "Europe/Zurich"
SECRET_KEY = "process-tests-secret-key-0f3c9a7e5d1b2468"
START_TIMEOUT = 30.0
MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
TROUBLE = (" ERROR ", " CRITICAL ")  # what the engine must never log in these scenarios

MailCondition = Callable[[SMTPTestServer], bool]


class DeliveryRow(TypedDict):
    """One object of `tracker deliveries --json`."""

    id: int
    to: str
    kind: str
    milestone: str | None
    slot: str
    state: str
    send_at: str
    sent_at: str | None
    attempts: int
    next_attempt: str | None
    reply: str | None
    last_error: str | None
    reason: str | None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll *condition* until it holds; fail after *timeout* seconds, saying *what* was awaited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)


@contextmanager
def tracker_serve(
    tracker: str | Path, folder: Path, env: dict[str, str], port: int, log: Path
) -> Iterator[Popen[bytes]]:
    """`tracker serve` on *port* in its own process until the block ends; what it printed is in *log*,
    and shown if it ends before answering /healthz."""
    with log.open("wb") as sink:
        process = subprocess.Popen([str(tracker), "serve", "--port", str(port)], cwd=folder, env=env,
                                   stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip

    def answers() -> bool:
        assert process.poll() is None, f"tracker serve ended with status {process.returncode}:\n{log.read_text()}"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, START_TIMEOUT, "tracker serve answering /healthz", interval=0.2)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


class Job:
    """A running `tracker run`; its log (stderr) is kept whole for assertions and failure reports."""

    def __init__(self, name: str, env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.port = int(env["TRACKER_PORT"])
        self.ended_on_purpose = False
        self.process = subprocess.Popen(
            [TRACKER, "run"], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, name=f"log-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip())

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def logged(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def check(self) -> None:
        """Fail at once if the job logged an error or died on its own: waiting longer would only hide it."""
        if any(mark in line for line in list(self.lines) for mark in TROUBLE):
            raise AssertionError(f"{self.name} logged an error:\n{self.log}")
        if self.process.poll() is not None and not self.ended_on_purpose:
            self._reader.join(timeout=5)
            raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log}")

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Return once /healthz answers: migrated, synced, delivering and serving."""

        def healthy() -> bool:
            self.check()
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout, f"{self.name} answering /healthz", interval=0.2)

    def kill(self) -> None:
        """Kill -9: no handler runs, nothing is given back."""
        self.ended_on_purpose = True
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15) -> int:
        """Send *sig* and return the exit status once the process has ended."""
        self.ended_on_purpose = True
        self.process.send_signal(sig)
        status = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return status

    def finish(self) -> None:
        """Make sure the process is gone and its whole log read."""
        if self.process.poll() is None:
            self.kill()
        self._reader.join(timeout=5)


class Site:
    """One installation in a temporary folder: settings, files, CLI, `tracker run` processes and their relay."""

    def __init__(self, folder: Path, database_url: str, smtp: SMTPTestServer) -> None:
        self.folder = folder
        self.smtp = smtp
        self.schedules = folder / "schedules"
        self.schedules.mkdir(exist_ok=True)
        self.jobs: list[Job] = []
        env = {name: value for name, value in os.environ.items() if not name.startswith("TRACKER_")}
        env.update(
            TRACKER_DATABASE_URL=database_url,
            TRACKER_SCHEDULES=str(self.schedules),
            TRACKER_SMTP_URL=smtp.url,
            TRACKER_SECRET_KEY=SECRET_KEY,
            TRACKER_LOCALES=str(REPO / "locale"),
            TRACKER_OUTBOX_DIR=str(folder / "outbox"),
            TRACKER_TIMEZONE=ZONE,
            TRACKER_OVERDUE="",  # these tests count reminders; late steps' notices are tests/test_late_steps.py's
        )
        self.env = env
        self.store = create_engine(database_url)  # the test's own look at the outbox, for waiting cheaply

    def settings(self, **values: object) -> dict[str, str]:
        """The environment with TRACKER_<NAME> set for each keyword (lease=3: TRACKER_LEASE=3)."""
        env = dict(self.env)
        env.update({f"TRACKER_{name.upper()}": str(value) for name, value in values.items()})
        return env

    # --- processes ----------------------------------------------------------------------------

    def launch(self, **values: object) -> Job:
        """Start `tracker run` on a free port with extra settings, without waiting for it."""
        job = Job(f"job{len(self.jobs) + 1}", self.settings(port=free_port(), **values), self.folder)
        self.jobs.append(job)
        return job

    def start(self, **values: object) -> Job:
        """Start `tracker run`; return once it answers HTTP."""
        job = self.launch(**values)
        job.wait_healthy()
        return job

    def cli(self, *args: str, timeout: float = 60, **values: object) -> str:
        """Run one `tracker` command to completion and return its output; fail on a non-zero status."""
        done = subprocess.run(
            [TRACKER, *args], env=self.settings(**values), cwd=self.folder, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"tracker {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def check_jobs(self) -> None:
        for job in self.jobs:
            job.check()

    def close(self) -> None:
        for job in self.jobs:
            job.finish()
        self.store.dispose()

    # --- waiting ------------------------------------------------------------------------------

    def wait_mail(self, condition: MailCondition, timeout: float) -> None:
        """Wait until the relay's received mail meets *condition*; fail early if a job goes wrong."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.smtp.wait_until(condition, timeout=0.5)
                return
            except AssertionError:
                self.check_jobs()
                if time.monotonic() > deadline:
                    raise AssertionError(f"the mail expected did not arrive within {timeout}s") from None

    def wait_logged(self, job: Job, text: str, timeout: float = START_TIMEOUT) -> None:
        def seen() -> bool:
            self.check_jobs()
            return job.logged(text)

        wait_for(seen, timeout, f"{job.name} logging {text!r}")

    def wait_settled(self, timeout: float = 30) -> Counter[str]:
        """Wait until no delivery is planned or claimed (every outcome recorded); return the counts."""

        def settled() -> bool:
            self.check_jobs()
            return self.counts().keys().isdisjoint({"planned", "claimed"})

        wait_for(settled, timeout, "every delivery recorded")
        return self.counts()

    # --- the store, files and the CLI ---------------------------------------------------------

    def counts(self) -> Counter[str]:
        """How many deliveries are in each state, straight from the store."""
        with self.store.connect() as connection:
            rows = connection.execute(text("SELECT state, count(*) FROM deliveries GROUP BY state"))
            return Counter({str(state): int(count) for state, count in rows})

    def held_by(self, job: Job) -> int:
        """How many rows *job* holds (claimed, lease running or not): workers are named host:pid:random."""
        query = text("SELECT count(*) FROM deliveries WHERE state = 'claimed' AND claimed_by LIKE :worker")
        with self.store.connect() as connection:
            return int(connection.execute(query, {"worker": f"%:{job.process.pid}:%"}).scalar_one())

    def deliveries(self, *options: str) -> list[DeliveryRow]:
        """`tracker deliveries --json` with *options*; up to 10,000 rows."""
        return cast("list[DeliveryRow]", json.loads(self.cli("deliveries", "--json", "--limit", "10000", *options)))

    def import_subscribers(self, count: int, prefix: str = "delegate") -> list[str]:
        """Import *count* confirmed subscribers from a CSV file; return their addresses."""
        addresses = [f"{prefix}{number:05d}@mission.example.org" for number in range(count)]
        lines = ["email,name,language,audiences,timelines"]
        lines += [f"{address},Delegate {n},en,membership," for n, address in enumerate(addresses)]
        path = self.folder / f"{prefix}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.cli("subscribers", "import", str(path), "--confirmed", timeout=120)
        return addresses

    def write_deadline(
        self, timeline_id: str, due_at: datetime, reminders: Sequence[str], *, seconds: bool = False
    ) -> None:
        """Write a timeline with one membership deadline at *due_at* (to the minute, or the second) and its offsets."""
        due = due_at.astimezone(ZoneInfo(ZONE))
        when = f"{due:%Y-%m-%d %H:%M:%S}" if seconds else f"{due:%Y-%m-%d %H:%M}"
        body = f"""\
id: {timeline_id}
title: Deadline tests ({timeline_id})
timezone: {ZONE}
kind: consultation
audiences: [membership]
milestones:
  - id: comments
    title: Comments on the draft
    owner: membership
    due: {when}
    reminders: [{", ".join(reminders)}]
"""
        (self.schedules / f"{timeline_id}.yaml").write_text(body, encoding="utf-8")


def due_in(span: timedelta) -> datetime:
    """A deadline *span* from now, so that reminders computed from it fall due in real time."""
    return datetime.now(UTC) + span


def message_id(mail: ReceivedMail) -> str:
    """The Message-ID header (unfolded), found in the header block without parsing the message."""
    head = mail.content.split(b"\r\n\r\n", 1)[0]
    found = MESSAGE_ID.search(head)
    assert found, f"a message to {mail.rcpt_tos} has no Message-ID"
    return b" ".join(found.group(1).split()).decode()


def recipients(mails: Iterable[ReceivedMail]) -> set[str]:
    return {address for mail in mails for address in mail.rcpt_tos}


def repeats(mails: Sequence[ReceivedMail]) -> Counter[str]:
    """Message-IDs received more than once, with how many times each was."""
    counts = Counter(message_id(mail) for mail in mails)
    return Counter({key: n for key, n in counts.items() if n > 1})


def states(rows: Iterable[DeliveryRow]) -> Counter[str]:
    return Counter(row["state"] for row in rows)


def parse_at(value: str) -> datetime:
    return datetime.fromisoformat(value)


@contextmanager
def running_site(folder: Path, database_url: str, smtp: SMTPTestServer) -> Iterator[Site]:
    """A Site, closed after; each job's log printed (pytest shows it when the test failed)."""
    site = Site(folder, database_url, smtp)
    yield site
    site.close()
    for job in site.jobs:
        print(f"----- {job.name} (exit {job.process.returncode}) -----\n{job.log}")
