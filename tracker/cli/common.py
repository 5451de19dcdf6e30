"""What every command shares: the app, consoles, settings, the store, errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.progress import Progress
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tracker.cli.console import TerminalConsole, styled
from tracker.config import Settings, get_settings
from tracker.feeds.calendars import Calendars
from tracker.store.engine import open_store
from tracker.subscribers.tokens import SecretKeyError, load_secret_key
from tracker.timelines.dates import DateError, parse_when
from tracker.timelines.files import FileProblem, find_files

app = typer.Typer(
    help="Tracker: deadlines of a working group, as code, calendars and reminders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
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
    try:
        return get_settings()
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        fail("bad settings (TRACKER_* variables or tracker.toml):\n  " + "\n  ".join(lines), 2)


def store() -> Engine:
    try:
        return open_store(settings().database_url)
    except SQLAlchemyError as exc:
        fail(f"cannot open the store at {settings().database_url}: {exc.__class__.__name__}: {exc}", 2)


def print_problems(problems: list[FileProblem]) -> None:
    for problem in problems:
        err.print(str(problem), soft_wrap=True)
    files = len({p.path for p in problems})
    err.print(f"✗ {len(problems)} problem{'s' * (len(problems) != 1)} in {files} file{'s' * (files != 1)}", style="red")


@contextmanager
def file_progress(folder: Path, label: str) -> Iterator[Callable[[Path], None] | None]:
    """Show a progress bar when there are many files (large syncs take seconds)."""
    total = len(find_files([folder])) if folder.is_dir() else 0
    if total < 200 or not err.is_terminal:
        yield None
        return
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda _path: progress.advance(task)


def now_utc() -> datetime:
    return datetime.now(UTC)


def when(text: str | None, zone: str, option: str) -> datetime:
    if text is None:
        return now_utc()
    try:
        return parse_when(text, zone)
    except DateError as exc:
        fail(f"{option}: {exc}")


def calendars(engine: Engine) -> Calendars:
    config = settings()
    grace = timedelta(days=config.cancelled_grace_days)
    return Calendars(engine, base_url=config.base_url, cancelled_grace=grace, reminder_hour=config.reminder_hour,
                     secret=secret_key(), locales=config.locales)  # fmt: skip


def secret_key() -> bytes:
    config = settings()
    try:
        return load_secret_key(config.secret_key, config.secret_key_file)
    except (SecretKeyError, OSError) as exc:
        fail(str(exc), 2)
