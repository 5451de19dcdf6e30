"""Benchmark: one change set moving 50 milestones, told to 10,000 subscribers (issue 15).

Measures, in one run, on SQLite, into Postfix's smtp-sink:

* fan-out  - `tracker send-due` sending one due reminder to the 10,000 (bench_delivery's case (a)):
             the baseline, a whole process, start to exit.
* changes  - a sync moves the 50 milestones of a timeline the 10,000 follow by a week; then
             `tracker send-due` plans the change messages (one per subscriber, 50 lines each) and
             sends them: the whole process, start to exit. The sync itself is not timed.

Ratio = changes / fan-out, each the median of RUNS runs. Goal ≤ 1.3.

And the floor the bytes set: bare aiosmtplib (bench_delivery's baseline) sending the very
messages of each case, rendered beforehand by the engine (a sample of 600, repeated), over the
same connections. A changed message listing 50 dates is several times a reminder's size; the
ratio of the two bare sends is what any sender would pay for those bytes.

    .venv/bin/python bench/bench_changes.py            # 10,000 subscribers, records BENCHMARKS.md
    .venv/bin/python bench/bench_changes.py --quick    # 1,000, one run, records nothing
    .venv/bin/python bench/bench_changes.py --count 2000 --runs 2   # records nothing
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_delivery import (  # noqa: E402
    TRACKER,
    bare_send,
    environment,
    fresh_url,
    machine,
    prepare,
    render_for_baseline,
    rendered_samples,
    send_due,
    sent_count,
    smtp_sink,
)
from bench.report import Current, record  # noqa: E402

MILESTONES = 50
RUNS = 3
GOAL = 1.3


def timeline(first: datetime) -> str:
    """Fifty membership deadlines a day apart from *first*, without reminders of their own."""
    lines = ["id: moves", "title: A timeline that moves", "timezone: Europe/Zurich", "audiences: [membership]",
             "reminders: []", "milestones:"]  # fmt: skip
    for n in range(MILESTONES):
        day = (first + timedelta(days=n)).date().isoformat()
        lines += [f"  - id: step-{n:02d}", f"    title: Step {n + 1} of the consultation", "    owner: membership",
                  f"    due: {day}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def change_set(count: int, port: int) -> float:
    """Seconds of the send-due that tells *count* subscribers of 50 moved milestones."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = fresh_url("sqlite", folder)
        env = moved(folder, url, count, environment(folder, url, port))
        before = sent_count(url)
        seconds = send_due_with(folder, env)
        told = sent_count(url) - before
        if told != count:
            raise RuntimeError(f"{told} change messages sent to {count} subscribers")
        return seconds


def moved(folder: Path, url: str, count: int, env: dict[str, str]) -> dict[str, str]:
    """A store whose *count* followers have just seen the 50 milestones move a week (synced, not sent)."""
    prepare(folder, url, count, datetime.now(UTC) + timedelta(days=400))  # followers; its one reminder is far
    first = datetime.now(UTC) + timedelta(days=60)
    schedule = folder / "schedules" / "moves.yaml"
    schedule.write_text(timeline(first))
    env = {**env, "TRACKER_OVERDUE": ""}
    subprocess.run([TRACKER, "sync"], env=env, check=True, capture_output=True, cwd=folder)
    subprocess.run([TRACKER, "send-due"], env=env, check=True, capture_output=True, cwd=folder)  # history
    schedule.write_text(timeline(first + timedelta(days=7)))
    subprocess.run([TRACKER, "sync"], env=env, check=True, capture_output=True, cwd=folder)
    return env


def changes_for_baseline(folder: Path, count: int) -> list[bytes]:
    """Render a sample of the change messages with the engine into .eml files (no SMTP)."""
    sample = folder / "changes"
    url = f"sqlite:///{sample / 'tracker.db'}"
    env = moved(sample, url, min(count, 600), environment(sample, url, 1))
    outbox = sample / "var" / "outbox"
    for old in outbox.glob("*.eml"):  # the history pass's messages, if any
        old.unlink()
    env = {**env, "TRACKER_SMTP_URL": "", "TRACKER_OUTBOX_DIR": str(outbox)}
    subprocess.run([TRACKER, "send-due"], env=env, cwd=sample, check=True, capture_output=True)
    return rendered_samples(sample, count)


