"""Benchmark: the delivery engine end to end, into Postfix's smtp-sink (issue 5).

Measures, in one run:

* bare     - aiosmtplib alone sending the 10,000 messages, rendered beforehand, over the same
             number of connections (TRACKER_SMTP_CONNECTIONS, 4) into the same sink. Baseline.
* (a)      - `tracker send-due` fanning one due reminder out to 10,000 confirmed subscribers
             (six languages), SQLite: the whole process, start to exit (plan, claim, render,
             send, record). Ratio = bare time / send-due time. Goal ≥ 0.5. Each case runs
             RUNS times, bare sending measured just before and after each run; the median counts.
* (c)      - the same on PostgreSQL with 1, 2 and 3 `send-due` processes started together.
* (b)      - lateness: 10,000 messages whose send_at is spread over one minute, `tracker run`
             live: p50 / p99 / max of sent_at − send_at. Goal p99 ≤ 1 s.

smtp-sink comes with Debian `postfix` (--install installs it; the daemon is never started).

    .venv/bin/python bench/bench_delivery.py --install
    .venv/bin/python bench/bench_delivery.py --quick        # 1,000 messages, appends nothing
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib
from sqlalchemy import create_engine, text
from sqlmodel import col, func, select

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import Current, record  # noqa: E402
from tracker.store.bulk import insert_rows  # noqa: E402
from tracker.store.engine import open_store, transaction  # noqa: E402
from tracker.store.models import Delivery, Subscriber  # noqa: E402

TRACKER = str(Path(sys.executable).parent / "tracker")
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LANGUAGES = ("en", "fr", "es", "ru", "zh", "ar")
CONNECTIONS = 4
RUNS = 5  # of each fan-out case: one run on a shared machine is noise
TIMELINE = """id: bench
title: Benchmark consultation
timezone: Europe/Zurich
audiences: [membership]
milestones:
  - id: comments
    title: Comments on the draft
    owner: membership
    due: {due}
    reminders: [3h]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_sink() -> Iterator[int]:
    """smtp-sink on a free port, as fast as it goes (no per-message output)."""
    port = free_port()
    process = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(5)


def environment(folder: Path, url: str, port: int) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    return {**clean, "TRACKER_DATABASE_URL": url, "TRACKER_SCHEDULES": str(folder / "schedules"),
            "TRACKER_SMTP_URL": f"smtp://127.0.0.1:{port}", "TRACKER_SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "TRACKER_LOCALES": str(REPO / "locale"),
            "TRACKER_SMTP_CONNECTIONS": str(CONNECTIONS), "TRACKER_PORT": str(free_port()),
            "TRACKER_FROM": "Tracker <tracker@example.org>", "TRACKER_SWEEP": "1"}  # fmt: skip


def prepare(folder: Path, url: str, count: int, due: datetime) -> None:
    """A store with one timeline whose reminder is due now, and *count* confirmed subscribers."""
    (folder / "schedules").mkdir(parents=True, exist_ok=True)
    local = due.astimezone(ZoneInfo("Europe/Zurich")).strftime("%Y-%m-%d %H:%M")  # the timeline's zone
    (folder / "schedules" / "bench.yaml").write_text(TIMELINE.format(due=local))
    subprocess.run([TRACKER, "sync"], env=environment(folder, url, 1), check=True, capture_output=True, cwd=folder)
    engine = open_store(url)
    now = datetime.now(UTC)
    rows = [{"email": f"member{n}@example.org", "email_key": f"member{n}@example.org", "name": f"Member {n}",
             "language": LANGUAGES[n % 6], "timezone": "Europe/Zurich", "audiences": ["membership"],
             "timelines": None, "reminders": None, "digest": "off", "state": "confirmed", "manage_version": 0,
             "feed_version": 0, "confirm_version": 0, "created_at": now, "confirmed_at": now, "changed_at": now}
            for n in range(count)]  # fmt: skip
    with transaction(engine, write=True) as session:
        insert_rows(session, Subscriber.__table__, rows)  # type: ignore[attr-defined]
    engine.dispose()


def fresh_url(kind: str, folder: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'tracker.db'}"
    schema = f"bench_{int(time.time() * 1000) % 10**9}"
    admin = create_engine(PG)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    return f"{PG}?options=-csearch_path%3D{schema}"


def send_due(folder: Path, url: str, port: int, processes: int) -> float:
    """Seconds until every process is done."""
    return send_due_measured(folder, url, port, processes)[0]


