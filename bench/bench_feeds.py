"""Benchmark: calendar feeds — a 10,000-item build, a rebuild after one change, and HTTP serving.

Measures, in one run:

* plain    - a straightforward icalendar build of the same generated items, written here:
             Calendar + one Event per item (UID, DTSTAMP, DTSTART, DTEND, SUMMARY, DESCRIPTION,
             SEQUENCE, RRULE when it repeats) with its three display VALARMs, `to_ical()`.
             No VTIMEZONEs, no other properties. Best of 3. The baseline of (a) and (b).
* (a) full - `build_feed` of the same items (every item serialised afresh); best of 3.
* (b)      - `FeedCache.render` after one milestone changed (revision raised, title edited),
             the cache warm from earlier renders; best of 5, each run a different milestone and
             fresh view objects, as after the server reloads the views from the store.
             Goal (issue 3): ≤ 0.05× the plain build.
* (c)      - the cached ~50 KB and ~2 MB all-feeds (`/feeds/all.ics` of stores synced from
             bench_sync's generated timeline files) through `tracker serve` (uvicorn, one
             process, as shipped) vs the same bytes as static files from nginx (one worker),
             both with the same `wrk` run on 127.0.0.1, identity encoding (no gzip).
             Goal (issue 3): ≥ 0.2× nginx's requests per second.
* (d)      - the 304 path: the same wrk runs with `If-None-Match: <each server's ETag>`.

nginx (Debian `nginx-light`, or `nginx`) and `wrk` are needed for (c) and (d); with --install
the script installs them with apt-get (services kept from starting), otherwise it says so
and skips (c) and (d). nginx runs with a config of its own in a temporary folder, never the
system's, and is stopped at the end like `tracker serve`. Results go to BENCHMARKS.md
(bench/report.py) unless --quick.

    .venv/bin/python bench/bench_feeds.py --install   # full size, writes BENCHMARKS.md
    .venv/bin/python bench/bench_feeds.py --quick     # 1,000 items, 3 s wrk runs, writes nothing
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import http.client
import importlib.metadata
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time as clock
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from icalendar import Alarm, Calendar, Event, vRecur
from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_sync import (
    SEED,
    BenchError,
    check,
    code_version,
    generate,
    load_average,
    sync_once,
    timed,
)
from bench.report import BENCHMARKS, Current, cpu_model, record
from tracker.feeds import CalendarInfo, FeedCache, build_feed
from tracker.feeds.calendars import FeedBody
from tracker.store.engine import open_store
from tracker.timelines.dates import END_OF_DAY, get_zone, local_to_utc, parse_offset
from tracker.timelines.views import MilestoneView

ROOT = Path(__file__).resolve().parent.parent
TRACKER = ROOT / ".venv" / "bin" / "tracker"

FULL_ITEMS = 10_000
QUICK_ITEMS = 1_000
MILESTONES_PER_TIMELINE = 10
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=30)
BASE_URL = "https://tracker.example.org"
INFO = CalendarInfo(
    name="Tracker: all deadlines",
    description="Every deadline, window and meeting of every timeline.",
    url=f"{BASE_URL}/",
    base_url=BASE_URL,
    source=f"{BASE_URL}/feeds/all.ics",
)

ZONES = ("Europe/Zurich", "America/New_York", "Asia/Tokyo", "America/Los_Angeles", "Australia/Sydney", "UTC")
KINDS = ("consultation", "drafting", "nomination", "meeting", "forum", "other")
AUDIENCES = ("membership", "secretariat")
PLACES = ("Geneva", "New York", "Tokyo", "online")
REPEATS = ("FREQ=YEARLY;COUNT=3", "FREQ=MONTHLY;COUNT=6", "FREQ=WEEKLY;INTERVAL=2;UNTIL=20271231")
DAY_REMINDERS = ("14d", "7d", "1d")
TIMED_REMINDERS = ("7d", "1d", "4h")
TITLES = (
    "Comments on the revised draft",
    "Contributions submitted",
    "Nominations close",
    "Documents available to the membership",
    "Registration closes",
    "Meeting report published",
)


@dataclass(frozen=True)
class Sizes:
    items: int
    plain_runs: int
    full_runs: int
    rebuild_runs: int
    wrk_seconds: int
    warmup_seconds: int


FULL = Sizes(FULL_ITEMS, plain_runs=3, full_runs=3, rebuild_runs=5, wrk_seconds=10, warmup_seconds=2)
QUICK = Sizes(QUICK_ITEMS, plain_runs=2, full_runs=2, rebuild_runs=3, wrk_seconds=3, warmup_seconds=1)

REBUILD_GOAL = 0.05  # at most, as a ratio to the plain build
SERVE_GOAL = 0.2  # at least, as a ratio to nginx's requests per second
WRK_THREADS = 2
WRK_CONNECTIONS = 16
WRK_TIMEOUT = "10s"  # per request; wrk's default 2 s would count slow 2 MB responses as errors
# Generated timeline files (10 milestones each, bench_sync's generator) per store: their
# /feeds/all.ics is about 46 KB and 2 MB (~11 KB a file); the run reports the exact sizes.
FEED_STORES = (("~50 KB", 4), ("~2 MB", 180))
SERVER_START_SECONDS = 60.0
SERVER_STOP_SECONDS = 10.0

console = Console() if sys.stdout.isatty() else Console(width=150)  # logs and pipes: no wrapped tables


# --------------------------------------------------------------------------- data


def make_views(count: int) -> list[MilestoneView]:
    """*count* milestone views, 10 a timeline: all-day and timed deadlines, spans, a few repeating."""
    rng = random.Random(SEED)
    views: list[MilestoneView] = []
    timeline: dict[str, Any] = {}
    for index in range(count):
        number = index // MILESTONES_PER_TIMELINE
        if index % MILESTONES_PER_TIMELINE == 0:
            timeline = timeline_fields(number, rng)
        views.append(make_view(index, rng, timeline))
    return views


def timeline_fields(number: int, rng: random.Random) -> dict[str, Any]:
    tid = f"bench-{number:04d}"
    return {
        "timeline_id": tid,
        "timeline_title": f"Generated timeline {number}",
        "timeline_kind": rng.choice(KINDS),
        "timeline_summary": f"Timeline {number} of the generated feed benchmark set.",
        "timeline_source": f"schedules/{tid}.yaml",
        "timeline_url": f"https://example.org/timelines/{tid}" if rng.random() < 0.5 else "",
        "audiences": AUDIENCES if rng.random() < 0.7 else (),
        "zone": rng.choice(ZONES),
    }


def make_view(index: int, rng: random.Random, timeline: dict[str, Any]) -> MilestoneView:
    """One milestone: 40 % all-day deadlines, 30 % timed ones, 15 % all-day spans, 15 % timed spans."""
    timeline = dict(timeline)
    home = str(timeline.pop("zone"))
    zone = home if rng.random() < 0.7 else rng.choice(ZONES)
    day = date(2026, 1, 1) + timedelta(days=rng.randint(0, 1000))
    roll = rng.random()
    when: dict[str, Any]
    if roll < 0.40:
        when = {"kind": "deadline", "all_day": True, "due_at": local_to_utc(day, END_OF_DAY, zone)}
    elif roll < 0.70:
        at = time(rng.randint(8, 17), rng.choice((0, 30)))
        when = {"kind": "deadline", "all_day": False, "due_at": local_to_utc(day, at, zone)}
    elif roll < 0.85:
        last = day + timedelta(days=rng.randint(0, 4))
        starts, ends = local_to_utc(day, time(0), zone), local_to_utc(last, END_OF_DAY, zone)
        when = {"kind": "span", "all_day": True, "starts_at": starts, "ends_at": ends}
    else:
        last = day + timedelta(days=rng.randint(0, 2))
        starts, ends = local_to_utc(day, time(9, 30), zone), local_to_utc(last, time(17, 30), zone)
        when = {"kind": "span", "all_day": False, "starts_at": starts, "ends_at": ends}
    deadline = when["kind"] == "deadline"
    title = rng.choice(TITLES) if deadline else f"Meeting {index}"
    return MilestoneView(
        key=f"m{index % MILESTONES_PER_TIMELINE:02d}",
        title=f"{title} ({index})",
        zone=zone,
        owner=rng.choice(AUDIENCES) if deadline and rng.random() < 0.5 else None,
        repeat=rng.choice(REPEATS) if deadline and rng.random() < 0.03 else None,
        location=rng.choice(PLACES) if not deadline else "",
        reminders=TIMED_REMINDERS if not when["all_day"] and deadline else DAY_REMINDERS,
        summary=f"Generated milestone {index}: what is due, for whom, and where to send it.",
        url=f"https://example.org/milestones/{index}" if rng.random() < 0.3 else "",
        revision=rng.randint(0, 3),
        updated_at=datetime(2026, 5, 1, tzinfo=UTC) + timedelta(minutes=index),
        **when,
        **timeline,
    )


def changed(view: MilestoneView, run: int) -> MilestoneView:
    """*view* after an edit of its title: a new revision, as a sync writes it."""
    assert view.updated_at is not None
    return dataclasses.replace(
        view,
        title=f"{view.title} (edit {run})",
        revision=view.revision + 1,
        updated_at=view.updated_at + timedelta(days=1),
    )


# --------------------------------------------------------------------------- (a) and (b)


def plain_build(views: Sequence[MilestoneView]) -> bytes:
    """The baseline: what a straightforward icalendar feed of the same items costs."""
    calendar = Calendar()
    calendar.add("prodid", "-//Tracker bench//plain icalendar//EN")
    calendar.add("version", "2.0")
    for view in views:
        zone = get_zone(view.zone)
        start = view.main_at.astimezone(zone)
        end = view.ends_at.astimezone(zone) if view.ends_at is not None else None
        event = Event()
        event.add("uid", f"{view.timeline_id}/{view.key}@tracker.example.org")
        event.add("dtstamp", view.updated_at or NOW)
        if view.all_day:
            event.add("dtstart", start.date())
            event.add("dtend", (end or start).date() + timedelta(days=1))
        else:
            event.add("dtstart", start)
            if end is not None:
                event.add("dtend", end)
        if view.repeat is not None:
            event.add("rrule", vRecur.from_ical(view.repeat))
        event.add("summary", view.title)
        event.add("description", f"{view.summary}\n\nTimeline: {view.timeline_title}")
        event.add("sequence", view.revision)
        for reminder in view.reminders:
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", view.title)
            alarm.add("trigger", -parse_offset(reminder).exact())
            event.add_component(alarm)
        calendar.add_component(event)
    return bytes(calendar.to_ical())


def full_build(views: Sequence[MilestoneView]) -> bytes:
    return build_feed(views, INFO, now=NOW, cancelled_grace=GRACE)


def check_items(name: str, body: bytes, views: Sequence[MilestoneView]) -> None:
    events, alarms = body.count(b"BEGIN:VEVENT"), body.count(b"BEGIN:VALARM")
    check(events == len(views), f"{name}: {events} VEVENTs for {len(views)} items")
    reminders = sum(len(v.reminders) for v in views)
    check(alarms == reminders, f"{name}: {alarms} VALARMs for {reminders} reminders")


@dataclass
class BuildResult:
    plain: list[float] = field(default_factory=list)
    full: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    unchanged: list[float] = field(default_factory=list)
    rebuild: list[float] = field(default_factory=list)
    rebuild_served: list[float] = field(default_factory=list)
    plain_bytes: int = 0
    feed_bytes: int = 0


def bench_builds(sizes: Sizes) -> BuildResult:
    views = make_views(sizes.items)
    result = BuildResult()
    for _ in range(sizes.plain_runs):
        seconds, plain = timed(lambda: plain_build(views))
        result.plain.append(seconds)
    check_items("plain build", plain, views)
    result.plain_bytes = len(plain)
    console.print(f"(a) plain icalendar build: best {min(result.plain):.3f}s ({len(plain):,} bytes)")

    for _ in range(sizes.full_runs):
        seconds, full = timed(lambda: full_build(views))
        result.full.append(seconds)
    check_items("build_feed", full, views)
    result.feed_bytes = len(full)
    console.print(f"(a) build_feed: best {min(result.full):.3f}s ({len(full):,} bytes)")

    cache = FeedCache()
    seconds, body = timed(lambda: render(cache, views))
    result.cold.append(seconds)
    check(body == full, "FeedCache.render (cold) differs from build_feed")
    for _ in range(sizes.rebuild_runs):
        fresh = [copy.copy(v) for v in views]
        before = cache.serialised
        seconds, body = timed(partial(render, cache, fresh))
        check(cache.serialised == before, f"an unchanged render serialised {cache.serialised - before} items")
        result.unchanged.append(seconds)

    rng = random.Random(SEED + 1)
    for run in range(sizes.rebuild_runs):
        index = rng.randrange(len(views))
        views = [copy.copy(v) for v in views]  # new objects, equal values: as load_views returns them
        views[index] = changed(views[index], run)
        before = cache.serialised
        seconds, body = timed(partial(render, cache, views))
        check(cache.serialised - before == 1, f"one change re-serialised {cache.serialised - before} items")
        result.rebuild.append(seconds)
        views[index] = changed(views[index], run + 100)
        seconds, _ = timed(partial(served_body, cache, views))
        result.rebuild_served.append(seconds)
    check(render(cache, views) == full_build(views), "FeedCache.render after changes differs from build_feed")
    console.print(f"(b) rebuild after one change: best {min(result.rebuild) * 1000:.1f} ms")
    return result


def render(cache: FeedCache, views: Sequence[MilestoneView]) -> bytes:
    return cache.render(views, INFO, now=NOW, cancelled_grace=GRACE)


def served_body(cache: FeedCache, views: Sequence[MilestoneView]) -> FeedBody:
    """The rebuild as Calendars does it before serving: the bytes, their ETag (SHA-256) and gzip."""
    return FeedBody.of(render(cache, views), NOW)


# --------------------------------------------------------------------------- tools


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def missing_tools() -> list[str]:
    found = {"nginx": find_nginx(), "wrk": shutil.which("wrk")}
    return [name for name, path in found.items() if path is None]


@contextmanager
def services_kept_down() -> Iterator[None]:
    """Keep Debian maintainer scripts from starting the system nginx (on port 80) while installing."""
    policy = Path("/usr/sbin/policy-rc.d")
    if policy.exists() or os.geteuid() != 0:
        yield
        return
    policy.write_text("#!/bin/sh\n# bench/bench_feeds.py: no service starts while it installs\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


def install_tools() -> None:
    """apt-get install nginx-light (or nginx) and wrk; apt-get update first only if needed."""
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def apt(*args: str) -> bool:
        console.print(f"$ {shlex.join([*sudo, 'apt-get', *args])}")
        done = subprocess.run([*sudo, "apt-get", *args], env=env, check=False, timeout=900)
        return done.returncode == 0

    install = ("install", "-y", "--no-install-recommends")
    with services_kept_down():
        if apt(*install, "nginx-light", "wrk"):
            return
        apt("update")
        if not apt(*install, "nginx-light", "wrk"):
            apt(*install, "nginx", "wrk")


def tool_versions() -> str:
    nginx, wrk = find_nginx(), shutil.which("wrk")
    parts = []
    if nginx:
        done = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
        parts.append((done.stderr or done.stdout).strip().removeprefix("nginx version: "))
    if wrk:
        done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
        parts.append(" ".join((done.stdout or done.stderr).split()[:2]))
    return ", ".join(parts)


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running(
    name: str, command: list[str], port: int, log: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[None]:
    """Start *command*, wait until it listens on 127.0.0.1:*port*, and stop it afterwards, whatever happens."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
    try:
        wait_listening(name, process, port, log)
        yield
    finally:
        stop(process)


