"""Bounces polled from a real IMAP mailbox (Dovecot): recorded, then deleted; nothing lost if the poll dies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from tests.support.bounces import BOUNCES, CONFIG, sample, sent_row
from tests.support.cli import cli_env, tracker
from tests.support.delivery import Clock, at, subscribe
from tests.support.imap_server import IMAPServer, dovecot
from tracker.bounces.mailbox import parse_imap_url, poll
from tracker.store.engine import transaction
from tracker.store.models import BounceReport, Delivery, Subscriber

NOW = at("2026-12-07 11:00")


@pytest.fixture
def imap() -> Iterator[IMAPServer]:
    with dovecot() as server:
        yield server


def kinds(engine: Engine) -> list[str]:
    with transaction(engine) as session:
        return list(session.exec(select(BounceReport.kind).order_by(col(BounceReport.id))))


def test_a_poll_records_each_bounce_then_deletes_it(engine: Engine, imap: IMAPServer) -> None:
    ada = subscribe(engine, "gone@mission.example.net", NOW)
    bo = subscribe(engine, "slow@mission.example.net", NOW)
    hard_id, hard = sent_row(engine, ada, NOW)
    _, soft = sent_row(engine, bo, NOW)
    imap.deliver(sample("postfix_failed.eml", hard), sample("postfix_delayed.eml", soft),
                 sample("gmail_failure.eml", soft.replace("+", "+9")))  # fmt: skip

    result = poll(engine, CONFIG, parse_imap_url(imap.url), Clock(NOW))

    assert result.outcomes == {"hard": 1, "soft": 1, "forged": 1}
    assert imap.messages() == []
    with transaction(engine) as session:
        row, person = session.get(Delivery, hard_id), session.get(Subscriber, ada)
        assert row is not None and person is not None
        assert (row.state, person.state) == ("bounced", "suspended")
    assert poll(engine, CONFIG, parse_imap_url(imap.url), Clock(NOW)).outcomes == {}


def test_a_poll_that_dies_half_way_loses_nothing_and_counts_nothing_twice(engine: Engine, imap: IMAPServer) -> None:
    ada = subscribe(engine, "slow@mission.example.net", NOW)
    _, verp = sent_row(engine, ada, NOW)
    imap.deliver(*(sample("postfix_delayed.eml", verp, message_id=f"<dsn-{n}@mail.example.org>") for n in range(4)))
    calls = 0

    def dying_clock() -> datetime:  # the process is killed while recording the third message
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return NOW

    with pytest.raises(KeyboardInterrupt):
        poll(engine, CONFIG, parse_imap_url(imap.url), dying_clock)
    assert kinds(engine) == ["soft", "soft"]
    assert len(imap.messages()) == 2  # the one being recorded stays, and the one after it

    again = poll(engine, CONFIG, parse_imap_url(imap.url), Clock(NOW))
    assert again.outcomes == {"soft": 2}
    assert kinds(engine) == ["soft"] * 4 and imap.messages() == []


def test_a_message_too_large_is_flagged_and_left_for_a_person(engine: Engine, imap: IMAPServer) -> None:
    ada = subscribe(engine, "gone@mission.example.net", NOW)
    _, verp = sent_row(engine, ada, NOW)
    huge = sample("postfix_failed.eml", verp) + (b"Y" * 998 + b"\r\n") * 300
    imap.deliver(huge)
    assert poll(engine, CONFIG, parse_imap_url(imap.url), Clock(NOW)).refused == 1
    assert poll(engine, CONFIG, parse_imap_url(imap.url), Clock(NOW)).refused == 0  # flagged: not looked at again
    assert len(imap.messages()) == 1 and kinds(engine) == []


def test_an_unreadable_message_is_flagged_and_left_and_the_poll_goes_on(engine: Engine, imap: IMAPServer) -> None:
    from tests.support.bounces import deeply_nested

    ada = subscribe(engine, "gone@mission.example.net", NOW)
    _, verp = sent_row(engine, ada, NOW)
    imap.deliver(deeply_nested(verp), sample("postfix_failed.eml", verp))
    result = poll(engine, CONFIG, parse_imap_url(imap.url), Clock(NOW))
    assert (result.outcomes, result.refused) == ({"hard": 1}, 1)
    assert len(imap.messages()) == 1 and kinds(engine) == ["hard"]
    assert poll(engine, CONFIG, parse_imap_url(imap.url), Clock(NOW)).outcomes == {}  # flagged: not read again


def test_mail_that_is_no_bounce_of_ours_is_flagged_and_left_not_deleted(engine: Engine, imap: IMAPServer) -> None:
    ada = subscribe(engine, "away@mission.example.net", NOW)
    _, verp = sent_row(engine, ada, NOW)
    reply, stranger = sample("out_of_office.eml", verp), sample("postfix_failed.eml", "list-bounces@example.net")
    imap.deliver(reply, stranger)
    assert poll(engine, CONFIG, parse_imap_url(imap.url), Clock(NOW)).outcomes == {"not-a-bounce": 1, "unmatched": 1}
    assert imap.messages() == [reply, stranger]  # someone may want to read them
    with imap.client() as client:
        client.select_folder("INBOX")
        assert sorted(flag for flags in client.get_flags(client.search()).values() for flag in flags) == [
            b"$TrackerIgnored", b"$TrackerIgnored"]  # fmt: skip
    assert poll(engine, CONFIG, parse_imap_url(imap.url), Clock(NOW)).outcomes == {}  # not read again


@pytest.mark.parametrize("url", ["http://x@host/", "imaps://host/INBOX", "imap://u:p@host/?tls=yes", "imaps://:p@host"])
def test_a_bad_imap_url_is_refused_with_the_setting_named(url: str) -> None:
    with pytest.raises(ValueError, match="TRACKER_BOUNCE_IMAP_URL"):
        parse_imap_url(url)


def test_a_password_is_sent_in_clear_only_to_this_host() -> None:
    with pytest.raises(ValueError, match=r"TRACKER_BOUNCE_IMAP_URL.*in clear.*imaps://"):
        parse_imap_url("imap://bounces:secret@imap.example.org/INBOX")
    for url in ("imap://u:p@127.0.0.1:1143/", "imap://u:p@localhost/", "imap://u:p@[::1]/",
                "imap://u:p@imap.example.org/?starttls=true", "imaps://u:p@imap.example.org/"):  # fmt: skip
        parse_imap_url(url)


def test_the_poll_command_reads_the_mailbox_and_says_what_it_found(
    engine: Engine, imap: IMAPServer, database_url: str, schedules: Path, tmp_path: Path
) -> None:
    ada = subscribe(engine, "gone@mission.example.net", NOW)
    _, verp = sent_row(engine, ada, NOW)
    imap.deliver(sample("exchange_online_ndr.eml", verp))
    env = cli_env(database_url, schedules, TRACKER_BOUNCE_ADDRESS=BOUNCES, TRACKER_BOUNCE_IMAP_URL=imap.url)
    result = tracker("bounces", "poll", env=env, cwd=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, "bounces: hard 1"), result.stderr
    wrong = tracker("bounces", "poll", env={**env, "TRACKER_BOUNCE_IMAP_URL": imap.url.replace(":imap-", ":x-")},
                    cwd=tmp_path)  # fmt: skip
    assert wrong.returncode == 1 and "refused" in wrong.stderr and "Traceback" not in wrong.stderr


def test_without_dovecot_the_imap_tests_fail_where_ci_requires_every_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import imap_server

    monkeypatch.setattr(imap_server, "DOVECOT", "/nonexistent/dovecot")
    monkeypatch.setenv("TRACKER_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="dovecot-imapd"), imap_server.dovecot():
        pass
    monkeypatch.delenv("TRACKER_REQUIRE_BROWSER")
    with pytest.raises(pytest.skip.Exception, match="dovecot-imapd"), imap_server.dovecot():
        pass
