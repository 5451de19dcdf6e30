"""VERP: each message's envelope sender names its outbox row, signed, so a bounce finds it and a forgery shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.delivery import SECRET, Clock, at, deliver, make_dispatcher, rows, subscribe, sync
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, WriteTimeline
from tracker.mail.verp import LOCAL_PART_MAX, check_bounce_address, read_verp, verp_address

BOUNCES = "bounces@example.org"


@pytest.fixture
def hlpf(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Engine:
    write_timeline("hlpf", HLPF)
    sync(engine, schedules, at("2017-02-01 09:00"))
    return engine


def test_each_message_goes_with_its_own_signed_envelope_sender(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-10 09:00"))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    subscribe(hlpf, "chair@example.org", clock.now, audiences=("secretariat",))
    assert deliver(make_dispatcher(hlpf, smtp.url, clock, bounce_address=BOUNCES)).sent == 2

    by_recipient = {mail.rcpt_tos[0]: mail for mail in smtp.received}
    for row in rows(hlpf, state="sent"):
        recipient = "sec@example.org" if row.subscriber_id == 1 else "chair@example.org"
        mail = by_recipient[recipient]
        assert mail.mail_from.startswith("bounces+") and mail.mail_from.endswith("@example.org")
        assert read_verp(SECRET, BOUNCES, mail.mail_from) == row.id
        assert mail.parse()["From"] == "Tracker <tracker@example.org>"  # the header stays as it was
    assert len({mail.mail_from for mail in smtp.received}) == 2


def test_without_a_bounce_address_the_envelope_sender_is_the_from_address(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-10 09:00"))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    deliver(make_dispatcher(hlpf, smtp.url, clock, from_address="Tracker <tracker@example.org>"))
    assert [mail.mail_from for mail in smtp.received] == ["tracker@example.org"]


def test_a_tampered_tag_is_not_read_as_a_delivery() -> None:
    good = verp_address(SECRET, BOUNCES, 42)
    local, _, domain = good.partition("@")
    assert read_verp(SECRET, BOUNCES, good) == 42
    assert read_verp(SECRET, BOUNCES, good.upper()) == 42  # relays may change the case
    assert read_verp(SECRET, BOUNCES, good.replace("+42.", "+43.")) is None  # another row, same signature
    flipped = local[:-1] + ("a" if local[-1] != "a" else "b")
    assert read_verp(SECRET, BOUNCES, f"{flipped}@{domain}") is None
    assert read_verp(b"another-secret-key-of-32-characters!", BOUNCES, good) is None
    assert read_verp(SECRET, BOUNCES, "bounces+42@example.org") is None  # no signature
    assert read_verp(SECRET, BOUNCES, good.replace("example.org", "example.net")) is None
    assert read_verp(SECRET, BOUNCES, "x" * 5000) is None


def test_the_tagged_local_part_stays_within_the_rfc_5321_limit() -> None:
    longest = check_bounce_address("b" * 27 + "@example.org")
    assert len(verp_address(SECRET, longest, 2**63 - 1).partition("@")[0]) <= LOCAL_PART_MAX
    for bad in ("b" * 28 + "@example.org", "bounces+x@example.org", "bounces", "bo unces@example.org", "a\r\n@x.org"):
        with pytest.raises(ValueError, match="TRACKER_BOUNCE_ADDRESS"):
            check_bounce_address(bad)


def test_the_settings_check_the_bounce_address_and_hand_it_to_the_dispatcher() -> None:
    from pydantic import ValidationError

    from tracker.config import Settings
    from tracker.delivery.dispatcher import DispatchConfig

    settings = Settings(bounce_address=" Bounces@Example.ORG ")
    assert DispatchConfig.from_settings(settings).bounce_address == "bounces@example.org"
    assert DispatchConfig.from_settings(Settings()).bounce_address == ""
    with pytest.raises(ValidationError, match="TRACKER_BOUNCE_ADDRESS"):
        Settings(bounce_address="bounces+x@example.org")
    with pytest.raises(ValidationError, match="TRACKER_BOUNCE_SUSPEND"):
        Settings(bounce_suspend="soon")


def test_a_sent_reminder_bounces_back_to_its_own_row(hlpf: Engine, smtp: SMTPTestServer) -> None:
    from tests.support.bounces import CONFIG, listening, relay, sample

    clock = Clock(at("2017-02-10 09:00"))
    subscribe(hlpf, "gone@mission.example.net", clock.now, audiences=("secretariat",))
    deliver(make_dispatcher(hlpf, smtp.url, clock, bounce_address=BOUNCES))
    [mail] = smtp.received
    with listening(hlpf, clock, CONFIG) as port:  # the relay returns the bounce to the envelope sender
        assert relay(port, sample("postfix_failed.eml", mail.mail_from), mail.mail_from) == (250, b"2.0.0 hard")
    [row] = [row for row in rows(hlpf) if read_verp(SECRET, BOUNCES, mail.mail_from) == row.id]
    assert row.state == "bounced" and "User unknown" in row.last_error
    assert [other.state for other in rows(hlpf) if other.id != row.id and other.state in ("sent", "bounced")] == []
