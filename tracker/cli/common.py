"""What every command shares: the app, consoles, settings, the store, errors.

Every command pays for what this module and the command modules import before it starts, and
`tracker validate` runs in pre-commit hooks and CI on every save: so the heavy libraries (pydantic,
SQLAlchemy, icalendar, Jinja, Babel, aiosmtplib, FastAPI) are imported inside the functions
that use them, never at the top of a command module. tests/test_startup.py keeps it so.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from tracker.cli.console import TerminalConsole, styled

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from tracker.cli.timeline_settings import TimelineSettings
    from tracker.config import Settings
    from tracker.feeds.calendars import Calendars
    from tracker.timelines.files import FileProblem

# typer passes the value of every parameter through a pydantic TypeAdapter, --help's too, unless it
# is a bool already, and --help's is None until it is given. With False for a default, a command
# without other parameters (`tracker validate`) does not import pydantic, a large part of its time.
HELP_DEFAULT = {"help": False}

app = typer.Typer(
    help="Tracker: deadlines of a working group, as code, calendars and reminders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Click's plain help and usage errors: typer's rich ones import rich's Markdown, Pygments and
    # more, which took longer than all the rest of `tracker --help`.
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"default_map": HELP_DEFAULT},
)
out = TerminalConsole()
err = TerminalConsole(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print *message* as an error and exit: 2, as for any bad argument, unless *code* says otherwise."""
    err.print(styled(("error:", "red"), f" {message}"))
    raise typer.Exit(code)


# Characters JSON may carry as they are but a terminal would act on (C1, separators, bidi controls)
# or that stdout cannot encode (lone surrogates): written as \\u escapes, which read back the same.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F),
                                                      *range(0x2066, 0x206A), *range(0xD800, 0xE000))}  # fmt: skip


def print_json(data: object) -> None:
    """Write *data* as indented JSON for scripts: plainly, in one write (rich's pretty printer took minutes)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False).translate(_JSON_ESCAPES) + "\n")


def settings() -> Settings:
    from pydantic import ValidationError

    from tracker.config import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        fail("bad settings (TRACKER_* variables or tracker.toml):\n  " + "\n  ".join(lines), 2)


def timeline_settings() -> TimelineSettings:
    """The schedules folder and the default zone: read without pydantic when they are plain values,
    else by the full settings, which then also report any error (see timeline_settings.py)."""
    from tracker.cli.timeline_settings import TimelineSettings, read_timeline_settings

    quick = read_timeline_settings()
    if quick is not None:
        return quick
    config = settings()
    return TimelineSettings(config.schedules, config.timezone, config.work_calendar(), config.channels_path)


def store() -> Engine:
    from sqlalchemy.exc import SQLAlchemyError

    from tracker.store.engine import open_store

    try:
        return open_store(settings().database_url)
    except SQLAlchemyError as exc:
        fail(f"cannot open the store at {settings().database_url}: {exc.__class__.__name__}: {exc}", 2)


def print_problems(problems: list[FileProblem]) -> None:
    for problem in problems:
        err.print(str(problem), soft_wrap=True)
    files = len({p.path for p in problems})
    warnings = sum(p.warning for p in problems)
    errors = len(problems) - warnings
    counts = [f"{errors} problem{'s' * (errors != 1)}"] * bool(errors)
    counts += [f"{warnings} warning{'s' * (warnings != 1)}"] * bool(warnings)
    mark, style = ("✗", "red") if errors else ("!", "yellow")
    err.print(f"{mark} {' and '.join(counts)} in {files} file{'s' * (files != 1)}", style=style)


@contextmanager
def file_progress(folder: Path, label: str) -> Iterator[Callable[[Path], None] | None]:
    """Show a progress bar when there are many files (large syncs take seconds)."""
    from rich.progress import Progress

    from tracker.timelines.files import find_files

    total = len(find_files([folder])) if folder.is_dir() else 0
    if total < 200 or not err.is_terminal:
        yield None
        return
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda _path: progress.advance(task)


def who() -> str:
    """Who runs this command, as events record it (the audit log's actor)."""
    import getpass
    import os

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container): the uid says enough
        return f"cli:uid {os.getuid()}"


def now_utc() -> datetime:
    return datetime.now(UTC)


def when(text: str | None, zone: str, option: str, *, skipped_times: bool = False) -> datetime:
    """Read a --now/--at value; *skipped_times*: refuse a wall time the clocks skip (a completion's time)."""
    from tracker.timelines.dates import DateError, parse_when, skipped_time

    if text is None:
        return now_utc()
    try:
        problem = skipped_time(text, zone) if skipped_times else None
        if problem is not None:
            fail(f"{option}: {problem}")
        return parse_when(text, zone)
    except DateError as exc:
        fail(f"{option}: {exc}")


def calendars(engine: Engine) -> Calendars:
    from tracker.feeds.calendars import Calendars

    config = settings()
    grace = timedelta(days=config.cancelled_grace_days)
    return Calendars(engine, base_url=config.base_url, cancelled_grace=grace, reminder_hour=config.reminder_hour,
                     secret=secret_key(), locales=config.locales)  # fmt: skip


def secret_key() -> bytes:
    from tracker.subscribers.tokens import SecretKeyError, load_secret_key

    config = settings()
    try:
        return load_secret_key(config.secret_key, config.secret_key_file)
    except (SecretKeyError, OSError) as exc:
        fail(str(exc), 2)
