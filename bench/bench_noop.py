"""Benchmark: a delivery pass with nothing due and nothing changed (issue 18), and a re-plan after one move.

Generated on SQLite: TIMELINES timelines × MILESTONES deadlines (one a day or so from nine days
ahead, reminders 7d and 1d: nothing due now, much planned inside the 35-day horizon) and
SUBSCRIBERS confirmed subscribers in six languages and eight zones, imported with
`tracker subscribers import --confirmed`. A first `tracker send-due` plans everything. Then, each
a whole process, start to exit, with its peak RSS (`os.wait4`):

* baseline - `python -c "import sqlalchemy"`, the floor of any Python process that reads a store;
* no-op    - `tracker send-due` again: nothing due, nothing changed;
* re-plan  - one milestone moved a day by a sync (not timed), then `tracker send-due` (its changed
             messages go to a Postfix smtp-sink).

Goals (issue 18): no-op ≤ 10× the baseline and ≤ 250 MB; re-plan ≤ 2× the no-op plus the time to
send its changed messages. The issue's full size (1,000 × 20 and 100,000 subscribers) is `--full`;
until planning stops writing a row per subscriber ahead of time it would plan tens of millions of
rows, so the recorded run is the size the issue measured first: 50 × 10 and 20,000.

    .venv/bin/python bench/bench_noop.py            # 50 × 10, 20,000 subscribers, records BENCHMARKS.md
    .venv/bin/python bench/bench_noop.py --runs 1   # the same, one run (a shared machine)
    .venv/bin/python bench/bench_noop.py --quick    # 10 × 10, 2,000 subscribers, one run, records nothing
"""

from __future__ import annotations

import argparse
import os
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

from bench.bench_delivery import TRACKER, environment, fresh_url, sent_count, smtp_sink  # noqa: E402
from bench.bench_import import timed, write_csv  # noqa: E402
from bench.report import Current, machine, record  # noqa: E402

RUNS = 3
GOAL = 10.0
MEMORY_GOAL = 250  # MB
REPLAN_GOAL = 2.0


def timeline(number: int, milestones: int, first: datetime, shift: int = 0) -> str:
    """A timeline of *milestones* deadlines a day apart from *first*; the first moved *shift* days."""
    lines = [f"id: t{number:04d}", f"title: Timeline {number}", "timezone: Europe/Zurich", "audiences: [membership]",
             "reminders: [7d, 1d]", "milestones:"]  # fmt: skip
    for n in range(milestones):
        day = (first + timedelta(days=n + (number % 7) + (shift if n == 0 else 0))).date().isoformat()
        lines += [f"  - id: m{n:02d}", f"    title: Step {n + 1}", "    owner: membership", f"    due: {day}"]
    return "\n".join(lines) + "\n"


def build(folder: Path, url: str, port: int, size: tuple[int, int, int]) -> tuple[dict[str, str], datetime]:
    """A store with the timelines and subscribers, everything planned once; the env to run tracker in."""
    timelines, milestones, subscribers = size
    schedules = folder / "schedules"
    schedules.mkdir()
    first = datetime.now(UTC) + timedelta(days=9)
    for number in range(timelines):
        (schedules / f"t{number:04d}.yaml").write_text(timeline(number, milestones, first))
    env = {**environment(folder, url, port), "TRACKER_OVERDUE": ""}
    members = folder / "members.csv"
    write_csv(members, subscribers)
    for args in (["sync"], ["subscribers", "import", "--confirmed", str(members)], ["send-due"]):
        subprocess.run([TRACKER, *args], env=env, cwd=folder, check=True, capture_output=True)
    return env, first


