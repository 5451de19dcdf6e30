"""Subscriber CSV at organisation scale (issue 18, point 3): by header, streamed, restartable, exported safely."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import signal
import subprocess
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from tests.support.cli import TRACKER, cli_env, tracker
from tests.support.timelines import HLPF, WriteTimeline
from tracker.store.engine import open_store, transaction
from tracker.store.models import Delivery, Event, Subscriber
from tracker.subscribers.csvfiles import neutral, read_chunks
from tracker.subscribers.registry import Known, plain_address

KNOWN = Known(frozenset({"hlpf"}), frozenset({"membership", "secretariat"}))


@pytest.fixture
def env(database_url: str, schedules: Path, write_timeline: WriteTimeline, tmp_path: Path) -> dict[str, str]:
    write_timeline("hlpf", HLPF)
    env = cli_env(database_url, schedules)
    assert tracker("sync", env=env, cwd=tmp_path).returncode == 0
    return env


def listed(env: dict[str, str], cwd: Path) -> dict[str, dict[str, object]]:
    result = tracker("subscribers", "list", "--json", env=env, cwd=cwd)
    return {s["email"]: s for s in json.loads(result.stdout)}


def test_columns_are_read_by_their_header_in_any_order_with_a_zone(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "members.csv").write_text(
        "timezone,language,email,audiences\n"
        "Asia/Tokyo,zh,li.wei@mission.example.org,membership;secretariat\n"
        "Geneva,fr,amina@mission.example.org,\n"
    )

    result = tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith("members.csv:3: unknown time zone 'Geneva'")
    assert "members.csv: 1 added, 0 updated, 0 unchanged, 1 rejected" in result.stdout
    li = listed(env, tmp_path)["li.wei@mission.example.org"]
    assert (li["timezone"], li["language"], li["audiences"]) == ("Asia/Tokyo", "zh", ["membership", "secretariat"])


def test_a_column_the_file_lacks_keeps_what_was_stored(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "first.csv").write_text("email,name,timezone,language\nli.wei@mission.example.org,Li,Asia/Tokyo,zh\n")
    (tmp_path / "names.csv").write_text("name,email\nLi Wei,li.wei@mission.example.org\n")

    tracker("subscribers", "import", "first.csv", "--confirmed", env=env, cwd=tmp_path)
    result = tracker("subscribers", "import", "names.csv", "--confirmed", env=env, cwd=tmp_path)

    assert "names.csv: 0 added, 1 updated, 0 unchanged, 0 rejected" in result.stdout
    li = listed(env, tmp_path)["li.wei@mission.example.org"]
    assert (li["name"], li["timezone"], li["language"]) == ("Li Wei", "Asia/Tokyo", "zh")


def test_an_unknown_column_is_named_at_line_1_and_nothing_is_saved(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "members.csv").write_text("email,name,timezon\namina@mission.example.org,Amina,Africa/Dakar\n")

    result = tracker("subscribers", "import", "members.csv", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == "members.csv:1: unknown column 'timezon' (did you mean 'timezone'?)"
    assert listed(env, tmp_path) == {}


def rows_csv(path: Path, count: int) -> None:
    languages = ("en", "fr", "es", "ar", "ru", "zh")
    with path.open("w") as out:
        out.write("email,name,language,timezone\n")
        for n in range(count):
            out.write(f"member{n}@mission.example.org,Member {n},{languages[n % 6]},Europe/Zurich\n")


def saved_count(url: str) -> int:
    with transaction(open_store(url)) as session:
        return int(session.execute(select(func.count()).select_from(Subscriber)).scalar_one())


def test_an_import_killed_half_way_keeps_what_it_saved_and_a_rerun_adds_the_rest_once(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    total = 60_000
    rows_csv(tmp_path / "members.csv", total)
    process = subprocess.Popen([TRACKER, "subscribers", "import", "members.csv", "--confirmed"], env=env,
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while saved_count(database_url) == 0 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    kept = saved_count(database_url)
    assert 0 < kept < total, "the kill should land after the first chunk and before the last"

    again = tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)

    assert f"members.csv: {total - kept} added, 0 updated, {kept} unchanged, 0 rejected" in again.stdout
    with transaction(open_store(database_url)) as session:
        added = select(func.count()).select_from(Event).where(Event.__table__.c.kind == "subscriber_added")  # type: ignore[attr-defined]
        assert session.execute(added).scalar_one() == total  # one event per subscriber: nothing doubled
    assert saved_count(database_url) == total


def test_an_export_neutralises_formulas_and_imports_back_as_it_was(env: dict[str, str], tmp_path: Path) -> None:
    names = ['=HYPERLINK("http://evil.example","x")', "+41 22 730 5111", "-2+3", "@SUM(A1)", "Amina Diallo", "'=x",
             "'Tis"]  # fmt: skip
    written = [neutral(name).replace('"', '""') for name in names]  # as a spreadsheet user writes them
    lines = [f'm{n}@mission.example.org,"{cell}",fr' for n, cell in enumerate(written)]
    (tmp_path / "members.csv").write_text("email,name,language\n" + "\n".join(lines) + "\n")
    tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)

    exported = tracker("subscribers", "export", "out.csv", env=env, cwd=tmp_path)
    again = tracker("subscribers", "import", "out.csv", "--confirmed", env=env, cwd=tmp_path)

    assert "out.csv: 7 subscribers" in exported.stdout
    cells = {row["email"]: row["name"] for row in csv.DictReader((tmp_path / "out.csv").open())}
    assert cells["m0@mission.example.org"] == "'" + names[0]  # a spreadsheet shows it; it does not run it
    assert [cells[f"m{n}@mission.example.org"][0] for n in range(4)] == ["'"] * 4
    assert cells["m4@mission.example.org"] == "Amina Diallo"
    assert "out.csv: 0 added, 0 updated, 7 unchanged, 0 rejected" in again.stdout
    assert [listed(env, tmp_path)[f"m{n}@mission.example.org"]["name"] for n in range(7)] == names


def test_export_to_standard_output_has_a_header_and_every_choice(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "members.csv").write_text("email,timezone,audiences\nli@mission.example.org,Asia/Tokyo,secretariat\n")
    tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)

    result = tracker("subscribers", "export", env=env, cwd=tmp_path)

    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert (row["email"], row["timezone"], row["audiences"], row["state"]) == (
        "li@mission.example.org", "Asia/Tokyo", "secretariat", "confirmed")  # fmt: skip


class Rows:
    """A CSV of *count* rows made as it is read: the file itself takes no memory."""

    def __init__(self, count: int) -> None:
        rows = (f"m{n}@mission.example.org,Member {n},fr\n" for n in range(count))
        self.lines: Iterator[str] = itertools.chain(["email,name,language\n"], rows)

    def readline(self, size: int = -1, /) -> str:
        return next(self.lines, "")

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return 0


def peak_of_reading(count: int) -> int:
    tracemalloc.start()
    rows = sum(len(c.rows) for c in read_chunks(Rows(count), "members.csv", zone="UTC", known=KNOWN))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert rows == count
    return peak


def test_reading_a_file_holds_one_chunk_of_rows_not_the_file() -> None:
    small, large = peak_of_reading(2_000), peak_of_reading(40_000)
    # Twenty times the rows: only the addresses seen (a hash and a line each, ~90 bytes) grow, not the rows.
    assert large < small + 40_000 * 300, (small, large)  # holding every row: about 56 MB more


def validator_answer(address: str) -> tuple[str, str] | None:
    """What email-validator itself says, as `normalise_email` read it before the quick path."""
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return None if valid.ascii_email is None else (valid.ascii_email, valid.normalized.lower())


LOCAL_CHARS = "aZ09._!#$%&'*+-/=?^`{|}~\"(),:;<>@[\\] é"
DOMAINS = ["mission.example.org", "Mission.Example.ORG", "bücher.example", "xn--bcher-kva.example", "localhost",
           "example", "a..b.org", "-a.org", "[192.0.2.1]", "a.b", "x" * 63 + ".org", "x" * 64 + ".org",
           ("y" * 60 + ".") * 4 + "org", "mission.example.org.", "ÉCOLE.example"]  # fmt: skip


@given(local=st.text(LOCAL_CHARS, min_size=0, max_size=70), domain=st.sampled_from(DOMAINS))
@settings(max_examples=600, deadline=None)
def test_the_quick_path_for_plain_addresses_agrees_with_email_validator(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    quick = plain_address(address)
    if quick is not None:  # anything it does not take, email-validator itself answers
        assert quick == validator_answer(address)


@pytest.mark.parametrize("address", ["Li.Wei@Mission.Example.org", "a+tag@bücher.example", "x@xn--bcher-kva.example",
                                     "o'brien@mission.example.org", "a" * 64 + "@mission.example.org"])  # fmt: skip
def test_plain_addresses_take_the_quick_path_with_email_validators_answer(address: str) -> None:
    assert plain_address(address) == validator_answer(address) is not None


def test_bad_lines_after_the_first_chunk_are_reported_too(env: dict[str, str], tmp_path: Path) -> None:
    rows_csv(tmp_path / "members.csv", 1_499)
    lines = (tmp_path / "members.csv").read_text().splitlines()
    lines[1200] = "lost1@mission.example.org," + "x" * 5_000
    lines[1300] = 'lost2@mission.example.org,"Smith, Bob'
    (tmp_path / "members.csv").write_text("\n".join(lines) + "\n")

    result = tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert [line.split(":")[1] for line in result.stderr.splitlines() if line.startswith("members.csv:")] == [
        "1201", "1301"]  # fmt: skip
    assert "members.csv: 1497 added, 0 updated, 0 unchanged, 2 rejected" in result.stdout


def test_no_reminders_at_all_exports_as_none_and_reads_back_so(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "members.csv").write_text("email,reminders\nquiet@mission.example.org,none\n")
    tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)

    tracker("subscribers", "export", "out.csv", env=env, cwd=tmp_path)
    again = tracker("subscribers", "import", "out.csv", "--confirmed", env=env, cwd=tmp_path)

    [row] = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert row["reminders"] == "none"
    assert "out.csv: 0 added, 0 updated, 1 unchanged, 0 rejected" in again.stdout


def test_a_confirmed_import_leaves_an_address_that_unsubscribed_out(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "members.csv").write_text("email\nleft@mission.example.org\n")
    tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)
    tracker("subscribers", "remove", "left@mission.example.org", env=env, cwd=tmp_path)

    tracker("subscribers", "export", "out.csv", env=env, cwd=tmp_path)
    again = tracker("subscribers", "import", "out.csv", "--confirmed", env=env, cwd=tmp_path)

    assert "out.csv: 0 added, 0 updated, 1 unchanged, 0 rejected" in again.stdout
    assert listed(env, tmp_path)["left@mission.example.org"]["state"] == "unsubscribed"


def test_running_an_import_again_later_invites_nobody_twice(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    (tmp_path / "members.csv").write_text("email\na@mission.example.org\nb@mission.example.org\n")
    tracker("subscribers", "import", "members.csv", env=env, cwd=tmp_path)
    table = Delivery.__table__  # type: ignore[attr-defined]
    with transaction(open_store(database_url), write=True) as session:  # as if the first run were an hour ago
        session.execute(update(table).values(created_at=datetime.now(UTC) - timedelta(hours=1)))

    again = tracker("subscribers", "import", "members.csv", env=env, cwd=tmp_path)

    assert "No confirmation email queued: 2 pending addresses were there before" in again.stdout.replace("\n", " ")
    with transaction(open_store(database_url)) as session:
        assert session.execute(select(func.count()).select_from(table)).scalar_one() == 2


def test_a_row_shorter_than_the_header_is_refused_not_emptied(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "first.csv").write_text("email,name,language\nshort@mission.example.org,Jean,fr\n")
    (tmp_path / "short.csv").write_text("email,name,language\nshort@mission.example.org\n")
    tracker("subscribers", "import", "first.csv", "--confirmed", env=env, cwd=tmp_path)

    result = tracker("subscribers", "import", "short.csv", "--confirmed", env=env, cwd=tmp_path)

    assert result.stderr.startswith("short.csv:2: the row has 1 of the header's 3 fields")
    assert (listed(env, tmp_path)["short@mission.example.org"]["name"], result.returncode) == ("Jean", 1)