def wait_listening(name: str, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = clock.monotonic() + SERVER_START_SECONDS
    while clock.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited with {process.returncode}: {tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            clock.sleep(0.1)
    raise BenchError(f"{name} did not listen on 127.0.0.1:{port} within {SERVER_START_SECONDS:g}s: {tail(log)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn: graceful; nginx: fast shutdown), then SIGKILL to the process group it started."""
    if process.poll() is None:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=SERVER_STOP_SECONDS)
    # The group holds nginx's workers too; it is ours alone (start_new_session).
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=SERVER_STOP_SECONDS)


def tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(port: int, path: str, headers: dict[str, str] | None = None) -> Fetched:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return Fetched(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


def tracker_env(database: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env |= {
        "TRACKER_DATABASE_URL": f"sqlite:///{database}",
        "TRACKER_BASE_URL": BASE_URL,
        "TRACKER_HOST": "127.0.0.1",
        "TRACKER_PORT": str(port),
    }
    return env


NGINX_CONF = """\
# bench/bench_feeds.py: a static server of the same bytes; nothing of the system's config.
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    types {{ }}
    default_type "text/calendar; charset=utf-8";
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/client_body;
{temp_paths}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def nginx_config(tmp: Path, root: Path, port: int, nginx: str) -> str:
    """The config, with temp paths for the modules this nginx was built with (nginx-light lacks some)."""
    built = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=False).stderr
    temp_paths = "\n".join(
        f"    {module}_temp_path {tmp}/{module};"
        for module in ("proxy", "fastcgi", "uwsgi", "scgi")
        if f"--without-http_{module}_module" not in built
    )
    return NGINX_CONF.format(tmp=tmp, root=root, port=port, temp_paths=temp_paths)


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    latency_avg: float  # seconds
    latency_p50: float
    latency_p99: float
    requests: int
    bytes_read: float
    errors: str

    @property
    def bytes_per_request(self) -> float:
        return self.bytes_read / self.requests if self.requests else 0.0


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def seconds_of(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise BenchError(f"wrk printed a time I cannot read: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def bytes_of(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(B|KB|MB|GB|TB)", text)
    if match is None:
        raise BenchError(f"wrk printed a size I cannot read: {text!r}")
    return float(match.group(1)) * _SIZES[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchError(f"wrk output without {pattern!r}:\n{output}")
        return match

    latency = find(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)")
    total = find(r"^\s*(\d+) requests in (\S+), (\S+) read")
    errors = []
    socket_errors = re.search(r"Socket errors: (.*)$", output, re.MULTILINE)
    if socket_errors:
        errors.append(f"socket errors: {socket_errors.group(1)}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if bad:
        errors.append(f"{bad.group(1)} non-2xx/3xx responses")
    return WrkResult(
        requests_per_second=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        latency_avg=seconds_of(latency.group(1)),
        latency_p50=seconds_of(find(r"^\s*50%\s+(\S+)").group(1)),
        latency_p99=seconds_of(find(r"^\s*99%\s+(\S+)").group(1)),
        requests=int(total.group(1)),
        bytes_read=bytes_of(total.group(3)),
        errors="; ".join(errors),
    )


def run_wrk(url: str, seconds: int, headers: dict[str, str] | None = None) -> WrkResult:
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--timeout", WRK_TIMEOUT]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command += ["--latency", url]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if done.returncode != 0:
        raise BenchError(f"{shlex.join(command)} failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# --------------------------------------------------------------------------- (c) and (d)


@dataclass(frozen=True)
class ServeRow:
    case: str  # "GET" or "304"
    label: str  # "~50 KB"
    server: str  # "nginx" or "tracker serve"
    body_bytes: int
    result: WrkResult
    ratio: float | None = None  # to nginx, same case and feed
    goal: float | None = None

    @property
    def met(self) -> bool | None:
        return None if self.ratio is None or self.goal is None else self.ratio >= self.goal


@dataclass
class ServeResult:
    rows: list[ServeRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str = ""


def measure(url: str, sizes: Sizes, headers: dict[str, str] | None = None) -> WrkResult:
    run_wrk(url, sizes.warmup_seconds, headers)  # warm-up, not reported
    return run_wrk(url, sizes.wrk_seconds, headers)


def bench_tracker(tmp: Path, label: str, files: int, sizes: Sizes) -> tuple[Fetched, WrkResult, WrkResult]:
    """Sync *files* generated timelines into a fresh store, serve it with `tracker serve`, wrk it."""
    folder = tmp / f"schedules-{files}"
    folder.mkdir()
    generate(folder, files)
    database = tmp / f"store-{files}.db"
    engine = open_store(f"sqlite:///{database}")
    try:
        outcome = sync_once(engine, folder)
        check(outcome.ok, f"sync of {files} generated files failed: {[str(p) for p in outcome.problems[:5]]}")
    finally:
        engine.dispose()
    port = free_port()
    command = [str(TRACKER), "serve", "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}/feeds/all.ics"
    with running("tracker serve", command, port, tmp / f"serve-{files}.log", env=tracker_env(database, port), cwd=tmp):
        feed = fetch(port, "/feeds/all.ics")  # the warm-up request: builds and caches the feed
        check(feed.status == 200, f"tracker serve answered {feed.status} for /feeds/all.ics")
        check("content-encoding" not in feed.headers, "tracker serve gzipped a request without Accept-Encoding")
        etag = feed.headers.get("etag", "")
        check(bool(etag), "tracker serve sent no ETag")
        check(fetch(port, "/feeds/all.ics").body == feed.body, "tracker serve changed the feed between requests")
        check(fetch(port, "/feeds/all.ics", {"If-None-Match": etag}).status == 304, "no 304 for its own ETag")
        console.print(f"(c) {label}: tracker serve on :{port}, /feeds/all.ics is {len(feed.body):,} bytes")
        get = measure(url, sizes)
        not_modified = measure(url, sizes, {"If-None-Match": etag})
    return feed, get, not_modified


def bench_nginx(tmp: Path, label: str, body: bytes, sizes: Sizes) -> tuple[WrkResult, WrkResult]:
    nginx = find_nginx()
    assert nginx is not None
    home = tmp / f"nginx-{len(body)}"
    root = home / "www"
    (root / "feeds").mkdir(parents=True)
    (root / "feeds" / "all.ics").write_bytes(body)
    for path in (tmp, home, root, root / "feeds"):
        path.chmod(0o755)  # nginx's worker runs as nobody when started by root
    (root / "feeds" / "all.ics").chmod(0o644)
    port = free_port()
    conf = home / "nginx.conf"
    conf.write_text(nginx_config(home, root, port, nginx), encoding="utf-8")
    command = [nginx, "-p", str(home), "-c", str(conf), "-e", str(home / "error.log")]
    url = f"http://127.0.0.1:{port}/feeds/all.ics"
    with running("nginx", command, port, home / "stdout.log"):
        served = fetch(port, "/feeds/all.ics")
        check(served.status == 200 and served.body == body, f"nginx did not serve the same bytes ({served.status})")
        etag = served.headers.get("etag", "")
        check(bool(etag), "nginx sent no ETag")
        check(fetch(port, "/feeds/all.ics", {"If-None-Match": etag}).status == 304, "nginx: no 304 for its ETag")
        console.print(f"(c) {label}: nginx on :{port}, same {len(body):,} bytes")
        get = measure(url, sizes)
        not_modified = measure(url, sizes, {"If-None-Match": etag})
    return get, not_modified


def bench_serving(sizes: Sizes) -> ServeResult:
    result = ServeResult()
    with tempfile.TemporaryDirectory(prefix="tracker-bench-feeds-") as name:
        tmp = Path(name)
        for label, files in FEED_STORES:
            feed, app_get, app_304 = bench_tracker(tmp, label, files, sizes)
            nginx_get, nginx_304 = bench_nginx(tmp, label, feed.body, sizes)
            size = len(feed.body)
            for case, ours, theirs, goal in (
                ("GET", app_get, nginx_get, SERVE_GOAL),
                ("304", app_304, nginx_304, None),
            ):
                result.rows.append(ServeRow(case, label, "nginx", size, theirs))
                ratio = ours.requests_per_second / theirs.requests_per_second
                result.rows.append(ServeRow(case, label, "tracker serve", size, ours, ratio, goal))
                for server, run in (("nginx", theirs), ("tracker serve", ours)):
                    if run.errors and run.errors != "socket errors: connect 0, read 0, write 0, timeout 0":
                        result.notes.append(f"{case} {label} via {server}: {run.errors}")
                    # wrk prints the bytes read with three digits: allow for its rounding.
                    if case == "GET" and run.bytes_per_request < 0.99 * size:
                        result.notes.append(
                            f"{case} {label} via {server}: {run.bytes_per_request:,.0f} bytes a response"
                        )
            console.print(
                f"(c) {label}: tracker serve {app_get.requests_per_second:,.0f} req/s, "
                f"nginx {nginx_get.requests_per_second:,.0f} req/s"
            )
    return result


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Row:
    case: str
    runs: list[float]
    ratio: float
    goal: float | None = None

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.ratio <= self.goal

    def cells(self) -> tuple[str, str, str, str, str, str, str]:
        """Markdown cells: case, best, median, runs, ratio, goal, met."""
        median = sorted(self.runs)[len(self.runs) // 2]
        goal = "" if self.goal is None else f"≤ {self.goal:g}×"
        met = {None: "", True: "yes", False: "**no**"}[self.met]
        return (
            self.case,
            f"{min(self.runs):.4f}",
            f"{median:.4f}",
            str(len(self.runs)),
            ratio_text(self.ratio),
            goal,
            met,
        )


def ratio_text(ratio: float) -> str:
    return f"{ratio:.3f}×" if ratio < 0.1 else f"{ratio:.2f}×"


def build_rows(builds: BuildResult, items: int) -> list[Row]:
    plain = min(builds.plain)

    def row(case: str, runs: list[float], goal: float | None = None) -> Row:
        return Row(case, runs, min(runs) / plain, goal)

    return [
        row(f"plain icalendar build of {items:,} items (baseline)", builds.plain),
        row(f"(a) build_feed, {items:,} items", builds.full),
        row("FeedCache.render, cold cache (first build)", builds.cold),
        row("FeedCache.render, warm, nothing changed", builds.unchanged),
        row("(b) FeedCache.render, warm, one milestone changed", builds.rebuild, REBUILD_GOAL),
        row("(b) + ETag and gzip, as Calendars does before serving", builds.rebuild_served),
    ]


def print_build_table(rows: list[Row], title: str) -> None:
    table = Table(title=title, caption="plain = icalendar Calendar/Event/Alarm of the same items, to_ical()")
    for name, justify in (("Case", "left"), ("Best s", "right"), ("Median s", "right"), ("Runs", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("Ratio to plain", justify="right")
    table.add_column("Goal", justify="left")
    for row in rows:
        case, best, median, runs, ratio, _, _ = row.cells()
        goal = ""
        if row.goal is not None:
            goal = f"≤ {row.goal:g}× " + ("[green]met[/green]" if row.met else "[bold red]missed[/bold red]")
        table.add_row(case, best, median, runs, ratio, goal)
    console.print(table)


def serve_cells(row: ServeRow) -> tuple[str, ...]:
    """Markdown cells: case, feed, server, body, req/s, avg, p50, p99, bytes/response, ratio, goal, met."""
    case = "GET (200)" if row.case == "GET" else "If-None-Match (304)"
    ratio = "1.00×" if row.ratio is None else ratio_text(row.ratio)
    goal = "" if row.goal is None else f"≥ {row.goal:g}×"
    met = {None: "", True: "yes", False: "**no**"}[row.met]
    r = row.result
    return (
        case,
        row.label,
        row.server,
        f"{row.body_bytes:,}",
        f"{r.requests_per_second:,.0f}",
        ms(r.latency_avg),
        ms(r.latency_p50),
        ms(r.latency_p99),
        f"{r.bytes_per_request:,.0f}",
        ratio,
        goal,
        met,
    )


SERVE_HEADERS = (
    "Case",
    "Feed",
    "Server",
    "Body (bytes)",
    "Req/s",
    "Latency avg",
    "p50",
    "p99",
    "Bytes/response",
    "Ratio to nginx",
    "Goal",
    "Met",
)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def print_serve_table(result: ServeResult, title: str) -> None:
    table = Table(title=title, caption=wrk_words())
    for name in SERVE_HEADERS[:-1]:
        table.add_column(name, justify="left" if name in ("Case", "Feed", "Server", "Goal") else "right")
    for row in result.rows:
        cells = serve_cells(row)
        goal = cells[10]
        if row.goal is not None:
            goal += " " + ("[green]met[/green]" if row.met else "[bold red]missed[/bold red]")
        table.add_row(*cells[:10], goal)
    console.print(table)


def wrk_words() -> str:
    return (
        f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} --timeout {WRK_TIMEOUT}, 127.0.0.1, keep-alive, "
        "no Accept-Encoding (identity); one warm-up run before each"
    )


def machine_lines(tools: str) -> list[str]:
    def version(name: str) -> str:
        return importlib.metadata.version(name)

    lines = [
        f"- Platform: {platform.platform()} ({platform.machine()})",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), icalendar {version('icalendar')}, "
        f"uvicorn {version('uvicorn')} ({uvicorn_stack()}), FastAPI {version('fastapi')}",
    ]
    if tools:
        lines.append(f"- {tools}")
    return lines


def uvicorn_stack() -> str:
    """Which HTTP parser and loop uvicorn's 'auto' picks here."""
    from importlib.util import find_spec

    http = "httptools" if find_spec("httptools") else "h11"
    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    return f"{http}, {loop}"


@dataclass(frozen=True)
class RunInfo:
    sizes: Sizes
    args: list[str]
    load: str
    load_end: str
    tools: str


def markdown(rows: list[Row], builds: BuildResult, serving: ServeResult, info: RunInfo) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    host = f"{platform.system()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} cores"
    sizes = info.sizes
    command = shlex.join([".venv/bin/python", "bench/bench_feeds.py", *info.args])
    out = [
        f"### {stamp} — calendar feeds — {host}",
        "",
        "Benchmark `bench/bench_feeds.py` (issue 3): (a) full build of a 10,000-item feed vs a plain icalendar "
        "build of the same items; (b) rebuild after one changed milestone, goal ≤ 0.05× the plain build; "
        "(c) the cached ~50 KB and ~2 MB feeds through `tracker serve` vs the same bytes from nginx, "
        "goal ≥ 0.2× nginx's req/s; (d) the 304 path.",
        "",
        *machine_lines(info.tools),
        f"- Load average (1, 5, 15 min) when the run started: {info.load}; when it ended: {info.load_end}",
        *(f"- Note: {note}" for note in busy_notes(info.load)),
        f"- Code: {code_version()}",
        f"- Command: `{command}`",
        f"- Data (a, b): {sizes.items:,} generated milestone views, {MILESTONES_PER_TIMELINE} a timeline, seed {SEED}: "
        "40 % all-day and 30 % timed deadlines, 30 % spans (half all-day), 3 % of deadlines repeating, "
        f"three reminders each, {len(ZONES)} zones; feed {builds.feed_bytes:,} bytes, "
        f"plain {builds.plain_bytes:,} bytes",
        "- Baseline: icalendar Calendar + Event (UID, DTSTAMP, DTSTART, DTEND, SUMMARY, DESCRIPTION, SEQUENCE, "
        "RRULE) + three display VALARMs per item, `to_ical()`; no VTIMEZONE, no other properties",
        f"- Runs: plain best of {sizes.plain_runs}; build_feed best of {sizes.full_runs}; "
        f"warm renders best of {sizes.rebuild_runs} (each a different milestone, fresh view objects)",
        "",
        "| Case | Best (s) | Median (s) | Runs | Ratio to plain | Goal | Met |",
        "|---|---:|---:|---:|---:|---|---|",
        *("| " + " | ".join(row.cells()) + " |" for row in rows),
        "",
    ]
    if serving.skipped:
        out += [f"- (c) and (d) skipped: {serving.skipped}", ""]
    else:
        out += [
            "- Data (c, d): `/feeds/all.ics` of SQLite stores synced from bench_sync's generated timeline files "
            f"({', '.join(f'{files} files for {label}' for label, files in FEED_STORES)}); the app warmed by one "
            "request; nginx serves the bytes fetched from the app as a static file",
            f"- Servers: `tracker serve` as shipped (uvicorn, one process, access log on, {uvicorn_stack()}); "
            "nginx with its own temporary config: one worker, `sendfile on`, `access_log off`, "
            "`keepalive_requests 1000000`, default_type text/calendar",
            f"- Load: {wrk_words()}; {sizes.wrk_seconds} s measured; wrk shares the machine's "
            f"{os.cpu_count()} cores with the server",
            "",
            "| " + " | ".join(SERVE_HEADERS) + " |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
            *("| " + " | ".join(serve_cells(row)) + " |" for row in serving.rows),
            "",
        ]
    for row in rows:
        if row.goal is not None:
            state = "met" if row.met else "**missed**"
            out.append(f"- {row.case}: {ratio_text(row.ratio)} against a goal of ≤ {row.goal:g}× — {state}")
    for serve_row in serving.rows:
        if serve_row.goal is not None and serve_row.ratio is not None:
            state = "met" if serve_row.met else "**missed**"
            out.append(
                f"- (c) {serve_row.label} feed through tracker serve: {ratio_text(serve_row.ratio)} nginx's req/s "
                f"against a goal of ≥ {serve_row.goal:g}× — {state}"
            )
    out.extend(f"- Note: {note}" for note in serving.notes)
    return "\n".join(out) + "\n"


def busy_notes(load: str) -> list[str]:
    """A warning when other processes had the machine as the run started (at the end, the load is
    mostly this run's own wrk and servers, so it says nothing about others)."""
    cores = os.cpu_count() or 1
    try:
        busiest = float(load.split(",", maxsplit=1)[0])
    except ValueError:
        return []
    if busiest < cores / 2:
        return []
    return [
        f"1-minute load average {busiest:.2f} on {cores} cores as the run started: other processes "
        "competed for the CPU, so these numbers are pessimistic; run again on a quiet machine to compare"
    ]


def current_rows(rows: list[Row], serving: ServeResult, items: int) -> list[Current]:
    """The run's figures for the table atop BENCHMARKS.md: the goals of (b) and (c)."""
    found = [
        Current("feeds", f"rebuild of a {items:,}-item feed after one change", f"{ratio_text(row.ratio)} plain build",
                f"≤ {row.goal:g}×", row.met)
        for row in rows
        if row.goal is not None
    ]  # fmt: skip
    for serve_row in serving.rows:
        if serve_row.goal is not None and serve_row.ratio is not None:
            figure = f"{ratio_text(serve_row.ratio)} nginx req/s"
            case = f"{serve_row.label} feed through `tracker serve`"
            found.append(Current("feeds", case, figure, f"≥ {serve_row.goal:g}×", serve_row.met))
    return found


# --------------------------------------------------------------------------- main


def serving_or_skip(sizes: Sizes, install: bool) -> ServeResult:
    missing = missing_tools()
    if missing and install:
        install_tools()
        missing = missing_tools()
    if missing:
        how = "run with --install" if not install else "apt-get install failed"
        message = f"{' and '.join(missing)} not found ({how}: apt-get install -y nginx-light wrk)"
        console.print(f"[yellow]skipping (c) and (d):[/yellow] {message}")
        return ServeResult(skipped=message)
    return bench_serving(sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_ITEMS:,} items, {QUICK.wrk_seconds} s wrk runs, a smoke test; BENCHMARKS.md is left alone",
    )
    parser.add_argument(
        "--install", action="store_true", help="apt-get install nginx-light and wrk when missing (else skip HTTP)"
    )
    args = parser.parse_args(argv)
    raw_args = sys.argv[1:] if argv is None else argv
    sizes = QUICK if args.quick else FULL
    load = load_average()

    builds = bench_builds(sizes)
    serving = serving_or_skip(sizes, args.install)

    rows = build_rows(builds, sizes.items)
    quick = " (--quick)" if args.quick else ""
    print_build_table(rows, f"Feed of {sizes.items:,} items: build and rebuild{quick}")
    if serving.rows:
        print_serve_table(serving, f"Serving the cached feeds: tracker serve vs nginx{quick}")
    for note in serving.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    load_end = load_average()
    for note in busy_notes(load):
        console.print(f"[yellow]note:[/yellow] {note}")
    if args.quick:
        console.print("--quick: BENCHMARKS.md not updated")
    else:
        info = RunInfo(sizes, raw_args, load, load_end, tool_versions())
        record(current_rows(rows, serving, sizes.items), markdown(rows, builds, serving, info), script="bench_feeds.py")
        console.print(f"Updated {BENCHMARKS}")
    return 0  # a missed goal is a result, not a failure; BenchError means the product misbehaved


if __name__ == "__main__":
    sys.exit(main())
