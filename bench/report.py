"""Writing a benchmark's results into BENCHMARKS.md, the same way for every benchmark.

BENCHMARKS.md opens with the current figure of each case against its goal, in a table between
`<!-- current:begin -->` and `<!-- current:end -->`, and keeps every run's full report below it,
oldest first, each under a `### ` heading. A run replaces its own rows in the table (a row is
known by its benchmark and case; rows the run did not measure keep their older figures and
dates) and appends its report at the end.

    rows = [Current("startup", "`tracker --help`", "2.1× import yaml", "≤ 4×", True)]
    record(rows, "### 2026-12-08 10:00 UTC — Startup — …\\n\\n…")
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
BEGIN, END = "<!-- current:begin -->", "<!-- current:end -->"
HEADER = ("| benchmark | case | figure | goal | met | measured | machine |", "|---|---|---:|---|---|---|---|")
HISTORY = "## History (oldest first)"
SKELETON = f"# Benchmarks\n\n## Current figures\n\n{BEGIN}\n{HEADER[0]}\n{HEADER[1]}\n{END}\n\n{HISTORY}\n"


@dataclass(frozen=True)
class Current:
    """One row of the current-figures table."""

    benchmark: str  # its short name, e.g. "sync"; the first row of a benchmark also names its script
    case: str
    figure: str  # e.g. "2.11× parse"
    goal: str  # e.g. "≤ 3×"
    met: bool | None  # None: no goal
    measured: str = ""  # default: now
    machine: str = ""  # default: this machine

    def cells(self, label: str) -> list[str]:
        met = {None: "", True: "yes", False: "**no**"}[self.met]
        return [label, self.case, self.figure, self.goal, met, self.measured or now(), self.machine or machine()]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """'AMD EPYC, 2 cores', 'Intel Xeon, 2 cores': the CPU's family, shortly, and its cores."""
    model = re.sub(r"\((?:R|TM)\)|\bProcessor\b|\bCPU\b.*", "", cpu_model())
    return f"{' '.join(model.split()) or 'unknown CPU'}, {os.cpu_count()} cores"


def record(rows: list[Current], section: str, *, script: str = "", path: Path = BENCHMARKS) -> None:
    """Put *rows* in the current-figures table and append *section* (a `### ` heading and its report)."""
    text = path.read_text(encoding="utf-8") if path.exists() else SKELETON
    text = update_current(text, rows, script=script)
    path.write_text(append_history(text, section), encoding="utf-8")


def update_current(text: str, rows: list[Current], *, script: str = "") -> str:
    """*text* with each of *rows* replacing the table row of its benchmark and case, or added after
    its benchmark's last row (a new benchmark goes last, its first row naming *script*)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no {BEGIN} … {END} table in BENCHMARKS.md")
    lines = text[start + len(BEGIN) : end].strip("\n").splitlines()
    head, table = lines[:2] or list(HEADER), [split_row(line) for line in lines[2:]]
    for row in rows:
        keys = [(benchmark_of(cells[0]), cells[1]) for cells in table]
        if (row.benchmark, row.case) in keys:
            at = keys.index((row.benchmark, row.case))
            table[at] = row.cells(table[at][0])  # the label stays as it was (the first row names the script)
            continue
        group = [i for i, (benchmark, _) in enumerate(keys) if benchmark == row.benchmark]
        if group:
            table.insert(group[-1] + 1, row.cells(row.benchmark))
        else:
            table.append(row.cells(f"{row.benchmark} (`{script}`)" if script else row.benchmark))
    body = "\n".join([*head, *("| " + " | ".join(cells) + " |" for cells in table)])
    return f"{text[: start + len(BEGIN)]}\n{body}\n{text[end:]}"


def split_row(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def benchmark_of(label: str) -> str:
    """'sync (`bench_sync.py`)' → 'sync'."""
    return label.split(" (", 1)[0].strip()


def append_history(text: str, section: str) -> str:
    """*text* with *section* appended: the history runs oldest first to the end of the file."""
    if not section.startswith("### "):
        raise ValueError("a run's report starts with its '### ' heading")
    return text.rstrip("\n") + "\n\n" + section.strip("\n") + "\n"
