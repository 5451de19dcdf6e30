"""Benchmark: a delivery pass with nothing due and nothing changed (issue 18), and a re-plan after one move.

Generated on SQLite: TIMELINES timelines × MILESTONES deadlines (one a day or so from nine days
ahead, reminders 7d and 1d: nothing due now, much planned inside the 35-day horizon) and
SUBSCRIBERS confirmed subscribers in six languages and eight zones, imported with
`tracker subscribers import --confirmed`. With `--groups G` the timelines are split into G
audiences (timeline n is for group n mod G, subscriber n in group n mod G), so each subscriber
follows TIMELINES / G of them; with `--shared N` the first N timelines are everyone's too (the
moved one among them: its re-plan concerns every subscriber). Then, each a whole process,
start to exit, with its peak RSS (`os.wait4`):

* baseline - `python -c "import sqlalchemy"`, the floor of any Python process that reads a store;
* first    - the first `tracker send-due`: plans every row (a batch of subscribers at a time);
* no-op    - `tracker send-due` again: nothing due, nothing changed;
* re-plan  - one milestone moved a day by a sync (not timed), then `tracker send-due` (its changed
             messages go to a Postfix smtp-sink).

Goals (issue 18): no-op ≤ 10× the baseline and ≤ 250 MB; re-plan ≤ 2× the no-op plus the time to
send its changed messages; the first plan's peak RSS bounded by its batch of subscribers, not by
their number. The issue's full size (1,000 × 20 and 100,000 subscribers) is `--full`; while
planning writes a row per subscriber and reminder ahead of time, everyone following everything
would be four billion rows, so the recorded run is 100 × 20 and 20,000 subscribers in 20 groups
(five timelines each: 4,000,000 rows planned ahead).

    .venv/bin/python bench/bench_noop.py            # 100 × 20, 20,000 in 20 groups, one run, records BENCHMARKS.md
    .venv/bin/python bench/bench_noop.py --quick    # 10 × 10, 2,000 subscribers, one run, records nothing
    .venv/bin/python bench/bench_noop.py --size 100,20,5000 --groups 100   # any size, records nothing
    .venv/bin/python bench/bench_noop.py --full --groups 1000 --shared 1     # the issue's size, 8,000,000 rows
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_delivery import TRACKER, environment, fresh_url, sent_count, smtp_sink  # noqa: E402
from bench.bench_import import timed, write_csv  # noqa: E402
from bench.report import Current, machine, record  # noqa: E402

RUNS = 1  # the first plan of millions of rows takes minutes: one run, on a machine as quiet as can be
SIZE = (100, 20, 20_000)
GROUPS = 20
GOAL = 10.0
MEMORY_GOAL = 250  # MB
REPLAN_GOAL = 2.0


@dataclass(frozen=True)
class Following:
    """Who follows what: *groups* audiences, timeline n and subscriber n in group n mod groups; the
    first *shared* timelines everyone's."""

    groups: int = 1
    shared: int = 0

    def of_timeline(self, number: int) -> str:
        """Its audiences; its owner is the first (a shared timeline names its group too: every group is one)."""
        if self.groups == 1:
            return "membership"
        return ("membership, " if number < self.shared else "") + f"g{number % self.groups}"

    def of_subscriber(self, number: int) -> str:
        if self.groups == 1:
            return "membership"
        return f"g{number % self.groups}" + (";membership" if self.shared else "")

    def describe(self, timelines: int) -> str:
        if self.groups == 1:
            return "each follows every timeline"
        own = f"{(timelines - self.shared) / self.groups:.3g}"  # on average
        return f"each follows {own} timeline(s) of its group" + (
            f" and {self.shared} everyone's" if self.shared else ""
        )


def timeline(number: int, milestones: int, first: datetime, following: Following, shift: int = 0) -> str:
    """A timeline of *milestones* deadlines a day apart from *first*; the first moved *shift* days."""
    audiences = following.of_timeline(number)
    group = audiences.split(", ")[0]
    lines = [f"id: t{number:04d}", f"title: Timeline {number}", "timezone: Europe/Zurich", f"audiences: [{audiences}]",
             "reminders: [7d, 1d]", "milestones:"]  # fmt: skip
    for n in range(milestones):
        day = (first + timedelta(days=n + (number % 7) + (shift if n == 0 else 0))).date().isoformat()
        lines += [f"  - id: m{n:02d}", f"    title: Step {n + 1}", f"    owner: {group}", f"    due: {day}"]
    return "\n".join(lines) + "\n"


def write_members(path: Path, count: int, following: Following) -> None:
    """The subscribers' CSV: as bench_import's, each in the group of its number."""
    write_csv(path, count)
    if following.groups > 1:
        lines = path.read_text(encoding="utf-8").splitlines()
        body = [line.removesuffix("membership") + following.of_subscriber(n) for n, line in enumerate(lines[1:])]
        path.write_text("\n".join([lines[0], *body]) + "\n", encoding="utf-8")


def build(
    folder: Path, url: str, port: int, size: tuple[int, int, int], following: Following
) -> tuple[dict[str, str], datetime]:
    """A store with the timelines and subscribers, nothing planned yet; the env to run tracker in."""
    timelines, milestones, subscribers = size
    schedules = folder / "schedules"
    schedules.mkdir()
    first = datetime.now(UTC) + timedelta(days=9)
    for number in range(timelines):
        (schedules / f"t{number:04d}.yaml").write_text(timeline(number, milestones, first, following))
    env = {**environment(folder, url, port), "TRACKER_OVERDUE": ""}
    members = folder / "members.csv"
    write_members(members, subscribers, following)
    for args in (["sync"], ["subscribers", "import", "--confirmed", str(members)]):
        subprocess.run([TRACKER, *args], env=env, cwd=folder, check=True, capture_output=True)
    return env, first


