"""Bounces over SMTP into the real listener: recorded before the 250, once, and suspending as the policy says."""

from __future__ import annotations

import smtplib
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlmodel import col, select

from tests.support.bounces import BOUNCES, CONFIG, deeply_nested, listening, relay, sample, sent_row
from tests.support.delivery import Clock, at, subscribe
from tracker.bounces.intake import take_bounce
from tracker.bounces.policy import parse_suspend_policy
from tracker.store.engine import transaction
from tracker.store.models import BounceReport, Delivery, Event, Subscriber

NOW = at("2026-12-07 11:00")


def state_of(engine: Engine, subscriber_id: int) -> str:
    with transaction(engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber is not None
        return subscriber.state


def delivery(engine: Engine, delivery_id: int) -> Delivery:
    with transaction(engine) as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        return row


def reports(engine: Engine) -> list[tuple[str, int | None]]:
    with transaction(engine) as session:
        return [(r.kind, r.delivery_id) for r in session.exec(select(BounceReport).order_by(col(BounceReport.id)))]


def test_a_hard_bounce_over_smtp_marks_the_delivery_bounced_and_suspends_the_address(engine: Engine) -> None:
    clock = Clock(NOW)
    ada = subscribe(engine, "gone@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    with listening(engine, clock) as port:
        code, text = relay(port, sample("postfix_failed.eml", verp), verp)

    assert (code, text) == (250, b"2.0.0 hard")
    row = delivery(engine, row_id)
    assert row.state == "bounced"
    assert row.last_error.startswith("5.1.1 550 5.1.1 <gone@mission.example.net>: Recipient address rejected")
    assert state_of(engine, ada) == "suspended"
    with transaction(engine) as session:
        kinds = [(e.kind, e.actor) for e in session.exec(select(Event).where(Event.subscriber_id == ada))]
    assert ("delivery_bounced", "bounces") in kinds and ("subscriber_suspended", "bounces") in kinds


@pytest.mark.parametrize(
    "name", ["gmail_failure.eml", "exchange_online_ndr.eml", "flufl_microsoft_01.eml", "flufl_qmail_01.eml"]
)
def test_hard_bounces_of_other_servers_arrive_through_the_listener(engine: Engine, name: str) -> None:
    ada = subscribe(engine, "ada@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    with listening(engine, Clock(NOW)) as port:
        assert relay(port, sample(name, verp), verp)[0] == 250
    assert delivery(engine, row_id).state == "bounced"
    assert state_of(engine, ada) == "suspended"


def test_a_delayed_notice_is_soft_the_message_stays_sent(engine: Engine) -> None:
    ada = subscribe(engine, "slow@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    with listening(engine, Clock(NOW)) as port:
        assert relay(port, sample("postfix_delayed.eml", verp), verp) == (250, b"2.0.0 soft")
    assert delivery(engine, row_id).state == "sent"
    assert state_of(engine, ada) == "confirmed"
    assert reports(engine) == [("soft", row_id)]


def test_the_same_bounce_twice_counts_once(engine: Engine) -> None:
    ada = subscribe(engine, "slow@mission.example.net", NOW)
    _, verp = sent_row(engine, ada, NOW)
    with listening(engine, Clock(NOW)) as port:
        first = relay(port, sample("postfix_delayed.eml", verp), verp)
        again = relay(port, sample("postfix_delayed.eml", verp), verp)
    assert (first[1], again[1]) == (b"2.0.0 soft", b"2.0.0 duplicate")
    assert len(reports(engine)) == 1


def test_a_forged_bounce_is_ignored_and_counted(engine: Engine) -> None:
    ada = subscribe(engine, "ada@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    forged = verp.replace(f"+{row_id}.", f"+{row_id + 1}.")
    with listening(engine, Clock(NOW)) as port:
        assert relay(port, sample("postfix_failed.eml", forged), forged) == (250, b"2.0.0 forged")
    assert delivery(engine, row_id).state == "sent"
    assert state_of(engine, ada) == "confirmed"
    assert reports(engine) == [("forged", None)]


def test_an_automatic_reply_changes_nothing(engine: Engine) -> None:
    ada = subscribe(engine, "ada@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    with listening(engine, Clock(NOW)) as port:
        assert relay(port, sample("out_of_office.eml", verp), verp) == (250, b"2.0.0 not-a-bounce")
    assert (delivery(engine, row_id).state, state_of(engine, ada), reports(engine)) == ("sent", "confirmed", [])


def test_mail_to_any_other_address_is_refused_at_rcpt(engine: Engine) -> None:
    with listening(engine, Clock(NOW)) as port:
        for address in ("bounces@example.org", "postmaster@example.org", "bounces+1.x@example.net", "a" * 300):
            code, _ = relay(port, sample("postfix_failed.eml", address), address)
            assert code == 550, address
    assert reports(engine) == []


def test_a_message_larger_than_the_limit_is_refused_and_nothing_recorded(engine: Engine) -> None:
    ada = subscribe(engine, "ada@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    huge = sample("postfix_failed.eml", verp) + (b"Y" * 998 + b"\r\n") * 300
    with listening(engine, Clock(NOW)) as port:
        code, _ = relay(port, huge, verp)
        assert code == 552
        assert relay(port, sample("postfix_failed.eml", verp), verp)[0] == 250  # the listener goes on
    assert reports(engine) == [("hard", row_id)]


def test_a_store_that_fails_gets_a_451_so_the_relay_sends_it_again(engine: Engine) -> None:
    ada = subscribe(engine, "ada@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    with listening(engine, Clock(NOW)) as port:
        rename(engine, "bounce_reports", "bounce_reports_away")  # the store cannot take the outcome
        code, _ = relay(port, sample("postfix_failed.eml", verp), verp)
        rename(engine, "bounce_reports_away", "bounce_reports")
        assert code == 451
        assert delivery(engine, row_id).state == "sent"
        assert relay(port, sample("postfix_failed.eml", verp), verp) == (250, b"2.0.0 hard")
    assert reports(engine) == [("hard", row_id)]
    assert delivery(engine, row_id).state == "bounced"


def rename(engine: Engine, table: str, to: str) -> None:
    with transaction(engine, write=True) as session:
        session.execute(text(f"ALTER TABLE {table} RENAME TO {to}"))


def test_a_hung_up_client_leaves_nothing_half_recorded(engine: Engine) -> None:
    ada = subscribe(engine, "ada@mission.example.net", NOW)
    _, verp = sent_row(engine, ada, NOW)
    with listening(engine, Clock(NOW)) as port:
        client = smtplib.SMTP("127.0.0.1", port, timeout=10)
        client.ehlo("relay.example.org")
        client.mail("")
        client.rcpt(verp)
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(sample("postfix_failed.eml", verp)[:500])
        client.close()  # the relay died mid-message: it still holds the bounce and sends it later
        assert relay(port, sample("postfix_delayed.eml", verp), verp)[0] == 250
    assert [kind for kind, _ in reports(engine)] == ["soft"]


# Thresholds, through the same step the listener takes for each message.


def bounce(engine: Engine, clock: Clock, name: str, verp: str, number: int, policy: str | None = None) -> str:
    config = CONFIG if policy is None else CONFIG.__class__(CONFIG.secret, BOUNCES, parse_suspend_policy(policy))
    data = sample(name, verp, message_id=f"<dsn-{number}@mail.example.org>")
    return take_bounce(engine, config, data, [verp], clock).result


def test_four_soft_bounces_leave_the_address_five_suspend_it(engine: Engine) -> None:
    clock = Clock(NOW)
    ada = subscribe(engine, "slow@mission.example.net", NOW)
    for number in range(4):
        _, verp = sent_row(engine, ada, clock(), slot=f"{number}d")
        assert bounce(engine, clock, "postfix_delayed.eml", verp, number) == "soft"
        clock.advance(days=5)
    assert state_of(engine, ada) == "confirmed"
    _, verp = sent_row(engine, ada, clock(), slot="4d")
    bounce(engine, clock, "postfix_delayed.eml", verp, 4)
    assert state_of(engine, ada) == "suspended"


def test_delayed_notices_about_one_message_count_once(engine: Engine) -> None:
    clock = Clock(NOW)
    ada = subscribe(engine, "slow@mission.example.net", NOW)
    _, verp = sent_row(engine, ada, NOW)
    for number in range(5):  # a relay sends "still trying" notices about the same message, hours apart
        assert bounce(engine, clock, "postfix_delayed.eml", verp, number) == "soft"
        clock.advance(hours=4)
    assert state_of(engine, ada) == "confirmed"


def test_soft_bounces_older_than_the_window_do_not_count(engine: Engine) -> None:
    clock = Clock(NOW)
    ada = subscribe(engine, "slow@mission.example.net", NOW)
    for number in range(5):
        _, verp = sent_row(engine, ada, clock(), slot=f"{number}d")
        bounce(engine, clock, "postfix_delayed.eml", verp, number)
        clock.advance(days=8)  # the first is 32 days old when the fifth comes
    assert state_of(engine, ada) == "confirmed"


def test_the_policy_setting_is_obeyed(engine: Engine) -> None:
    clock = Clock(NOW)
    ada = subscribe(engine, "gone@mission.example.net", NOW)
    (_, first), (_, second) = sent_row(engine, ada, NOW), sent_row(engine, ada, NOW, slot="1d")
    bounce(engine, clock, "postfix_failed.eml", first, 1, policy="2 hard in 7 days")
    assert state_of(engine, ada) == "confirmed"
    clock.advance(days=1)
    bounce(engine, clock, "postfix_failed.eml", second, 2, policy="2 hard in 7 days")
    assert state_of(engine, ada) == "suspended"


def test_a_resumed_address_is_not_suspended_again_by_the_bounces_before_its_resume(engine: Engine) -> None:
    from tracker.subscribers.roster import set_suspended

    clock = Clock(NOW)
    ada = subscribe(engine, "ada@mission.example.net", NOW)
    _, verp = sent_row(engine, ada, NOW)
    bounce(engine, clock, "postfix_failed.eml", verp, 1)
    assert state_of(engine, ada) == "suspended"
    clock.advance(days=1)
    with transaction(engine, write=True) as session:
        person = session.get(Subscriber, ada)
        assert person is not None and set_suspended(session, person, False, person.email, clock(), actor="subscriber")
    clock.advance(days=1)
    _, later = sent_row(engine, ada, clock(), slot="1d")
    assert bounce(engine, clock, "postfix_delayed.eml", later, 2) == "soft"
    assert state_of(engine, ada) == "confirmed"  # one soft bounce since the resume: not five
    _, again = sent_row(engine, ada, clock(), slot="0d")
    assert bounce(engine, clock, "postfix_failed.eml", again, 3) == "hard"
    assert state_of(engine, ada) == "suspended"  # a new hard bounce still suspends


def test_a_message_given_up_on_after_delays_is_bounced_but_counts_as_soft(engine: Engine) -> None:
    ada = subscribe(engine, "slow@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    expired = sample("postfix_failed.eml", verp).replace(b"Status: 5.1.1", b"Status: 4.4.7")
    assert take_bounce(engine, CONFIG, expired, [verp], Clock(NOW)).result == "soft"
    assert delivery(engine, row_id).state == "bounced"  # the message never arrived
    assert state_of(engine, ada) == "confirmed"  # the address may be fine: its server was down for days


def test_planned_messages_of_a_suspended_address_are_cancelled(engine: Engine) -> None:
    clock = Clock(NOW)
    ada = subscribe(engine, "gone@mission.example.net", NOW)
    _, verp = sent_row(engine, ada, NOW)
    planned_id, _ = sent_row(engine, ada, NOW, slot="1d")
    with transaction(engine, write=True) as session:
        planned = session.get(Delivery, planned_id)
        assert planned is not None
        planned.state, planned.send_at = "planned", NOW + timedelta(days=6)
        session.add(planned)
    bounce(engine, clock, "postfix_failed.eml", verp, 1)
    assert (delivery(engine, planned_id).state, delivery(engine, planned_id).reason) == (
        "cancelled",
        "address suspended",
    )


def test_an_erased_person_leaves_no_trace_in_the_bounces_and_the_counts_stay(engine: Engine) -> None:
    from tests.support.stored_text import traces
    from tracker.subscribers.personal import erase_person, export_person

    ada = subscribe(engine, "gone@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    bounce(engine, Clock(NOW), "postfix_failed.eml", verp, 1)
    with transaction(engine, write=True) as session:
        person = session.get(Subscriber, ada)
        assert person is not None
        [shown] = export_person(session, person, NOW)["bounces"]
        assert (shown["kind"], shown["status"]) == ("hard", "5.1.1") and "gone@mission" in shown["diagnostic"]
        assert traces(engine, "gone@mission")
        erase_person(session, person, b"erase-test-secret-key-0123456789abcdef", NOW, "subscriber")
    assert traces(engine, "gone@mission") == []
    assert reports(engine) == [("hard", row_id)]


def test_a_bounce_arriving_after_the_erasure_writes_no_address_back(engine: Engine) -> None:
    from tests.support.stored_text import traces
    from tracker.subscribers.personal import erase_person

    ada = subscribe(engine, "gone@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    with transaction(engine, write=True) as session:
        person = session.get(Subscriber, ada)
        assert person is not None
        erase_person(session, person, b"erase-test-secret-key-0123456789abcdef", NOW, "subscriber")
    assert bounce(engine, Clock(NOW + timedelta(days=2)), "postfix_failed.eml", verp, 1) == "hard"
    assert traces(engine, "gone@mission") == []  # not in the report, the row's error, nor the event
    assert reports(engine) == [("hard", row_id)]  # counted all the same
    assert delivery(engine, row_id).state == "bounced" and delivery(engine, row_id).last_error == "5.1.1"


def test_a_well_signed_bounce_for_a_row_no_longer_kept_changes_no_one(engine: Engine) -> None:
    from tests.support.delivery import SECRET
    from tracker.mail.verp import verp_address

    ada = subscribe(engine, "ada@mission.example.net", NOW)
    gone = verp_address(SECRET, BOUNCES, 99_999)  # its row was deleted by the log's retention
    assert bounce(engine, Clock(NOW), "postfix_failed.eml", gone, 1) == "hard"
    assert state_of(engine, ada) == "confirmed"
    with transaction(engine) as session:
        [report] = session.exec(select(BounceReport)).all()
    assert (report.delivery_id, report.subscriber_id) == (99_999, None)


def test_reports_alike_about_two_messages_count_for_each(engine: Engine) -> None:
    ada, bo = subscribe(engine, "a@mission.example.net", NOW), subscribe(engine, "b@mission.example.net", NOW)
    (_, first), (_, second) = sent_row(engine, ada, NOW), sent_row(engine, bo, NOW)
    assert bounce(engine, Clock(NOW), "postfix_failed.eml", first, 1) == "hard"
    assert bounce(engine, Clock(NOW), "postfix_failed.eml", second, 1) == "hard"  # the same Message-ID
    assert (state_of(engine, ada), state_of(engine, bo)) == ("suspended", "suspended")


def test_malformed_mail_is_answered_and_changes_nothing(engine: Engine) -> None:
    ada = subscribe(engine, "ada@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    garbage = [b"\xff\xfe\x00 not mail at all\r\n", b"Content-Type: multipart/report; boundary=\"x\r\n\r\n--x\r\n" * 40,
               b"Content-Type: message/delivery-status\r\n\r\nAction: failed\r\nStatus: 9.9.9.9\r\n"]  # fmt: skip
    with listening(engine, Clock(NOW)) as port:
        for data in garbage:
            assert relay(port, data, verp) == (250, b"2.0.0 not-a-bounce")
    assert (delivery(engine, row_id).state, state_of(engine, ada), reports(engine)) == ("sent", "confirmed", [])


def test_a_message_too_deep_to_parse_is_refused_for_good_not_retried(engine: Engine) -> None:
    ada = subscribe(engine, "ada@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    with listening(engine, Clock(NOW)) as port:
        code, text = relay(port, deeply_nested(verp), verp)
        assert (code, text) == (554, b"5.6.0 unreadable message, not a bounce this server can read")
        assert relay(port, sample("postfix_failed.eml", verp), verp)[0] == 250  # the listener goes on
    assert (delivery(engine, row_id).state, reports(engine)) == ("bounced", [("hard", row_id)])


def test_the_listener_greets_with_its_own_name_not_the_hosts_so_postfix_sees_no_loop(engine: Engine) -> None:
    # Postfix refuses to forward to a server that greets with its own myhostname ("loops back to myself").
    with listening(engine, Clock(NOW)) as port, smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        code, greeting = client.ehlo("relay.example.org")
        assert code == 250 and greeting.split(b"\n")[0] == b"tracker-bounces.invalid"
        assert client.docmd("NOOP")[0] == 250


def test_the_listeners_name_is_a_setting_checked_at_start() -> None:
    from pydantic import ValidationError

    from tracker.config import Settings

    assert Settings().bounce_listen_name == "tracker-bounces.invalid"
    assert Settings(bounce_listen_name="Bounces.Example.ORG").bounce_listen_name == "bounces.example.org"
    for bad in ("", "two words", "a" * 300, "x\r\n250 evil"):
        with pytest.raises(ValidationError, match="TRACKER_BOUNCE_LISTEN_NAME"):
            Settings(bounce_listen_name=bad)


def test_a_bounce_for_a_row_no_longer_sent_leaves_it_and_logs_no_bounced_event(engine: Engine) -> None:
    ada = subscribe(engine, "ada@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    with transaction(engine, write=True) as session:
        session.execute(text("UPDATE deliveries SET state = 'failed' WHERE id = :id"), {"id": row_id})
    assert bounce(engine, Clock(NOW), "postfix_failed.eml", verp, 1) == "hard"
    with transaction(engine) as session:
        logged = session.exec(select(Event).where(Event.kind == "delivery_bounced")).all()
    assert (delivery(engine, row_id).state, logged) == ("failed", [])


def test_a_report_about_a_message_sent_weeks_ago_is_ignored(engine: Engine) -> None:
    # Relays give up within about 5 days; a bounce weeks later replays a VERP address someone has seen.
    ada = subscribe(engine, "ada@mission.example.net", NOW)
    row_id, verp = sent_row(engine, ada, NOW)
    assert bounce(engine, Clock(NOW + timedelta(days=15)), "postfix_failed.eml", verp, 1) == "stale"
    assert (delivery(engine, row_id).state, state_of(engine, ada), reports(engine)) == ("sent", "confirmed", [])
    assert bounce(engine, Clock(NOW + timedelta(days=13)), "postfix_failed.eml", verp, 2) == "hard"
