"""Benchmark: how long `tracker --help` and `tracker validate` take, as a ratio to `python -c "import yaml"`.

Measures, in one run, whole processes, from start to exit, as a shell or a pre-commit hook runs them:

* baseline - `.venv/bin/python -c "import yaml"`: Python starting and loading the one library
             every timeline command needs.
* help     - `.venv/bin/tracker --help`. Goal (issue 14): ≤ 4× the baseline.
* validate - `.venv/bin/tracker validate schedules` in the repository (its timeline files), with
             default settings (no TRACKER_* variables). Goal: ≤ 6× the baseline.

Each of ROUNDS rounds runs every case once; the order rotates from round to round, so each case
runs as often first as last. The figures are medians; a ratio is the case's median over the
baseline's. CPU time (user + system of the process) is shown beside wall time: on a shared machine
it moves less. tracker/ is compiled to bytecode first, as `make install` leaves it, and each case
runs twice untimed (its output checked) before the rounds. With --against REV, the commands are
also measured on the code of commit REV (its tracker/ in a temporary folder, on the same venv).
Results go to BENCHMARKS.md (bench/report.py) unless --quick.

    .venv/bin/python bench/bench_startup.py                   # 20 rounds, writes BENCHMARKS.md
    .venv/bin/python bench/bench_startup.py --quick           # 5 rounds, writes nothing
    .venv/bin/python bench/bench_startup.py --against 6e8bac8 # also the code before issue 14
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_sync import BenchError, check, code_version, load_average
from bench.report import BENCHMARKS, Current, cpu_model, now, record

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
TRACKER = PYTHON.parent / "tracker"
ROUNDS, QUICK_ROUNDS, WARM_UP = 20, 5, 2

console = Console()
GOALS = {"help": 4.0, "validate": 6.0}
# What neither command should load (tests/test_startup.py checks it; here it is reported).
HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "fastapi", "starlette", "uvicorn", "icalendar", "babel", "jinja2",
         "aiosmtplib", "pydantic", "pydantic_settings", "apscheduler", "psycopg", "prometheus_client")  # fmt: skip


@dataclass
class Case:
    name: str
    label: str  # as shown in the reports
    command: list[str]
    expect: str  # in its output, or the run is no measurement
    goal: float | None = None  # at most this many times the baseline
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


def environment() -> dict[str, str]:
    """This process's environment without TRACKER_* settings: the commands run on their defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}


def cases(tracker: Sequence[str], revision: str | None = None) -> list[Case]:
    """The two commands; with the goals unless they run the code of another *revision*."""
    suffix, goals = (f" ({revision})", {}) if revision else ("", GOALS)
    return [
        Case("help", f"`tracker --help`{suffix}", [*tracker, "--help"], "Usage:", goals.get("help")),
        Case("validate", f"`tracker validate schedules`{suffix}", [*tracker, "validate", "schedules"], "all valid",
             goals.get("validate")),
    ]  # fmt: skip


def baseline() -> Case:
    return Case("baseline", '`python -c "import yaml"` (baseline)', [str(PYTHON), "-c", "import yaml"], "")


