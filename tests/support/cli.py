"""The `tracker` command as a test runs it: the installed entry point, in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.delivery import SECRET
from tests.support.factories import REPO

TRACKER = str(Path(sys.executable).parent / "tracker")


def tracker(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRACKER, *args], check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def cli_env(database_url: str, schedules: Path, **extra: str) -> dict[str, str]:
    """The environment of a `tracker` command run by a test: this store, these files, the repo's templates."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    return {**clean, "TRACKER_DATABASE_URL": database_url, "TRACKER_SCHEDULES": str(schedules), "COLUMNS": "200",
            "TRACKER_SECRET_KEY": SECRET.decode(), "TRACKER_LOCALES": str(REPO / "locale"), **extra}  # fmt: skip