def send_due_measured(folder: Path, url: str, port: int, processes: int) -> tuple[float, float]:
    """Seconds until every process is done, and the largest peak RSS (MB) among them (`os.wait4`)."""
    env = environment(folder, url, port)
    started = time.perf_counter()
    outputs = [(folder / f"send-due-{n}.txt").open("w+") for n in range(processes)]
    running = [subprocess.Popen([TRACKER, "send-due"], env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT,
                                text=True) for out in outputs]  # fmt: skip
    peak = 0.0
    for process, out in zip(running, outputs, strict=True):
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        peak = max(peak, usage.ru_maxrss / 1024)
        out.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"send-due failed: {out.read()}")
        out.close()
    return time.perf_counter() - started, peak


def sent_count(url: str) -> int:
    engine = open_store(url)
    with transaction(engine) as session:
        count = session.exec(select(func.count()).where(Delivery.state == "sent")).one()
    engine.dispose()
    return int(count)


async def bare_send(port: int, messages: list[bytes]) -> float:
    """Pre-rendered bytes through aiosmtplib on CONNECTIONS connections: the baseline."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for message in messages:
        queue.put_nowait(message)

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        while not queue.empty():
            data = queue.get_nowait()
            await client.sendmail("tracker@example.org", ["member@example.org"], data)
        await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return time.perf_counter() - started


def rendered_samples(folder: Path, count: int) -> list[bytes]:
    """The engine's own messages (from a DirectoryMailer run of the same store): the bare sender's payload."""
    outbox = folder / "var" / "outbox"
    files = sorted(outbox.glob("*.eml"))
    if not files:
        raise RuntimeError("no rendered messages to replay")
    data = [path.read_bytes().replace(b"\n", b"\r\n") for path in files]
    return [data[n % len(data)] for n in range(count)]


def render_for_baseline(folder: Path, count: int) -> list[bytes]:
    """Render a sample of the same reminders with the engine into .eml files (no SMTP)."""
    sample = folder / "sample"
    prepare(sample, f"sqlite:///{sample / 'tracker.db'}", min(count, 600), datetime.now(UTC) + timedelta(hours=2))
    env = environment(sample, f"sqlite:///{sample / 'tracker.db'}", 1)
    env["TRACKER_SMTP_URL"] = ""
    env["TRACKER_OUTBOX_DIR"] = str(sample / "var" / "outbox")
    subprocess.run([TRACKER, "send-due"], env=env, cwd=sample, check=True, capture_output=True)
    return rendered_samples(sample, count)


def fan_out(kind: str, count: int, port: int, processes: int, payload: list[bytes], runs: int) -> dict[str, Any]:
    """*runs* times: bare sending, send-due on a fresh store, bare sending again; the median run counts.

    The bare rate of a run is the mean of the two around it: on a shared machine either alone
    can catch a slow spell the send-due run did not have, or the other way round.
    """
    results = []
    for _ in range(runs):
        before = asyncio.run(bare_send(port, payload))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            url = fresh_url(kind, folder)
            prepare(folder, url, count, datetime.now(UTC) + timedelta(hours=2))
            seconds, rss = send_due_measured(folder, url, port, processes)
            sent = sent_count(url)
        bare = (before + asyncio.run(bare_send(port, payload))) / 2
        results.append({"sent": sent, "seconds": seconds, "rate": sent / seconds, "bare_rate": len(payload) / bare,
                        "ratio": bare / seconds * sent / len(payload), "rss": rss})  # fmt: skip
    results.sort(key=lambda r: r["ratio"])
    middle = results[len(results) // 2]
    ratios = [r["ratio"] for r in results]
    return {**middle, "case": f"{kind}, {processes} process(es)", "low": ratios[0], "high": ratios[-1]}


def spread_row(subscriber_id: int, send_at: datetime) -> dict[str, Any]:
    """A notice due at *send_at* (notices are never re-planned, so the engine keeps the times)."""
    return {
        "subscriber_id": subscriber_id, "timeline_id": "bench", "milestone_key": "comments", "occurrence": "",
        "kind": "opened", "slot": "bench", "state": "planned", "send_at": send_at, "attempt_at": send_at,
        "deadline_at": send_at + timedelta(days=1), "attempts": 0, "last_error": "", "reply": "", "reason": "",
        "created_at": send_at, "updated_at": send_at,
    }  # fmt: skip


def lateness(count: int, port: int) -> dict[str, float]:
    """`tracker run` live; rows due over one minute starting 15 s after launch."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'tracker.db'}"
        prepare(folder, url, count, datetime.now(UTC) + timedelta(days=3))
        engine = open_store(url)
        start = datetime.now(UTC) + timedelta(seconds=15)
        with transaction(engine) as session:
            ids = [subscriber_id for subscriber_id in session.exec(select(Subscriber.id)) if subscriber_id]
        rows = [
            spread_row(subscriber_id, start + timedelta(seconds=60 * n / count)) for n, subscriber_id in enumerate(ids)
        ]
        with transaction(engine, write=True) as session:
            insert_rows(session, Delivery.__table__, rows)  # type: ignore[attr-defined]
        log = (folder / "run.log").open("w")
        process = subprocess.Popen([TRACKER, "run"], env=environment(folder, url, port), cwd=folder,
                                   stdout=log, stderr=log)  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                with transaction(engine) as session:
                    # Only the spread rows: `tracker run` also plans the reminders of the timeline, due later.
                    waiting = select(Delivery.id).where(Delivery.slot == "bench", col(Delivery.state) != "sent")
                    left = session.exec(waiting.limit(1)).first()
                if left is None:
                    break
                time.sleep(1)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
            print((folder / "run.log").read_text()[-3000:], file=sys.stderr)
        with transaction(engine) as session:
            late = sorted((r.sent_at - r.send_at).total_seconds()
                          for r in session.exec(select(Delivery).where(Delivery.slot == "bench"))
                          if r.sent_at is not None)  # fmt: skip
        engine.dispose()
    return {"sent": len(late), "p50": statistics.median(late), "p99": late[int(len(late) * 0.99) - 1], "max": late[-1]}


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--install", action="store_true", help="apt-get install postfix when smtp-sink is missing")
    parser.add_argument("--quick", action="store_true", help="1,000 messages, write nothing")
    parser.add_argument("--count", type=int, help="the SQLite fan-out alone to this many, once; write nothing")
    args = parser.parse_args()
    if not Path("/usr/sbin/smtp-sink").exists():
        if not args.install:
            sys.exit("smtp-sink is missing: run with --install (Debian postfix)")
        subprocess.run(["sh", "-c", "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                        "--no-install-recommends postfix && (postfix stop || true)"], check=True)  # fmt: skip
    count = args.count or (1000 if args.quick else 10_000)
    runs = 1 if args.quick or args.count else RUNS
    results = []
    with smtp_sink() as port:
        with tempfile.TemporaryDirectory() as tmp:
            payload = render_for_baseline(Path(tmp), count)
        if args.count:  # the fan-out alone (issue 18: 100,000 at ≥ 0.5× bare aiosmtplib, ≤ 250 MB)
            late = {"sent": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0}
            results.append(fan_out("sqlite", count, port, 1, payload, runs))
        else:
            late = lateness(count, port)
            results.append(fan_out("sqlite", count, port, 1, payload, runs))
            for processes in (1, 2, 3):
                results.append(fan_out("postgresql", count, port, processes, payload, runs))
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — Delivery: fan-out and lateness — {platform.system()} "
        f"{platform.machine()}, {machine()}\n",
        f"Command: `{' '.join(['bench/bench_delivery.py', *sys.argv[1:]]) if args.count else 'make bench'}` "
        f"(bench/bench_delivery.py), {count:,} messages, "
        f"{CONNECTIONS} SMTP connections, Postfix smtp-sink on 127.0.0.1. Each case {runs} time(s), the median shown; "
        "bare sending measured just before and after each run, its mean the baseline.\n",
        "| case | sent | seconds | msgs/s | bare aiosmtplib msgs/s | ratio (goal ≥ 0.5) | lowest–highest | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        rates = f"{r['rate']:.0f} | {r['bare_rate']:.0f} | {r['ratio']:.2f} | {r['low']:.2f}–{r['high']:.2f}"
        lines.append(f"| send-due, {r['case']} | {r['sent']:,} | {r['seconds']:.2f} | {rates} | {r['rss']:.0f} MB |")
    if not args.count:
        lines.append(
            f"\nLateness, `tracker run` live, {late['sent']:,.0f} messages due over one minute: "
            f"p50 {late['p50']:.3f} s, p99 {late['p99']:.3f} s, max {late['max']:.3f} s (goal p99 ≤ 1 s).\n"
        )
    report = "\n".join(lines)
    print(report)
    if not (args.quick or args.count):
        record(current_rows(results, late, count), report, script="bench_delivery.py")


def current_rows(results: list[dict[str, Any]], late: dict[str, float], count: int) -> list[Current]:
    """The run's figures for the table atop BENCHMARKS.md: each fan-out case, and lateness."""
    rows = []
    for r in results:
        kind, processes = r["case"].split(", ")  # "postgresql, 2 process(es)"
        number = int(processes.split()[0])
        backend = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind]
        case = f"send-due, {backend}, {number} process{'es' * (number != 1)}"
        rows.append(Current("delivery", case, f"{r['ratio']:.2f}× bare aiosmtplib", "≥ 0.5×", r["ratio"] >= 0.5))
    case = f"lateness p99, `tracker run`, {count:,} due over a minute"
    rows.append(Current("delivery", case, f"{late['p99']:.3f} s", "≤ 1 s", late["p99"] <= 1))
    return rows


if __name__ == "__main__":
    main()