def run_once(case: Case) -> tuple[float, float]:
    """Wall and CPU seconds of one run, start to exit."""
    env = environment()
    started = time.perf_counter()
    process = subprocess.Popen(case.command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    check(process.returncode == 0, f"{case.label} exited with {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def warm_up(case: Case) -> None:
    """Run *case* untimed, checking it does what is measured."""
    for _ in range(WARM_UP):
        done = subprocess.run(case.command, cwd=ROOT, env=environment(), capture_output=True, text=True, check=False)
        output = f"{done.stdout[-300:]!r} {done.stderr[-300:]!r}"
        check(done.returncode == 0 and case.expect in done.stdout, f"{case.label}: exit {done.returncode}, {output}")


def measure(all_cases: list[Case], rounds: int) -> None:
    for case in all_cases:
        warm_up(case)
    for number in range(rounds):
        shift = number % len(all_cases)
        for case in all_cases[shift:] + all_cases[:shift]:
            wall, cpu = run_once(case)
            case.wall.append(wall)
            case.cpu.append(cpu)


def modules_loaded(command: Sequence[str]) -> tuple[int, list[str]]:
    """How many modules *command* imports, and which of HEAVY among them."""
    done = subprocess.run([str(PYTHON), "-X", "importtime", *command], cwd=ROOT, env=environment(),
                          capture_output=True, text=True, check=False)  # fmt: skip
    names = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    names.discard("package")  # the header line
    return len(names), sorted({name.split(".")[0] for name in names} & set(HEAVY))


# --------------------------------------------------------------------------- the code of another commit


def launcher(revision: str, folder: Path) -> list[str]:
    """A command that runs `tracker` from commit *revision*'s tracker/, as the console script would."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "tracker"], capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    subprocess.run([str(PYTHON), "-m", "compileall", "-q", str(folder / "tracker")], check=True)
    script = folder / "bin-tracker"
    script.write_text(
        f"#!{PYTHON}\nimport sys\nsys.path.insert(0, {str(folder)!r})\nfrom tracker.cli import main\n"
        "if __name__ == '__main__':\n    sys.argv[0] = 'tracker'\n    sys.exit(main())\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return [str(script)]


# --------------------------------------------------------------------------- report


def ratio(case: Case, base: Case) -> float:
    return case.median / base.median


def paired(case: Case, base: Case) -> tuple[float, float]:
    """The lowest and highest ratio within one round."""
    ratios = sorted(w / b for w, b in zip(case.wall, base.wall, strict=True))
    return ratios[0], ratios[-1]


def table_rows(all_cases: list[Case], base: Case) -> list[list[str]]:
    rows = []
    for case in all_cases:
        goal = case.goal
        low, high = paired(case, base)
        met = "" if goal is None else ("yes" if ratio(case, base) <= goal else "**no**")
        rows.append([case.label, f"{case.median * 1000:.0f}", f"{ratio(case, base):.2f}×",
                     f"≤ {goal:g}×" if goal else "", met, f"{low:.2f}–{high:.2f}",
                     f"{case.median_cpu * 1000:.0f}", f"{case.median_cpu / base.median_cpu:.2f}×"])  # fmt: skip
    return rows


HEADERS = ["Case", "Wall (ms)", "Ratio", "Goal", "Met", "Ratio in a round", "CPU (ms)", "CPU ratio"]


def markdown(all_cases: list[Case], base: Case, info: RunInfo) -> str:
    host = f"{platform.system()} {platform.machine()}, {cpu_model()}, {os.cpu_count()} cores"
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("typer", "rich", "PyYAML"))
    out = [
        f"### {now()} — Startup: `tracker --help` and `tracker validate` — {host}",
        "",
        "Benchmark `bench/bench_startup.py` (issue 14): whole processes, start to exit, as a ratio to "
        '`python -c "import yaml"` in the same run; goals `tracker --help` ≤ 4×, `tracker validate` ≤ 6×.',
        "",
        f"- Platform: {platform.platform()} ({platform.machine()})",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), {versions}",
        f"- Load average (1, 5, 15 min) when the run started: {info.loads[0]}; when it ended: {info.loads[1]}",
        f"- Code: {code_version()}",
        f"- Command: `{info.command}`",
        f"- Runs: {info.rounds} rounds, each case once a round, the order rotating; after {WARM_UP} untimed runs "
        "of each; tracker/ compiled to bytecode first; no TRACKER_* variables",
        "- Wall and CPU (user + system): medians; Ratio: the case's median over the baseline's; Ratio in a "
        "round: the lowest and highest of the case over the baseline in the same round",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|---|---:|---:|---|---|---|---:|---:|",
        *("| " + " | ".join(row) + " |" for row in table_rows([base, *all_cases], base)),
        "",
        *info.notes,
        *(
            [
                f"- Rows marked ({info.against}): that commit's tracker/ from git, compiled, run on the same venv by a "
                "script like the console script"
            ]
            if info.against
            else []
        ),
    ]
    for case in all_cases:
        if case.goal is not None:
            state = "met" if ratio(case, base) <= case.goal else "**missed**"
            out.append(f"- {case.label}: {ratio(case, base):.2f}× against a goal of ≤ {case.goal:g}× — {state}")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class RunInfo:
    rounds: int
    command: str
    loads: tuple[str, str]
    notes: list[str]
    against: str | None


def current_rows(measured: list[Case], base: Case) -> list[Current]:
    rows = []
    for case in measured:
        if case.goal is not None:
            figure = f"{ratio(case, base):.2f}× import yaml"
            rows.append(Current("startup", f"{case.label}, whole process", figure, f"≤ {case.goal:g}×",
                                ratio(case, base) <= case.goal))  # fmt: skip
    return rows


def import_notes(measured: list[Case]) -> list[str]:
    notes = []
    for case in measured:
        count, heavy = modules_loaded(case.command)
        loaded = f"of which {', '.join(heavy)}" if heavy else f"none of {', '.join(HEAVY)}"
        notes.append(f"- {case.label} imports {count} modules, {loaded}")
    return notes


def print_table(all_cases: list[Case], base: Case, title: str) -> None:
    table = Table(title=title)
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("Case", "Goal", "Met") else "right")
    for row in table_rows([base, *all_cases], base):
        table.add_row(*(cell.replace("**", "") for cell in row))
    console.print(table)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds; BENCHMARKS.md is left alone")
    parser.add_argument("--against", metavar="REV", help="also measure the commands on the code of commit REV")
    args = parser.parse_args(argv)
    raw_args = sys.argv[1:] if argv is None else argv
    rounds = QUICK_ROUNDS if args.quick else ROUNDS
    check(TRACKER.exists(), f"no {TRACKER}: run `make install` first")
    subprocess.run([str(PYTHON), "-m", "compileall", "-q", str(ROOT / "tracker")], check=True)
    load = load_average()
    base, measured = baseline(), cases([str(TRACKER)])
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        others = cases(launcher(args.against, Path(tmp)), args.against) if args.against else []
        measure([base, *measured, *others], rounds)
    notes = import_notes(measured)
    print_table([*measured, *others], base, f"Startup, {rounds} rounds{' (--quick)' if args.quick else ''}")
    console.print("\n".join(notes))
    if args.quick:
        console.print("--quick: BENCHMARKS.md not updated")
        return 0
    command = shlex.join([".venv/bin/python", "bench/bench_startup.py", *raw_args])
    info = RunInfo(rounds, command, (load, load_average()), notes, args.against)
    record(current_rows(measured, base), markdown([*measured, *others], base, info), script="bench_startup.py")
    console.print(f"Updated {BENCHMARKS}")
    return 0  # a missed goal is a result, not a failure; BenchError means the product misbehaved


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench_startup: {exc}")