def one_run(port: int, size: tuple[int, int, int]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = fresh_url("sqlite", folder)
        env, first = build(folder, url, port, size)
        base = timed([sys.executable, "-c", "import sqlalchemy"], env, folder)
        noop = timed([TRACKER, "send-due"], env, folder)
        (folder / "schedules" / "t0000.yaml").write_text(timeline(0, size[1], first, shift=1))
        subprocess.run([TRACKER, "sync"], env=env, cwd=folder, check=True, capture_output=True)
        before = sent_count(url)
        replan = timed([TRACKER, "send-due"], env, folder)
        return {"base": base[0], "base_rss": base[1], "noop": noop[0], "noop_rss": noop[1], "replan": replan[0],
                "replan_rss": replan[1], "told": sent_count(url) - before, "rows": planned_rows(url)}  # fmt: skip


def planned_rows(url: str) -> int:
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return int(db.execute("SELECT count(*) FROM deliveries WHERE state = 'planned'").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 × 10, 2,000 subscribers, one run, record nothing")
    parser.add_argument("--full", action="store_true", help="the issue's 1,000 × 20 and 100,000 (not feasible yet)")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs of the recorded size (default {RUNS})")
    args = parser.parse_args()
    size = (10, 10, 2000) if args.quick else (1000, 20, 100_000) if args.full else (50, 10, 20_000)
    runs = 1 if args.quick else max(args.runs, 1)
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load = os.getloadavg()
    with smtp_sink() as port:
        results = [one_run(port, size) for _ in range(runs)]
    median = {key: statistics.median(r[key] for r in results) for key in results[0]}
    noop_ratio = median["noop"] / median["base"]
    replan_ratio = median["replan"] / median["noop"]
    rss = max(r["noop_rss"] for r in results)
    timelines, milestones, subscribers = size

    def runs_of(key: str) -> str:
        return ", ".join(f"{r[key]:.2f}" for r in results)

    report = "\n".join([
        f"### {started} UTC — No-op pass and re-plan: {timelines:,} timelines × {milestones} milestones, "
        f"{subscribers:,} subscribers — {platform.system()} {platform.machine()}, {machine()}\n",
        f"Command: `make bench` (bench/bench_noop.py), SQLite, each a whole process, {runs} run(s), the median "
        f"shown; {median['rows']:,.0f} rows planned ahead; load average {load[0]:.2f} as the run started.\n",
        "| case | seconds | peak RSS | runs |",
        "|---|---:|---:|---|",
        f"| baseline: `python -c \"import sqlalchemy\"` | {median['base']:.2f} | {median['base_rss']:.0f} MB | "
        f"{runs_of('base')} |",
        f"| no-op `tracker send-due` (nothing due, nothing changed) | {median['noop']:.2f} | {rss:.0f} MB | "
        f"{runs_of('noop')} |",
        f"| re-plan: one milestone moved, then `tracker send-due` ({median['told']:,.0f} changed sent) | "
        f"{median['replan']:.2f} | {median['replan_rss']:.0f} MB | {runs_of('replan')} |",
        f"\nNo-op pass / baseline: **{noop_ratio:.1f}×** (goal ≤ {GOAL:g}×), peak {rss:.0f} MB "
        f"(goal ≤ {MEMORY_GOAL} MB). Re-plan / no-op: **{replan_ratio:.2f}×** (goal ≤ {REPLAN_GOAL:g}× plus "
        "sending its changed messages).\n",
    ])  # fmt: skip
    print(report)
    if not args.quick:
        case = f"{timelines:,} × {milestones}, {subscribers:,} subscribers, SQLite"
        record([
            Current("no-op pass", case, f"{noop_ratio:.1f}× `import sqlalchemy`, {rss:.0f} MB",
                    f"≤ {GOAL:g}×, ≤ {MEMORY_GOAL} MB", noop_ratio <= GOAL and rss <= MEMORY_GOAL),
            Current("re-plan", case, f"{replan_ratio:.2f}× the no-op pass (with its changed messages)",
                    f"≤ {REPLAN_GOAL:g}× + sending", replan_ratio <= REPLAN_GOAL),
        ], report, script="bench_noop.py")  # fmt: skip


if __name__ == "__main__":
    main()
