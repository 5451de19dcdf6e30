"""Settings come from TRACKER_* variables, then tracker.toml, then defaults; bad values fail loudly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from tracker.config import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("TRACKER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_run_on_sqlite_under_var_with_geneva_time() -> None:
    settings = Settings()

    assert settings.database_url == "sqlite:///var/tracker.db"
    assert settings.timezone == "Europe/Zurich"
    assert settings.default_reminders() == ["14d", "7d", "1d"]
    assert settings.from_address == "Tracker <tracker@localhost>"


def test_tracker_toml_is_read_and_the_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "tracker.toml").write_text('timezone = "Asia/Tokyo"\nreminders = "3d"\nfrom = "WSIS <wsis@itu.int>"\n')
    monkeypatch.setenv("TRACKER_REMINDERS", "2w,1d")

    settings = Settings()

    assert settings.timezone == "Asia/Tokyo"
    assert settings.default_reminders() == ["2w", "1d"]
    assert settings.from_address == "WSIS <wsis@itu.int>"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TRACKER_TIMEZONE", "Europe/Geneva", "unknown time zone 'Europe/Geneva'"),
        ("TRACKER_REMINDERS", "14d,soon", "bad offset 'soon'"),
        ("TRACKER_REMINDER_HOUR", "25", "less than or equal to 23"),
    ],
)
def test_a_bad_value_is_refused_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match=message):
        Settings()
