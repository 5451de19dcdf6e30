"""Settings come from TRACKER_* variables, then tracker.toml, then defaults; bad values fail loudly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.support.cli import cli_env, tracker
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
        ("TRACKER_REMINDERS", "99999w", "reminder '99999w' is out of range: remind from 1h to 366d"),
        ("TRACKER_REMINDERS", "7d,30m", "reminder '30m' is out of range"),
        ("TRACKER_REMINDERS", ",".join(f"{n}d" for n in range(1, 12)), "at most 10 offsets"),
        ("TRACKER_REMINDER_HOUR", "25", "less than or equal to 23"),
    ],
)
def test_a_bad_value_is_refused_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match=message):
        Settings()


@pytest.mark.parametrize(
    ("name", "value", "field", "message"),
    [
        ("TRACKER_WEEKEND", "sun,funday", "weekend", "write at most six of mon, tue, wed, thu, fri, sat, sun"),
        ("TRACKER_HOLIDAYS", "CH-XX", "holidays", "CH has no subdivision 'XX'; it has: AG, AI, AR, BE, BL, BS"),
        ("TRACKER_HOLIDAYS", "Narnia", "holidays", "'Narnia' is no country known to the holidays library"),
        ("TRACKER_CLOSURES", "24.12.2018", "closures", "write dates as YYYY-MM-DD, comma-separated"),
    ],
)
def test_a_bad_working_calendar_setting_is_named_with_what_to_write(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str, message: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError) as refused:
        Settings()

    [error] = refused.value.errors()
    assert error["loc"] == (field,)  # not all three under 'closures'
    assert message in error["msg"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TRACKER_FROM", "Tracker <t@example.org>\r\nBcc: victim@example.net", "TRACKER_FROM.*one line"),
        ("TRACKER_FROM", "\x1b[31mTracker <t@example.org>", "TRACKER_FROM.*control character"),
        ("TRACKER_FROM", "Tracker\u2028 <t@example.org>", "TRACKER_FROM.*one line"),
        ("TRACKER_FROM", "=?utf-8?q?Tracker=0D=0ABcc:_x@y?= <t@example.org>", "TRACKER_FROM.*plain text"),
        ("TRACKER_FROM", "Tracker", "TRACKER_FROM.*an ASCII address"),
        ("TRACKER_FROM", "Tracker <trâcker@example.org>", "TRACKER_FROM.*an ASCII address"),
        ("TRACKER_BASE_URL", "https://tracker.example.org/\r\nBcc: x@y", "base_url.*one line"),
    ],
)
def test_a_sender_or_base_url_that_would_break_a_header_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match=f"(?s){message}"):
        Settings()


def test_a_sender_with_a_name_in_any_script_and_an_international_domain_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRACKER_FROM", "Délais du SMSI 信息社会 <tracker@bücher.example>")

    assert Settings().from_address == "Délais du SMSI 信息社会 <tracker@bücher.example>"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("garbage", "not an smtp:// or smtps:// URL with a host: 'garbage'; write smtp://user:pass@host:port"),
        ("smtp://relay.example.org:99999", "Port out of range"),
        ("smtp://relay.example.org?startls=true", "unknown SMTP URL option(s): startls"),
        ("http://tracker:s3cret@relay.example.org", "URL with a host: 'http://tracker:***@relay.example.org'"),
    ],
)
def test_a_bad_smtp_url_is_refused_without_showing_its_password(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("TRACKER_SMTP_URL", value)

    with pytest.raises(ValidationError) as refused:
        Settings()

    assert message in str(refused.value) and "s3cret" not in str(refused.value.errors()[0]["msg"])


def test_a_good_smtp_url_and_none_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_SMTP_URL", "smtp://user:p%40ss@relay.example.org:587?starttls=true")
    assert Settings().smtp_url.startswith("smtp://user:")
    monkeypatch.setenv("TRACKER_SMTP_URL", "")
    assert Settings().smtp_url == ""


def test_the_planning_horizon_is_at_most_a_year(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_HORIZON_DAYS", "99999999")

    with pytest.raises(ValidationError, match="less than or equal to 366"):
        Settings()


def test_the_shipped_templates_and_catalogs_are_found_from_any_folder(tmp_path: Path) -> None:
    settings = Settings()  # the working folder is an empty tmp_path

    assert [folder.name for folder in settings.template_folders("emails")] == ["emails"]
    assert (settings.template_folders("emails")[0] / "reminder.txt.j2").is_file()
    assert (settings.template_folders("pages")[0] / "overview.html.j2").is_file()
    assert (settings.locales / "fr" / "LC_MESSAGES" / "messages.po").is_file()
    assert not settings.template_folders("pages")[0].is_relative_to(tmp_path)


def test_overrides_are_looked_at_before_the_shipped_templates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "ours").mkdir()
    monkeypatch.setenv("TRACKER_TEMPLATES", "ours")

    folders = Settings().template_folders("pages")

    assert folders[0] == Path("ours/pages") and folders[1:] == Settings(templates=None).template_folders("pages")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("nothing", "ours is not a folder"),
        ("reminder.txt.j2", r"reminder.txt.j2 directly in ours: email templates go in ours/emails"),
    ],
)
def test_a_templates_folder_that_would_be_ignored_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make: str, message: str
) -> None:
    # The old meaning of TRACKER_TEMPLATES was the email templates themselves: kept, they would be ignored unseen.
    if make != "nothing":
        (tmp_path / "ours").mkdir()
        (tmp_path / "ours" / make).write_text("{{ item.title }}")
    monkeypatch.setenv("TRACKER_TEMPLATES", "ours")

    with pytest.raises(ValidationError, match=message):
        Settings()


def test_an_empty_templates_setting_means_no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_TEMPLATES", "")

    assert Settings().templates is None


def test_a_templates_folder_left_in_the_working_folder_is_named_as_unused(tmp_path: Path) -> None:
    # Earlier versions read ./templates; a deployment that kept its wording there is told, not silently changed.
    (tmp_path / "templates" / "emails").mkdir(parents=True)
    (tmp_path / "templates" / "emails" / "reminder.txt.j2").write_text("Our own words\n")
    (tmp_path / "schedules").mkdir()
    env = cli_env(f"sqlite:///{tmp_path / 'tracker.db'}", tmp_path / "schedules")

    told = tracker("plan", env=env, cwd=tmp_path)
    overridden = tracker("plan", env={**env, "TRACKER_TEMPLATES": str(tmp_path / "templates")}, cwd=tmp_path)

    assert told.returncode == overridden.returncode == 0
    assert f"{tmp_path / 'templates'} is not used" in told.stderr
    assert f"set TRACKER_TEMPLATES={tmp_path / 'templates'} to use it" in told.stderr
    assert "is not used" not in overridden.stderr


@pytest.mark.parametrize("command", ["plan", "validate"])
def test_a_default_zone_that_is_no_place_is_named_with_the_zone_to_write_at_start(tmp_path: Path, command: str) -> None:
    (tmp_path / "schedules").mkdir()
    env = cli_env(f"sqlite:///{tmp_path / 'tracker.db'}", tmp_path / "schedules")

    abbreviation = tracker(command, env={**env, "TRACKER_TIMEZONE": "EST"}, cwd=tmp_path)
    old_name = tracker(command, env={**env, "TRACKER_TIMEZONE": "Asia/Calcutta"}, cwd=tmp_path)
    place = tracker(command, env={**env, "TRACKER_TIMEZONE": "America/New_York"}, cwd=tmp_path)

    assert abbreviation.returncode == old_name.returncode == place.returncode == 0
    assert (
        "TRACKER_TIMEZONE: 'EST' is an abbreviation, not a place's zone, and may not follow summer time: "
        "write 'America/New_York'" in " ".join(abbreviation.stderr.split())
    )
    assert "TRACKER_TIMEZONE: 'Asia/Calcutta' is an old name of 'Asia/Kolkata': write 'Asia/Kolkata'" in " ".join(
        old_name.stderr.split()
    )
    assert "TRACKER_TIMEZONE" not in place.stderr
