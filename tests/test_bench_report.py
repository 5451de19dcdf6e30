"""bench/report.py: a benchmark run updates its rows of BENCHMARKS.md's current figures and appends
its report to the history, leaving everything else as it was. Run on a copy of the real file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import bench_delivery, bench_feeds, bench_mail, bench_startup, bench_sync
from bench.report import BEGIN, END, Current, benchmark_of, record, split_row, update_current

REPO = Path(__file__).resolve().parent.parent
SECTION = "### 2026-12-08 10:00 UTC — Example — Linux x86_64\n\nA report.\n"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    path = tmp_path / "BENCHMARKS.md"
    shutil.copy(REPO / "BENCHMARKS.md", path)
    return path


def table(text: str) -> list[list[str]]:
    inside = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip().splitlines()
    return [split_row(line) for line in inside[2:]]


def keys(text: str) -> list[tuple[str, str]]:
    return [(benchmark_of(cells[0]), cells[1]) for cells in table(text)]


def test_a_run_replaces_its_own_row_in_place_and_keeps_the_others(copy: Path) -> None:
    before = copy.read_text(encoding="utf-8")
    row = Current("sync", "no-op re-sync, SQLite", "0.05× parse", "≤ 1.5×", True, "2026-12-08 10:00 UTC", "Test CPU")

    after = update_current(before, [row])

    assert keys(after) == keys(before)
    changed = [(old, new) for old, new in zip(table(before), table(after), strict=True) if old != new]
    assert changed == [(changed[0][0], ["sync", *row.cells("")[1:]])]
    outside = before.split(BEGIN)[0], before.split(END)[1]
    assert (after.split(BEGIN)[0], after.split(END)[1]) == outside


def test_a_new_case_goes_after_its_benchmarks_rows_and_a_new_benchmark_last(copy: Path) -> None:
    before = copy.read_text(encoding="utf-8")
    rows = [
        Current("sync", "cold sync of 10,000 files, SQLite", "2.50× parse", "≤ 3×", True),
        Current("example", "first case", "2.10× baseline", "≤ 4×", True),
        Current("example", "second case", "6.50× baseline", "≤ 6×", False),
    ]

    after = table(update_current(before, rows, script="bench_example.py"))

    labels = [cells[0] for cells in after]
    last_sync = max(i for i, label in enumerate(labels) if benchmark_of(label) == "sync")
    assert after[last_sync][1] == "cold sync of 10,000 files, SQLite"
    assert labels[-2:] == ["example (`bench_example.py`)", "example"]
    assert after[-1][2:5] == ["6.50× baseline", "≤ 6×", "**no**"]


def test_record_appends_the_report_at_the_end_of_the_history(copy: Path) -> None:
    before = copy.read_text(encoding="utf-8")

    record([Current("example", "first case", "2.10× baseline", "≤ 4×", True)], SECTION, path=copy)

    after = copy.read_text(encoding="utf-8")
    assert after.endswith("\n\n" + SECTION)
    assert after.count("\n### ") == before.count("\n### ") + 1
    assert ("example", "first case") in keys(after)


def test_a_report_without_its_heading_is_refused(copy: Path) -> None:
    with pytest.raises(ValueError, match="### "):
        record([], "## 2026-12-08 — an old-style section\n", path=copy)


def existing_rows(copy: Path, rows: list[Current]) -> None:
    """Each of *rows* is one the table already holds: a run of that benchmark replaces, never adds."""
    before = copy.read_text(encoding="utf-8")
    assert [(row.benchmark, row.case) for row in rows if (row.benchmark, row.case) not in keys(before)] == []
    assert len(table(update_current(before, rows))) == len(table(before))


def test_the_sync_benchmark_writes_onto_its_rows(copy: Path) -> None:
    rows = bench_sync.build_rows(
        [1.0],
        [bench_sync.BackendResult(name, cold=[2.0], noop=[0.1], one_edit=[1.2]) for name in ("SQLite", "PostgreSQL")],
    )
    existing_rows(copy, bench_sync.current_rows(rows, bench_sync.FULL_FILES))


def test_the_feeds_benchmark_writes_onto_its_rows(copy: Path) -> None:
    rows = [bench_feeds.Row("(b) FeedCache.render, warm, one milestone changed", [0.01], 0.01, 0.05)]
    wrk = bench_feeds.WrkResult(1000.0, 0.001, 0.001, 0.002, 1000, 1e6, "")
    serving = bench_feeds.ServeResult(
        [bench_feeds.ServeRow("GET", label, "tracker serve", 1, wrk, 0.3, 0.2) for label, _ in bench_feeds.FEED_STORES]
    )
    existing_rows(copy, bench_feeds.current_rows(rows, serving, bench_feeds.FULL.items))


def test_the_mail_benchmark_writes_onto_its_row(copy: Path) -> None:
    timing = [bench_mail.Timing(1.0, 1.0)]
    rows = [bench_mail.Row(f"case {n}", timing, 10_000, baseline=12_500.0) for n in range(5)]
    existing_rows(copy, bench_mail.current_rows(rows, bench_mail.FULL))


def test_the_delivery_benchmark_writes_onto_its_rows(copy: Path) -> None:
    cases = [("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 3)]
    results = [{"case": f"{kind}, {n} process(es)", "ratio": 0.6} for kind, n in cases]
    existing_rows(copy, bench_delivery.current_rows(results, {"p99": 0.02}, 10_000))


def test_the_startup_benchmark_writes_onto_its_rows(copy: Path) -> None:
    base = bench_startup.baseline()
    base.wall = [0.05]
    measured = bench_startup.cases(["tracker"])
    for case in measured:
        case.wall = [0.15]
    existing_rows(copy, bench_startup.current_rows(measured, base))