def floor(count: int, port: int) -> tuple[float, float, int, int]:
    """Bare aiosmtplib seconds for the reminders' bytes and for the change messages' bytes, and their mean sizes."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        reminders, changes = render_for_baseline(folder, count), changes_for_baseline(folder, count)
    sizes = (sum(map(len, reminders)) // count, sum(map(len, changes)) // count)
    return asyncio.run(bare_send(port, reminders)), asyncio.run(bare_send(port, changes)), *sizes


def send_due_with(folder: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([TRACKER, "send-due"], check=False, env=env, cwd=folder, capture_output=True, text=True,
                            timeout=1800)  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    return time.perf_counter() - started


def fan_out(count: int, port: int) -> float:
    """Seconds of the send-due that sends one due reminder to *count* subscribers."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = fresh_url("sqlite", folder)
        prepare(folder, url, count, datetime.now(UTC) + timedelta(hours=2))  # its 3h reminder is due
        seconds = send_due(folder, url, port, 1)
        if sent_count(url) != count:
            raise RuntimeError(f"{sent_count(url)} reminders sent to {count} subscribers")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 subscribers, one run, record nothing")
    parser.add_argument("--count", type=int, help="this many subscribers instead (records nothing)")
    parser.add_argument("--runs", type=int, help="this many alternated runs instead (records nothing)")
    args = parser.parse_args()
    count, runs = (1000, 1) if args.quick else (10_000, RUNS)
    count, runs = args.count or count, args.runs or runs
    pairs, floors = [], []
    with smtp_sink() as port:
        for _ in range(runs):  # alternated, so that a slow minute of the machine hits both
            pairs.append((fan_out(count, port), change_set(count, port)))
            floors.append(floor(count, port))
    base = statistics.median(p[0] for p in pairs)
    changes = statistics.median(p[1] for p in pairs)
    ratio = changes / base
    bare_reminders = statistics.median(f[0] for f in floors)
    bare_changes = statistics.median(f[1] for f in floors)
    size_reminder, size_change = floors[0][2], floors[0][3]
    report = "\n".join([
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — Change messages: one change set of {MILESTONES} moves — "
        f"{platform.system()} {platform.machine()}, {machine()}\n",
        f"Command: `make bench` (bench/bench_changes.py), {count:,} subscribers in six languages, SQLite, "
        f"Postfix smtp-sink on 127.0.0.1; each case {runs} time(s), alternated, the median shown.\n",
        "| case | seconds | runs |",
        "|---|---:|---|",
        f"| fan-out: one reminder to each (`send-due`) | {base:.2f} | {', '.join(f'{p[0]:.2f}' for p in pairs)} |",
        f"| change set: {MILESTONES} moved, one message each (`send-due`) | {changes:.2f} | "
        f"{', '.join(f'{p[1]:.2f}' for p in pairs)} |",
        f"\nRatio change set / fan-out: **{ratio:.2f}** (goal ≤ {GOAL}).\n",
        "The floor the bytes set (bare aiosmtplib sending the same messages, rendered beforehand, "
        f"over the same connections): a reminder averages {size_reminder / 1000:.1f} KB and a change message "
        f"{size_change / 1000:.1f} KB; sending the reminders took {bare_reminders:.2f} s and the change messages "
        f"{bare_changes:.2f} s (runs {', '.join(f'{f[0]:.2f}/{f[1]:.2f}' for f in floors)}): "
        f"**{bare_changes / bare_reminders:.2f}×** for the bytes alone. Tracker's change set over its fan-out is "
        f"{ratio:.2f}×; over the bare send of its own bytes, {changes / bare_changes:.2f}× "
        f"(the fan-out over its bytes: {base / bare_reminders:.2f}×).\n",
    ])  # fmt: skip
    print(report)
    if not args.quick and args.count is None and args.runs is None:
        case = f"{MILESTONES} moves told to {count:,} subscribers, `send-due`"
        record([Current("changes", case, f"{ratio:.2f}× a reminder fan-out", f"≤ {GOAL}×", ratio <= GOAL)], report,
               script="bench_changes.py")  # fmt: skip


if __name__ == "__main__":
    main()
