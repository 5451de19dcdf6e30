"""Bounces read and classified: real DSN samples, hard, soft, forged, and mail that is no bounce at all.

Samples: postfix_failed, postfix_delayed, gmail_failure, exchange_online_ndr and out_of_office
are written as those servers produce them (RFC 3464 reports of Postfix 3, Gmail and Exchange
Online; an Outlook automatic reply). flufl_*.eml come from flufl.bounce 6.0.0's own test corpus
(tests/data in its sdist, Apache-2.0): real bounces of Postfix, Exchange 5.5 (IMS), qmail,
Yahoo, a CommuniGate "simple" report and RFC 3464 DSNs, anonymised by their collector.
"""

from __future__ import annotations

import re

import pytest

from tests.support.bounces import BOUNCES, sample
from tests.support.delivery import SECRET
from tracker.bounces.reading import DIAGNOSTIC_MAX, read_bounce
from tracker.mail.verp import verp_address

VERP = verp_address(SECRET, BOUNCES, 1234)


@pytest.mark.parametrize(
    ("name", "kind", "status"),
    [
        ("postfix_failed.eml", "hard", "5.1.1"),
        ("gmail_failure.eml", "hard", "5.1.1"),
        ("exchange_online_ndr.eml", "hard", "5.1.10"),
        ("postfix_delayed.eml", "soft", "4.4.1"),
        ("flufl_postfix_01.eml", "hard", "5.1.1"),
        ("flufl_microsoft_01.eml", "hard", ""),
        ("flufl_dsn_01.eml", "hard", "5.0.0"),
        ("flufl_dsn_05.eml", "soft", "4.4.1"),
        ("flufl_qmail_01.eml", "hard", ""),
        ("flufl_yahoo_01.eml", "hard", ""),
        ("flufl_simple_01.eml", "hard", ""),
    ],
)
def test_each_sample_is_classified_and_matched_to_its_delivery(name: str, kind: str, status: str) -> None:
    # The relay forwards each to the tagged address: the envelope names the delivery, whatever the report's text.
    reading = read_bounce(sample(name, VERP), secret=SECRET, bounce_address=BOUNCES, recipients=[VERP])
    assert reading.bounce is not None
    assert (reading.delivery_id, reading.forged, reading.bounce.kind, reading.bounce.status) == (
        1234,
        False,
        kind,
        status,
    )
    assert reading.bounce.diagnostic and len(reading.bounce.diagnostic) <= DIAGNOSTIC_MAX


@pytest.mark.parametrize("name", ["postfix_failed.eml", "gmail_failure.eml", "exchange_online_ndr.eml"])
def test_the_delivery_is_found_in_the_report_itself_without_the_envelope(name: str) -> None:
    reading = read_bounce(sample(name, VERP), secret=SECRET, bounce_address=BOUNCES)
    assert reading.delivery_id == 1234


def test_the_servers_reason_is_kept_as_one_printable_line() -> None:
    reading = read_bounce(sample("postfix_failed.eml", VERP), secret=SECRET, bounce_address=BOUNCES)
    assert reading.bounce is not None
    assert reading.bounce.diagnostic == (
        "550 5.1.1 <gone@mission.example.net>: Recipient address rejected: User unknown in virtual mailbox table"
    )


def test_an_automatic_reply_is_no_bounce() -> None:
    reading = read_bounce(sample("out_of_office.eml", VERP), secret=SECRET, bounce_address=BOUNCES)
    assert (reading.delivery_id, reading.bounce) == (1234, None)


def test_a_bounce_to_a_tag_with_a_wrong_signature_is_forged() -> None:
    forged = VERP.replace("+1234.", "+1235.")
    reading = read_bounce(sample("postfix_failed.eml", forged), secret=SECRET, bounce_address=BOUNCES)
    assert (reading.delivery_id, reading.forged) == (None, True)
    untagged = read_bounce(sample("postfix_failed.eml", "bounces+1234@example.org"), secret=SECRET,
                           bounce_address=BOUNCES)  # fmt: skip
    assert (untagged.delivery_id, untagged.forged) == (None, True)