def one_run(port: int, size: tuple[int, int, int], following: Following) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = fresh_url("sqlite", folder)
        env, first = build(folder, url, port, size, following)
        plan = noted("first plan", timed([TRACKER, "send-due"], env, folder))  # plans every row
        plan_load = os.getloadavg()[0]
        base = noted("baseline", timed([sys.executable, "-c", "import sqlalchemy"], env, folder))
        noop = noted("no-op pass", timed([TRACKER, "send-due"], env, folder))
        (folder / "schedules" / "t0000.yaml").write_text(timeline(0, size[1], first, following, shift=1))
        subprocess.run([TRACKER, "sync"], env=env, cwd=folder, check=True, capture_output=True)
        before = sent_count(url)
        replan = noted("re-plan", timed([TRACKER, "send-due"], env, folder))
        return {"plan": plan[0], "plan_rss": plan[1], "plan_load": plan_load, "base": base[0], "base_rss": base[1],
                "noop": noop[0], "noop_rss": noop[1], "replan": replan[0], "replan_rss": replan[1],
                "told": sent_count(url) - before, "rows": planned_rows(url), "load": os.getloadavg()[0]}  # fmt: skip


def noted(case: str, figures: tuple[float, float]) -> tuple[float, float]:
    """*figures* of *case*, printed at once: a run stopped half way (a large size) keeps what it measured."""
    print(f"{case}: {figures[0]:.2f} s, {figures[1]:.0f} MB, load average {os.getloadavg()[0]:.2f}", flush=True)
    return figures


def sizes(text: str) -> tuple[int, int, int]:
    timelines, milestones, subscribers = (int(part) for part in text.split(","))
    return timelines, milestones, subscribers


def planned_rows(url: str) -> int:
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return int(db.execute("SELECT count(*) FROM deliveries WHERE state = 'planned'").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 × 10, 2,000 subscribers, one run, record nothing")
    parser.add_argument("--full", action="store_true", help="the issue's 1,000 × 20 and 100,000 (not feasible yet)")
    parser.add_argument("--size", type=sizes, help="TIMELINES,MILESTONES,SUBSCRIBERS; records nothing")
    parser.add_argument("--groups", type=int, help=f"audiences the timelines are split into (default {GROUPS}; 1: all)")
    parser.add_argument("--shared", type=int, default=0, help="timelines everyone follows besides their group's")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs of the recorded size (default {RUNS})")
    args = parser.parse_args()
    size = (10, 10, 2000) if args.quick else (1000, 20, 100_000) if args.full else args.size or SIZE
    following = Following(max(args.groups or (1 if args.quick else GROUPS), 1), max(args.shared, 0))
    runs = 1 if args.quick else max(args.runs, 1)
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load = os.getloadavg()
    with smtp_sink() as port:
        results = [one_run(port, size, following) for _ in range(runs)]
    median = {key: statistics.median(r[key] for r in results) for key in results[0]}
    noop_ratio = median["noop"] / median["base"]
    replan_ratio = median["replan"] / median["noop"]
    rss = max(r["noop_rss"] for r in results)
    plan_rss = max(r["plan_rss"] for r in results)
    timelines, milestones, subscribers = size

    def runs_of(key: str) -> str:
        return ", ".join(f"{r[key]:.2f}" for r in results)

    report = "\n".join([
        f"### {started} UTC — No-op pass and re-plan: {timelines:,} timelines × {milestones} milestones, "
        f"{subscribers:,} subscribers ({following.describe(timelines)}) — {platform.system()} {platform.machine()}, "
        f"{machine()}\n",
        f"Command: `{' '.join(['bench/bench_noop.py', *sys.argv[1:]])}`, SQLite, each a whole process, {runs} run(s), "
        f"the median shown; {median['rows']:,.0f} rows planned ahead; load average {load[0]:.2f} as the run "
        f"started, {median['plan_load']:.2f} after the first plan, {median['load']:.2f} at the end.\n",
        "| case | seconds | peak RSS | runs |",
        "|---|---:|---:|---|",
        f"| first `tracker send-due`: plans every row | {median['plan']:.2f} | {median['plan_rss']:.0f} MB | "
        f"{runs_of('plan')} |",
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
    if not (args.quick or args.full or args.size or args.groups or args.shared):
        case = f"{timelines:,} × {milestones}, {subscribers:,} subscribers ({following.describe(timelines)}), SQLite"
        record([
            Current("no-op pass", case, f"{noop_ratio:.1f}× `import sqlalchemy`, {rss:.0f} MB",
                    f"≤ {GOAL:g}×, ≤ {MEMORY_GOAL} MB", noop_ratio <= GOAL and rss <= MEMORY_GOAL),
            Current("re-plan", case, f"{replan_ratio:.2f}× the no-op pass (with its changed messages)",
                    f"≤ {REPLAN_GOAL:g}× + sending", replan_ratio <= REPLAN_GOAL),
            Current("first plan", case, f"{plan_rss:.0f} MB, {median['plan']:.0f} s for {median['rows']:,.0f} rows",
                    f"≤ {MEMORY_GOAL} MB (a batch's memory)", plan_rss <= MEMORY_GOAL),
        ], report, script="bench_noop.py")  # fmt: skip


if __name__ == "__main__":
    main()
