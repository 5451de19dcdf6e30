"""`tracker --help` and `tracker validate` load only what they need (issue 14).

`tracker validate` runs in pre-commit hooks and CI on every save; the store, the web app, the mail
and feed libraries and pydantic once made every command spend half a second importing before its
first line of work. These tests run the installed command under `python -X importtime` and look at
what it loaded (the times themselves are measured by bench/bench_startup.py, not here). validate
reads its two settings without pydantic-settings: the rest checks it finds what the full settings do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracker.cli.common import timeline_settings
from tracker.cli.timeline_settings import TimelineSettings, read_timeline_settings
from tracker.config import Settings, get_settings

REPO = Path(__file__).resolve().parent.parent
TRACKER = str(Path(sys.executable).parent / "tracker")
# Libraries neither command needs; pydantic included: typer uses it for the parameters of other commands.
HEAVY = {"sqlalchemy", "sqlmodel", "alembic", "fastapi", "starlette", "uvicorn", "icalendar", "babel", "jinja2",
         "aiosmtplib", "pydantic", "pydantic_settings", "apscheduler", "psycopg", "prometheus_client"}  # fmt: skip

BAD_TIMELINE = """\
id: bad
title: A timeline with a date that does not exist
timezone: Europe/Zurich
milestones:
  - id: deadline
    title: Comments due
    due: 2018-02-30
"""


def run(*args: str, cwd: Path, **variables: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `tracker ARGS` with no TRACKER_* settings but *variables*; its result, and the top-level
    packages it imported. Its own stderr comes without the import-time lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")} | variables
    done = subprocess.run([sys.executable, "-X", "importtime", TRACKER, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    lines = done.stderr.splitlines()
    timed = [line for line in lines if line.startswith("import time:")]
    modules = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in timed[1:]}  # the first is the header
    stderr = "\n".join(line for line in lines if not line.startswith("import time:"))
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout, stderr), modules


def test_help_lists_the_commands_without_loading_a_heavy_library(tmp_path: Path) -> None:
    done, modules = run("--help", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "Usage: tracker" in done.stdout and "validate" in done.stdout and "subscribers" in done.stdout
    assert "typer" in modules  # the list is real
    assert modules & HEAVY == set()


def test_validate_checks_the_repository_schedules_without_loading_a_heavy_library(tmp_path: Path) -> None:
    done, modules = run("validate", str(REPO / "schedules"), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "all valid" in done.stdout
    assert {"typer", "yaml", "dateutil"} <= modules  # the list is real
    assert modules & HEAVY == set()


def test_validate_reports_a_problem_without_loading_a_heavy_library(tmp_path: Path) -> None:
    folder = tmp_path / "schedules"
    folder.mkdir()
    (folder / "bad.yaml").write_text(BAD_TIMELINE, encoding="utf-8")

    done, modules = run("validate", cwd=tmp_path)

    assert done.returncode == 1
    assert "schedules/bad.yaml:7:" in done.stderr and "1 problem in 1 file" in done.stderr
    assert modules & HEAVY == set()


def test_validate_takes_files_and_folders_and_refuses_unknown_options(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_TIMELINE, encoding="utf-8")

    named, _ = run("validate", "bad.yaml", str(REPO / "schedules"), cwd=tmp_path)
    unknown, _ = run("validate", "--strickt", cwd=tmp_path)

    assert named.returncode == 1 and "bad.yaml:7:" in named.stderr and "1 problem in 1 file" in named.stderr
    assert unknown.returncode == 2 and "No such option: --strickt" in unknown.stderr


def test_a_bad_zone_is_still_reported_as_bad_settings(tmp_path: Path) -> None:
    done, _ = run("validate", str(REPO / "schedules"), cwd=tmp_path, TRACKER_TIMEZONE="Europe/Geneva")

    assert done.returncode == 2
    assert "bad settings" in done.stderr and "unknown time zone 'Europe/Geneva'" in done.stderr


def test_validate_needs_no_other_setting_but_commands_that_use_one_refuse_it(tmp_path: Path) -> None:
    bad_smtp = {"TRACKER_SMTP_URL": "garbage", "TRACKER_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}

    validated, _ = run("validate", str(REPO / "schedules"), cwd=tmp_path, **bad_smtp)
    planned, _ = run("plan", cwd=tmp_path, **bad_smtp)

    assert validated.returncode == 0 and "all valid" in validated.stdout
    assert planned.returncode == 2 and "bad settings" in planned.stderr and "smtp_url" in planned.stderr


# --------------------------------------------------------------------------- the two settings, read apart


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in [n for n in os.environ if n.lower().startswith("tracker_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


PLAIN = [
    ({}, ""),
    ({"TRACKER_TIMEZONE": "Asia/Tokyo", "TRACKER_SCHEDULES": "elsewhere/timelines"}, ""),
    ({}, 'timezone = "America/New_York"\nschedules = "timelines"\nreminders = "3d"\n'),
    ({"TRACKER_TIMEZONE": "Asia/Tokyo"}, 'timezone = "America/New_York"\nschedules = "timelines"\n'),
]
# Spellings and values only pydantic-settings decides on: read by the full settings.
UNDECIDED = [
    ({"tracker_timezone": "Asia/Tokyo"}, ""),
    ({}, 'TimeZone = "Asia/Tokyo"\n'),
    ({}, 'schedules = ""\n'),
]


@pytest.mark.parametrize(("variables", "toml"), PLAIN + UNDECIDED)
def test_validate_finds_the_folder_and_zone_the_full_settings_find(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variables: dict[str, str], toml: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    if toml:
        (tmp_path / "tracker.toml").write_text(toml, encoding="utf-8")

    full = Settings()

    assert timeline_settings() == TimelineSettings(full.schedules, full.timezone, channels=full.channels_path)


@pytest.mark.parametrize(("variables", "toml"), PLAIN)
def test_plain_values_are_read_without_the_full_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variables: dict[str, str], toml: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    if toml:
        (tmp_path / "tracker.toml").write_text(toml, encoding="utf-8")

    assert read_timeline_settings() is not None


@pytest.mark.parametrize(("variables", "toml"), UNDECIDED)
def test_other_spellings_are_left_to_the_full_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variables: dict[str, str], toml: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    if toml:
        (tmp_path / "tracker.toml").write_text(toml, encoding="utf-8")

    assert read_timeline_settings() is None