def test_a_bounce_for_someone_elses_address_names_no_delivery() -> None:
    reading = read_bounce(sample("postfix_failed.eml", "list-bounces@example.net"), secret=SECRET,
                          bounce_address=BOUNCES)  # fmt: skip
    assert (reading.delivery_id, reading.forged) == (None, False)


def test_hostile_text_in_a_report_reaches_nothing_unbounded() -> None:
    data = sample("postfix_failed.eml", VERP).replace(
        b"Diagnostic-Code: smtp; 550 5.1.1", b"Diagnostic-Code: smtp; 550 5.1.1 \x1b[31m\x07" + b"A" * 100_000
    )
    reading = read_bounce(data, secret=SECRET, bounce_address=BOUNCES)
    assert reading.bounce is not None and reading.bounce.kind == "hard"
    assert len(reading.bounce.diagnostic) == DIAGNOSTIC_MAX and "\x1b" not in reading.bounce.diagnostic


def test_garbage_is_no_bounce_and_raises_nothing() -> None:
    for data in (b"", b"\x00\xff" * 1000, b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\n" * 50):
        reading = read_bounce(data, secret=SECRET, bounce_address=BOUNCES, recipients=[VERP])
        assert reading.bounce is None


def test_a_tagged_envelope_decides_alone_whatever_the_headers_say() -> None:
    # The sender writes the headers; the relay writes the envelope. A forged tag in the envelope
    # with a good-looking (seen) tag in a To header is forged, not that other delivery.
    forged = VERP.replace("+1234.", "+1235.")
    reading = read_bounce(sample("postfix_failed.eml", VERP), secret=SECRET, bounce_address=BOUNCES,
                          recipients=[forged])  # fmt: skip
    assert (reading.delivery_id, reading.forged) == (None, True)
    untagged = read_bounce(sample("postfix_failed.eml", VERP), secret=SECRET, bounce_address=BOUNCES,
                           recipients=["postmaster@example.org"])  # fmt: skip
    assert untagged.delivery_id == 1234  # no tag in the envelope: the headers are all there is


def test_a_detector_that_trips_does_not_stop_the_others() -> None:
    # flufl.bounce's Yale detector raises IndexError on a message without From; qmail's, after it, knows this one.
    data = re.sub(rb"(?im)^From:.*\r\n", b"", sample("flufl_qmail_01.eml", VERP), count=1)
    reading = read_bounce(data, secret=SECRET, bounce_address=BOUNCES, recipients=[VERP])
    assert reading.bounce is not None and reading.bounce.kind == "hard"


def test_bidi_controls_and_invisible_characters_are_taken_out_of_the_reason() -> None:
    # They would reorder or hide what a terminal, a page or a log shows around them.
    hostile = "\u202eevil\u2066 \u200b\u200f\ufeffok".encode()
    data = sample("flufl_postfix_01.eml", VERP).replace(b"said: 550", b"said: " + hostile + b" 550")
    data = data.replace(b"Content-Type: text/plain", b"Content-Type: text/plain; charset=utf-8", 1)
    reading = read_bounce(data, secret=SECRET, bounce_address=BOUNCES, recipients=[VERP])
    assert reading.bounce is not None
    assert "said: evil ok 550" in reading.bounce.diagnostic and reading.bounce.diagnostic.isprintable()


def test_undecodable_bytes_in_a_report_leave_no_replacement_characters() -> None:
    data = sample("postfix_failed.eml", VERP).replace(b"Recipient address", b"\xe2\x80\xae\xffevil\xfe")
    reading = read_bounce(data, secret=SECRET, bounce_address=BOUNCES, recipients=[VERP])
    assert reading.bounce is not None and "\ufffd" not in reading.bounce.diagnostic
    assert "evil rejected" in reading.bounce.diagnostic
