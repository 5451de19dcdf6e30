"""Subscribers: added one by one or from CSV, idempotently, with clear errors and events."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from tests.support.cli import tracker
from tests.support.delivery import sync
from tests.support.timelines import HLPF, MEETING, WriteTimeline
from tracker.store.engine import open_store, transaction
from tracker.store.models import Delivery, Event, Subscriber
from tracker.subscribers.csvfiles import parse_csv
from tracker.subscribers.registry import Known, SubscriberError, check_input, find, known_names, rotate, save
from tracker.subscribers.tokens import make_token, read_token

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
KNOWN = Known(frozenset({"hlpf", "cwg-32"}), frozenset({"membership", "secretariat"}))
CSV = """email,name,language,audiences,timelines
amina@mission.example.org,Amina Diallo,fr,membership,hlpf
li.wei@mission.example.org,Li Wei,zh,membership;secretariat,
not-an-address,Someone,en,,
olga@mission.example.org,Olga,ru,membrship,
AMINA@mission.example.org,Amina again,fr,,
carlos@mission.example.org,Carlos,es,,hlpf;cwg-32
"""


@pytest.fixture
def env(database_url: str, schedules: Path, write_timeline: WriteTimeline) -> dict[str, str]:
    write_timeline("hlpf", HLPF)
    write_timeline("cwg-32", MEETING)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env = {**clean, "TRACKER_DATABASE_URL": database_url, "TRACKER_SCHEDULES": str(schedules), "COLUMNS": "200"}
    return env


def test_a_csv_import_saves_good_rows_and_names_each_bad_one_by_line(env: dict[str, str], tmp_path: Path) -> None:
    tracker("sync", env=env, cwd=tmp_path)
    (tmp_path / "members.csv").write_text(CSV)

    first = tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)
    again = tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)
    listed = json.loads(tracker("subscribers", "list", "--json", env=env, cwd=tmp_path).stdout)

    assert first.returncode == 1
    errors = [line for line in first.stderr.splitlines() if line.startswith("members.csv:")]
    assert errors == [
        "members.csv:4: this is not an email address: An email address must have an @-sign.",
        "members.csv:5: no audience 'membrship' (did you mean 'membership'?)",
        "members.csv:6: AMINA@mission.example.org is already on line 2",
    ]
    assert "members.csv: 3 added, 0 updated, 0 unchanged, 3 rejected" in first.stdout
    assert "members.csv: 0 added, 0 updated, 3 unchanged, 3 rejected" in again.stdout
    assert [(s["email"], s["language"], s["timelines"], s["state"]) for s in listed] == [
        ("amina@mission.example.org", "fr", ["hlpf"], "confirmed"),
        ("carlos@mission.example.org", "es", ["hlpf", "cwg-32"], "confirmed"),
        ("li.wei@mission.example.org", "zh", None, "confirmed"),
    ]


def test_add_then_change_then_remove_one_subscriber(env: dict[str, str], tmp_path: Path) -> None:
    tracker("sync", env=env, cwd=tmp_path)

    added = tracker("subscribers", "add", "Nadia@Mission.example.org", "--name", "Nadia", "--language", "ar",
                    "--audience", "secretariat", env=env, cwd=tmp_path)  # fmt: skip
    same = tracker("subscribers", "add", "nadia@mission.example.org", "--name", "Nadia", "--language", "ar",
                   "--audience", "secretariat", env=env, cwd=tmp_path)  # fmt: skip
    removed = tracker("subscribers", "remove", "NADIA@mission.example.org", env=env, cwd=tmp_path)
    listed = json.loads(tracker("subscribers", "list", "--json", env=env, cwd=tmp_path).stdout)

    assert "+ Nadia@mission.example.org: added (pending)" in added.stdout
    assert "1 confirmation email queued; it goes out with `tracker send-due`" in added.stdout
    assert "= " in same.stdout and "unchanged" in same.stdout
    assert "No confirmation email queued: 1 pending address had one in the last 5 minutes" in same.stdout
    assert "unsubscribed" in removed.stdout
    assert [(s["email"], s["state"], s["audiences"]) for s in listed] == [
        ("Nadia@mission.example.org", "unsubscribed", ["secretariat"])
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "someone@"), "is not an email address"),
        (("add", "a@mission.example.org", "--language", "de"), "language 'de' is not one of ar, zh, en, fr, ru, es"),
        (("add", "a@mission.example.org", "--timezone", "Europe/Geneva"), "unknown time zone 'Europe/Geneva'"),
        (("add", "a@mission.example.org", "--timeline", "hlfp"), "no timeline 'hlfp' (did you mean 'hlpf'?)"),
        (("remove", "nobody@mission.example.org"), "no subscriber 'nobody@mission.example.org'"),
        (("import", "missing.csv"), "missing.csv: cannot read"),
    ],
)
def test_bad_subscriber_input_gets_a_clear_error(
    env: dict[str, str], tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    tracker("sync", env=env, cwd=tmp_path)

    result = tracker("subscribers", *args, env=env, cwd=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "position", "what"),
    [
        ("Eve\r\nBcc: all@example.org", 4, "a line break (U+000D)"),
        ("Eve\x00", 4, "a control character (U+0000)"),
        ("Eve\u2028Bcc: all@example.org", 4, "a line separator (U+2028)"),
        ("Eve \ud800", 5, "a lone surrogate (U+D800)"),  # as a JSON body can carry one
        ("\u202egro.elpmaxe", 1, "a bidirectional control (U+202E)"),  # an override makes a name read backwards
        ("Eve\x1b[31m", 4, "a control character (U+001B)"),  # a terminal escape
    ],
)
def test_a_name_with_a_control_character_is_refused_naming_it(name: str, position: int, what: str) -> None:
    with pytest.raises(SubscriberError, match=re.escape(f"name: character {position} is {what}")):
        check_input({"email": "x@mission.example.org", "name": name}, zone="UTC", known=KNOWN)


def test_a_name_has_its_spaces_and_tabs_collapsed_and_a_bounded_length() -> None:
    data = check_input({"email": "x@mission.example.org", "name": "  Amina\t  Diallo "}, zone="UTC", known=KNOWN)

    assert data.name == "Amina Diallo"
    assert check_input({"email": "x@mission.example.org", "name": "ب" * 200}, zone="UTC", known=KNOWN).name == "ب" * 200
    with pytest.raises(SubscriberError, match="name is longer than 200 characters"):
        check_input({"email": "x@mission.example.org", "name": "a" * 201}, zone="UTC", known=KNOWN)


def test_an_address_with_a_line_break_is_refused() -> None:
    with pytest.raises(SubscriberError, match="line break"):
        check_input({"email": "x@mission.example.org\r\nBcc: y@example.org"}, zone="UTC", known=KNOWN)


def test_saving_writes_events_and_rotating_revokes_old_links(engine: Engine, schedules: Path) -> None:
    secret = b"s" * 48
    rows, problems = parse_csv(CSV, "members.csv", zone="Europe/Zurich", known=KNOWN)
    assert len(rows) == 3 and len(problems) == 3
    with transaction(engine, write=True) as session:
        for _, data in rows:
            save(session, data, confirmed=False, now=NOW)
        subscriber = find(session, "li.wei@mission.example.org")
        assert subscriber is not None and subscriber.id is not None
        old = make_token(secret, "manage", subscriber.id, subscriber.manage_version)
        feed = make_token(secret, "feed", subscriber.id, subscriber.feed_version)
        rotate(session, subscriber, ["manage"], NOW)

    with transaction(engine) as session:
        fresh = session.exec(select(Subscriber).where(Subscriber.id == subscriber.id)).one()
        kinds = [e.kind for e in session.exec(select(Event).order_by(Event.id))]  # type: ignore[arg-type]

    assert kinds == ["subscriber_added"] * 3 + ["subscriber_tokens_rotated"]
    assert fresh.state == "pending"
    assert read_token(secret, "manage", old) == (fresh.id, 0) and fresh.manage_version == 1  # stale version
    assert read_token(secret, "feed", feed) == (fresh.id, fresh.feed_version)  # other purposes still work


def confirm_rows(database_url: str) -> list[Delivery]:
    engine = open_store(database_url)
    try:
        with transaction(engine) as session:
            return list(session.exec(select(Delivery).where(Delivery.kind == "confirm")))
    finally:
        engine.dispose()


def test_an_import_without_confirmed_queues_a_confirmation_email_per_pending_address_once(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    tracker("sync", env=env, cwd=tmp_path)
    (tmp_path / "members.csv").write_text(CSV)

    first = tracker("subscribers", "import", "members.csv", env=env, cwd=tmp_path)
    rows = confirm_rows(database_url)
    again = tracker("subscribers", "import", "members.csv", env=env, cwd=tmp_path)

    assert "3 confirmation emails queued; they go out with `tracker send-due` or the running `tracker run`" in (
        first.stdout.replace("\n", " ")
    )
    assert len(rows) == 3 and {r.state for r in rows} == {"planned"}
    assert "No confirmation email queued: 3 pending addresses were there before: an import invites new" in (
        again.stdout.replace("\n", " ")
    )
    assert len(confirm_rows(database_url)) == 3


def test_an_import_of_confirmed_addresses_queues_no_confirmation_email(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    tracker("sync", env=env, cwd=tmp_path)
    (tmp_path / "members.csv").write_text(CSV)

    result = tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)
    added = tracker("subscribers", "add", "nadia@mission.example.org", "--confirmed", env=env, cwd=tmp_path)

    assert "confirmation email" not in result.stdout + added.stdout
    assert confirm_rows(database_url) == []


@pytest.mark.parametrize(
    ("text", "offsets"),
    [
        ("7d, 1d", ("7d", "1d")),
        ("1d;2w 4h", ("14d", "1d", "4h")),  # canonical and latest first, whatever the spelling
        ("1d, 1d", ("1d",)),
        ("", None),  # the milestones' own offsets
        ("none", ()),  # no reminder emails at all
    ],
)
def test_reminder_offsets_are_read_in_any_spelling(text: str, offsets: tuple[str, ...] | None) -> None:
    data = check_input({"email": "x@mission.example.org", "reminders": text}, zone="UTC", known=KNOWN)

    assert data.reminders == offsets


def test_what_a_csv_row_does_not_carry_is_left_as_stored(engine: Engine) -> None:
    chosen = check_input({"email": "li.wei@mission.example.org", "digest": "weekly", "reminders": "3d"}, zone="UTC",
                         known=KNOWN)  # fmt: skip
    rows, _ = parse_csv(CSV, "members.csv", zone="UTC", known=KNOWN)
    row = next(data for _, data in rows if data.key == "li.wei@mission.example.org")
    with transaction(engine, write=True) as session:
        save(session, chosen, confirmed=True, now=NOW)
        subscriber, outcome = save(session, row, confirmed=True, now=NOW)

    assert outcome == "updated"  # name, language, audiences from the row
    assert (subscriber.digest, subscriber.reminders, subscriber.language) == ("weekly", ["3d"], "zh")


def test_audiences_are_checked_against_the_timelines_there_are_now(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    def refusal(audience: str) -> str | None:
        with transaction(engine) as session:
            known = known_names(session)
        try:
            check_input({"email": "x@example.org", "audiences": audience}, zone="Europe/Zurich", known=known)
        except SubscriberError as exc:
            return str(exc)
        return None

    assert refusal("anyone") is None  # no timeline yet: nothing to check against
    write_timeline("cwg-32", MEETING.replace("owner: secretariat", "owner: heads"))
    write_timeline("plain", "id: plain\ntitle: Plain\nmilestones:\n  - {id: a, title: A, due: 2030-01-01}\n")
    sync(engine, schedules, NOW)
    assert refusal("heads") is None and refusal("membership") is None  # membership: the default, always known
    assert refusal("nope") == "no audience 'nope' (known: heads, membership)"
    (schedules / "cwg-32.yaml").unlink()
    sync(engine, schedules, NOW)
    assert refusal("heads") == "no audience 'heads' (known: membership)"  # its timeline is gone


def test_an_import_names_the_line_of_an_address_that_needs_smtputf8_and_keeps_the_rest() -> None:
    text = "email\nnadia@mission.example.org\ncönc@mission.example.org\nli@bücher.example\n"

    rows, problems = parse_csv(text, "members.csv", zone="UTC", known=KNOWN)

    assert [(line, data.email, data.key) for line, data in rows] == [
        (2, "nadia@mission.example.org", "nadia@mission.example.org"),
        (4, "li@xn--bcher-kva.example", "li@bücher.example"),
    ]
    [problem] = problems
    assert (problem.line, problem.message) == (3, "the part of the address before the @ is not ASCII, so this"
                                               " address needs SMTPUTF8, which Tracker does not send; use an ASCII"
                                               " address")  # fmt: skip
