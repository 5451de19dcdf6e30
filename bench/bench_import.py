"""Benchmark: `tracker subscribers import` of 100,000 rows (issue 18), on SQLite and on PostgreSQL.

Baseline, in the same run on the same database: a Python process that reads the same CSV with
the `csv` module into dicts and inserts them with the driver's `executemany` (sqlite3 or
psycopg) into a table of the same columns, with the same unique index on the address. Both are
whole processes, start to exit; each figure is the median of RUNS runs, alternated, with the
peak RSS of the process (`os.wait4`).

    .venv/bin/python bench/bench_import.py            # 100,000 rows, records BENCHMARKS.md
    .venv/bin/python bench/bench_import.py --quick    # 10,000 rows, one run, records nothing
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_delivery import TRACKER, fresh_url  # noqa: E402
from bench.report import Current, machine, record  # noqa: E402

RUNS = 3
GOAL = 10.0
MEMORY_GOAL = 250  # MB
LANGUAGES = ("en", "fr", "es", "ru", "zh", "ar")
ZONES = ("Europe/Zurich", "America/New_York", "Asia/Tokyo", "Africa/Nairobi", "Asia/Kolkata",
         "America/Sao_Paulo", "Australia/Sydney", "Pacific/Auckland")  # fmt: skip
TIMELINE = "id: bench\ntitle: Bench\ntimezone: Europe/Zurich\naudiences: [membership]\nmilestones:\n" \
           "  - {id: a, title: A, owner: membership, due: 2030-01-07}\n"  # fmt: skip

# The baseline: csv into dicts, executemany into a table like `subscribers` (same columns, unique address).
BASELINE = r"""
import csv, json, sys
from datetime import UTC, datetime
url, path = sys.argv[1], sys.argv[2]
now = datetime.now(UTC)
columns = ("email", "email_key", "name", "language", "timezone", "audiences", "state", "created_at")
with open(path, encoding="utf-8") as f:
    rows = [{"email": r["email"], "email_key": r["email"].lower(), "name": r["name"], "language": r["language"],
             "timezone": r["timezone"], "audiences": json.dumps(r["audiences"].split(";")), "state": "confirmed",
             "created_at": now} for r in csv.DictReader(f)]
if url.startswith("sqlite"):
    import sqlite3
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    mark = ", ".join(":" + c for c in columns)
    sql = "INSERT INTO baseline ({}) VALUES ({})".format(", ".join(columns), mark)
    db.execute("CREATE TABLE baseline (id INTEGER PRIMARY KEY, email TEXT, email_key TEXT UNIQUE, name TEXT, "
               "language TEXT, timezone TEXT, audiences TEXT, state TEXT, created_at TIMESTAMP)")
    for row in rows:
        row["created_at"] = row["created_at"].isoformat()
    db.executemany(sql, rows); db.commit()
else:
    import psycopg
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql").split("?")[0],
                         options="-csearch_path=" + url.split("%3D")[1]) as db:
        db.execute("CREATE TABLE baseline (id SERIAL PRIMARY KEY, email TEXT, email_key TEXT UNIQUE, name TEXT, "
                   "language TEXT, timezone TEXT, audiences JSON, state TEXT, created_at TIMESTAMPTZ)")
        mark = ", ".join("%(" + c + ")s" for c in columns)
        sql = "INSERT INTO baseline ({}) VALUES ({})".format(", ".join(columns), mark)
        db.cursor().executemany(sql, rows)
"""


def write_csv(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,language,timezone,audiences\n")
        for n in range(count):
            out.write(f"member{n}@mission{n % 97}.example.org,Member {n},{LANGUAGES[n % 6]},{ZONES[n % 8]},"
                      "membership\n")  # fmt: skip


def timed(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one whole process."""
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    out, err = process.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{args}: {out.decode()}{err.decode()}")
    return seconds, usage.ru_maxrss / 1024


def one_run(kind: str, csv_path: Path, count: int) -> tuple[tuple[float, float], tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "schedules").mkdir()
        (folder / "schedules" / "bench.yaml").write_text(TIMELINE)
        url = fresh_url(kind, folder)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
        env = {**clean, "TRACKER_DATABASE_URL": url, "TRACKER_SCHEDULES": str(folder / "schedules")}
        subprocess.run([TRACKER, "sync"], env=env, cwd=folder, check=True, capture_output=True)
        baseline = timed([sys.executable, "-c", BASELINE, url, str(csv_path)], env, folder)
        tracker = timed([TRACKER, "subscribers", "import", "--confirmed", str(csv_path)], env, folder)
        return baseline, tracker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 rows, one run, record nothing")
    args = parser.parse_args()
    count, runs = (10_000, 1) if args.quick else (100_000, RUNS)
    rows: list[Current] = []
    lines: list[str] = []
    table = ["| database | baseline s | import s | ratio | import peak RSS |", "|---|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "members.csv"
        write_csv(csv_path, count)
        for kind, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
            pairs = [one_run(kind, csv_path, count) for _ in range(runs)]
            base = statistics.median(p[0][0] for p in pairs)
            mine = statistics.median(p[1][0] for p in pairs)
            rss = max(p[1][1] for p in pairs)
            ratio = mine / base
            table.append(f"| {name} | {base:.2f} | {mine:.2f} | {ratio:.2f}× | {rss:.0f} MB |")
            lines.append(f"{name}: runs " + ", ".join(f"{p[0][0]:.2f}/{p[1][0]:.2f}" for p in pairs))
            met = ratio <= GOAL and rss <= MEMORY_GOAL
            rows.append(Current("import", f"CSV import of {count:,} rows, {name}",
                                f"{ratio:.2f}× csv + executemany, {rss:.0f} MB", f"≤ {GOAL:g}×, ≤ {MEMORY_GOAL} MB",
                                met))  # fmt: skip
    report = "\n".join([
        f"### {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC — Subscriber import: {count:,} rows — "
        f"{platform.system()} {platform.machine()}, {machine()}\n",
        f"Command: `make bench` (bench/bench_import.py); six languages, eight zones; `tracker subscribers import "
        f"--confirmed` against a Python process that reads the CSV with `csv` into dicts and inserts them with "
        f"`executemany`, each a whole process, {runs} run(s) alternated, the median shown.\n",
        *table, "", *lines, "",
    ])  # fmt: skip
    print(report)
    if not args.quick:
        record(rows, report, script="bench_import.py")


if __name__ == "__main__":
    main()
