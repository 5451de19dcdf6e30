"""What people see of bounces: `tracker bounces listen` as run, `tracker deliveries`, `/metrics`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from sqlalchemy import Engine

from tests.support.bounces import BOUNCES, relay, sample, sent_row
from tests.support.cli import TRACKER, cli_env, tracker
from tests.support.delivery import Clock, at, subscribe
from tracker.bounces.intake import take_bounce
from tracker.metrics import Metrics

NOW = at("2026-12-07 11:00")


def test_the_listen_command_records_a_bounce_that_deliveries_then_shows(
    engine: Engine, database_url: str, schedules: Path, tmp_path: Path
) -> None:
    ada = subscribe(engine, "gone@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    env = cli_env(database_url, schedules, TRACKER_BOUNCE_ADDRESS=BOUNCES)
    listener = subprocess.Popen([TRACKER, "bounces", "listen", "--port", "0"], env=env, cwd=tmp_path,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert listener.stderr is not None
        started = re.search(r"listening for bounces on 127\.0\.0\.1:(\d+)", listener.stderr.readline())
        assert started is not None
        assert relay(int(started.group(1)), sample("gmail_failure.eml", verp), verp) == (250, b"2.0.0 hard")
    finally:
        listener.terminate()
        listener.wait(10)

    shown = tracker("deliveries", env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "bounced" in shown.stdout and "5.1.1 The email account" in shown.stdout  # the reason, not the 250
    [entry] = [
        e for e in json.loads(tracker("deliveries", "--json", env=env, cwd=tmp_path).stdout) if e["id"] == row_id
    ]
    assert entry["state"] == "bounced" and entry["last_error"].startswith("5.1.1 The email account")
    bounced = tracker("deliveries", "--status", "bounced", env=env, cwd=tmp_path)
    assert bounced.returncode == 0 and "gone@mission.example.net" in bounced.stdout


def test_listen_without_a_bounce_address_says_what_to_set(database_url: str, schedules: Path, tmp_path: Path) -> None:
    result = tracker("bounces", "listen", env=cli_env(database_url, schedules), cwd=tmp_path)
    assert result.returncode == 2 and "TRACKER_BOUNCE_ADDRESS" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_suspension_policy_is_refused_at_start(database_url: str, schedules: Path, tmp_path: Path) -> None:
    env = cli_env(database_url, schedules, TRACKER_BOUNCE_ADDRESS=BOUNCES, TRACKER_BOUNCE_SUSPEND="5 soft")
    result = tracker("bounces", "listen", env=env, cwd=tmp_path)
    assert result.returncode != 0 and "TRACKER_BOUNCE_SUSPEND" in result.stderr and "Traceback" not in result.stderr


def test_metrics_count_hard_soft_and_forged_bounces(engine: Engine) -> None:
    from tests.support.bounces import CONFIG

    clock = Clock(NOW)
    ada = subscribe(engine, "ada@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    forged = verp.replace(f"+{row_id}.", f"+{row_id + 7}.")
    take_bounce(engine, CONFIG, sample("postfix_delayed.eml", verp), [verp], clock)
    take_bounce(engine, CONFIG, sample("postfix_failed.eml", verp), [verp], clock)
    take_bounce(engine, CONFIG, sample("gmail_failure.eml", forged), [forged], clock)
    text = Metrics(engine, clock).exposition().decode()
    for kind in ("hard", "soft", "forged"):
        assert f'tracker_bounces{{kind="{kind}"}} 1.0' in text
