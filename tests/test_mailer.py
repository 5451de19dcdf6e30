"""The mailer against a real local SMTP server: intact delivery, a shared pool, every fault mapped."""

from __future__ import annotations

import asyncio
import email.policy
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.support.emails import LOCALES, SENDER, TEMPLATES, make_request
from tests.support.mailer import in_loop, mailer_for, make_message
from tests.support.smtp_server import (
    RemoteSMTPError,
    SMTPTestServer,
    closed_port,
    silent_listener,
)
from tracker.emails import Renderer
from tracker.mail import make_mailer
from tracker.mail.directory import DirectoryMailer, eml_name
from tracker.mail.smtp import DeliveryError, RateLimiter, SMTPMailer, SMTPServer, make_envelope, parse_smtp_url


@pytest.fixture(params=[True, False], ids=["pipelining", "one-command-at-a-time"])
def smtp(request: pytest.FixtureRequest) -> Iterator[SMTPTestServer]:
    with SMTPTestServer(pipelining=request.param) as server:
        yield server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def assert_same_message(received: EmailMessage, sent: EmailMessage) -> None:
    assert [(name, str(value)) for name, value in received.items()] == [
        (name, str(value)) for name, value in sent.items()
    ]
    received_parts, sent_parts = list(received.walk()), list(sent.walk())
    assert [part.get_content_type() for part in received_parts] == [part.get_content_type() for part in sent_parts]
    for got, want in zip(received_parts, sent_parts, strict=True):
        if not got.is_multipart():
            assert isinstance(got, EmailMessage) and isinstance(want, EmailMessage)
            # A parsed 8bit body keeps the wire's CRLF; a mail client reads it as plain line ends.
            assert got.get_content().replace("\r\n", "\n") == want.get_content().replace("\r\n", "\n")


@in_loop
async def test_it_delivers_a_message_intact(smtp: SMTPTestServer) -> None:
    message = make_message(calendar=True)
    async with mailer_for(smtp) as mailer:
        receipt = await mailer.send(message)
    assert receipt.reply == "250 2.0.0 Ok: queued as M1"
    assert receipt.refused == {}
    [mail] = smtp.received
    assert (mail.mail_from, mail.rcpt_tos) == ("tracker@example.org", ("ada@example.org",))
    assert mail.content == message.as_bytes(policy=email.policy.SMTP)
    assert_same_message(mail.parse(), message)
    assert b"\r\n..leading dot" not in mail.content  # the dot-stuffing was undone
    assert "SMTPUTF8" not in mail.mail_options


@in_loop
async def test_it_takes_the_envelope_from_to_cc_and_bcc_and_keeps_bcc_secret(smtp: SMTPTestServer) -> None:
    message = make_message(Cc="bob@example.org, ada@example.org", Bcc="eve@example.org")
    async with mailer_for(smtp) as mailer:
        await mailer.send(message)
    [mail] = smtp.received
    assert mail.rcpt_tos == ("ada@example.org", "bob@example.org", "eve@example.org")
    assert "Bcc" not in mail.parse()


@in_loop
async def test_it_uses_the_sender_and_recipients_given(smtp: SMTPTestServer) -> None:
    async with mailer_for(smtp) as mailer:
        await mailer.send(make_message(), sender="bounces@example.org", recipients=["list@example.org"])
    [mail] = smtp.received
    assert (mail.mail_from, mail.rcpt_tos) == ("bounces@example.org", ("list@example.org",))


@in_loop
async def test_it_asks_for_smtputf8_only_when_an_address_needs_it(smtp: SMTPTestServer) -> None:
    message = make_message(To="Jürgen <jürgen@exämple.org>")
    async with mailer_for(smtp) as mailer:
        await mailer.send(message)
    [mail] = smtp.received
    assert mail.rcpt_tos == ("jürgen@exämple.org",)
    assert "SMTPUTF8" in mail.mail_options
    # Raw UTF-8 in the header, as RFC 6532 wants (the email package parses such headers poorly).
    assert "To: Jürgen <jürgen@exämple.org>\r\n".encode() in mail.content


@in_loop
async def test_it_shares_at_most_the_configured_connections_among_concurrent_sends(smtp: SMTPTestServer) -> None:
    messages = [make_message(number) for number in range(20)]
    async with mailer_for(smtp, connections=3) as mailer:
        receipts = await asyncio.gather(*(mailer.send(message) for message in messages))
    assert all(receipt.reply.startswith("250 ") for receipt in receipts)
    assert sorted(mail.parse()["Message-ID"] for mail in smtp.received) == sorted(m["Message-ID"] for m in messages)
    assert smtp.sessions <= 3
    assert smtp.peak <= 3
    assert len({mail.session for mail in smtp.received}) == smtp.sessions


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
@pytest.mark.parametrize(
    ("reply", "code", "permanent"),
    [
        ("421 4.3.2 Service shutting down", 421, False),
        ("451 4.3.0 Try again later", 451, False),
        ("550 5.7.1 Rejected by policy", 550, True),
    ],
)
@in_loop
async def test_it_maps_the_servers_answer_to_temporary_or_permanent(
    smtp: SMTPTestServer, stage: Any, reply: str, code: int, permanent: bool
) -> None:
    smtp.answer(stage, reply)
    async with mailer_for(smtp) as mailer:
        with pytest.raises(DeliveryError) as raised:
            await mailer.send(make_message())
        smtp.clear_faults()
        await mailer.send(make_message(2))
    assert (raised.value.code, raised.value.permanent, raised.value.stage) == (code, permanent, stage.lower())
    assert reply[4:] in raised.value.message
    assert [mail.parse()["Message-ID"] for mail in smtp.received] == ["<delivery-2@tracker.test>"]
    # 421 means the server is closing the session; any other answer leaves it usable.
    assert smtp.sessions == (2 if code == 421 else 1)


@in_loop
async def test_a_refused_data_command_leaves_the_connection_ready_for_the_next_message(smtp: SMTPTestServer) -> None:
    smtp.answer("DATA command", "451 4.3.0 Not now", times=1)
    async with mailer_for(smtp) as mailer:
        with pytest.raises(DeliveryError) as raised:
            await mailer.send(make_message())
        await mailer.send(make_message(2))  # on the same connection: its envelope was reset
    assert (raised.value.code, raised.value.permanent) == (451, False)
    assert [mail.parse()["Message-ID"] for mail in smtp.received] == ["<delivery-2@tracker.test>"]
    assert smtp.sessions == 1


@in_loop
async def test_it_reports_a_refused_recipient_when_others_were_accepted(smtp: SMTPTestServer) -> None:
    smtp.answer("RCPT", "550 5.1.1 No such user", address="bob@example.org")
    async with mailer_for(smtp) as mailer:
        receipt = await mailer.send(make_message(Cc="bob@example.org"))
    assert receipt.refused == {"bob@example.org": (550, "5.1.1 No such user")}
    assert smtp.received[0].rcpt_tos == ("ada@example.org",)


@pytest.mark.parametrize(("bob_reply", "permanent"), [("550 5.1.1 No such user", True), ("450 4.2.1 Busy", False)])
@in_loop
async def test_it_fails_when_every_recipient_is_refused_permanently_only_if_all_are(
    smtp: SMTPTestServer, bob_reply: str, permanent: bool
) -> None:
    smtp.answer("RCPT", "550 5.1.1 No such user", address="ada@example.org")
    smtp.answer("RCPT", bob_reply, address="bob@example.org")
    async with mailer_for(smtp) as mailer:
        with pytest.raises(DeliveryError) as raised:
            await mailer.send(make_message(Cc="bob@example.org"))
        await mailer.send(make_message(2, To="carol@example.org"))
    assert (raised.value.permanent, raised.value.stage) == (permanent, "rcpt")
    assert "bob@example.org" in raised.value.message
    assert len(smtp.received) == 1 and smtp.sessions == 1  # the envelope was reset, the session kept


@in_loop
async def test_it_never_resends_when_the_connection_drops_during_data(smtp: SMTPTestServer) -> None:
    async with mailer_for(smtp) as mailer:
        await mailer.send(make_message(1))
        smtp.drop("DATA", times=1)
        with pytest.raises(DeliveryError) as raised:
            await mailer.send(make_message(2))
        await mailer.send(make_message(3))
    assert (raised.value.permanent, raised.value.stage) == (False, "data")
    # The server may have kept message 2, so only the caller may decide to send it again.
    assert [mail.parse()["Message-ID"] for mail in smtp.received] == [
        "<delivery-1@tracker.test>",
        "<delivery-3@tracker.test>",
    ]
    assert smtp.sessions == 2


@in_loop
async def test_it_retries_once_on_a_new_connection_when_a_pooled_one_broke_before_data(smtp: SMTPTestServer) -> None:
    async with mailer_for(smtp) as mailer:
        await mailer.send(make_message(1))
        smtp.drop("MAIL", times=1)
        await mailer.send(make_message(2))
        smtp.drop("RCPT", times=1)
        await mailer.send(make_message(3))
    assert len(smtp.received) == 3
    assert smtp.sessions == 3


@in_loop
async def test_it_retries_a_broken_pooled_connection_only_once(smtp: SMTPTestServer) -> None:
    async with mailer_for(smtp) as mailer:
        await mailer.send(make_message(1))
        smtp.drop("MAIL", times=2)
        with pytest.raises(DeliveryError) as raised:
            await mailer.send(make_message(2))
    assert (raised.value.permanent, raised.value.stage) == (False, "mail")
    assert smtp.sessions == 2  # the pooled one and one fresh one, no third


@in_loop
async def test_it_does_not_retry_when_a_new_connection_breaks(smtp: SMTPTestServer) -> None:
    smtp.drop("MAIL", times=1)
    async with mailer_for(smtp) as mailer:
        with pytest.raises(DeliveryError) as raised:
            await mailer.send(make_message())
    assert (raised.value.permanent, raised.value.stage) == (False, "mail")
    assert smtp.sessions == 1


@in_loop
async def test_it_reconnects_after_the_server_restarted(smtp: SMTPTestServer) -> None:
    async with mailer_for(smtp) as mailer:
        await mailer.send(make_message(1))
        smtp.restart()
        await mailer.send(make_message(2))
    assert len(smtp.received) == 2
    assert smtp.sessions == 2


@in_loop
async def test_it_fails_temporarily_when_nothing_listens() -> None:
    async with SMTPMailer.from_url(f"smtp://127.0.0.1:{closed_port()}", local_hostname="client.test") as mailer:
        with pytest.raises(DeliveryError) as raised:
            await mailer.send(make_message())
    assert (raised.value.permanent, raised.value.stage, raised.value.code) == (False, "connect", None)


@in_loop
async def test_it_gives_up_on_a_server_that_never_greets() -> None:
    with silent_listener() as port:
        url = f"smtp://127.0.0.1:{port}"
        async with SMTPMailer.from_url(url, connect_timeout=0.2, local_hostname="client.test") as mailer:
            with pytest.raises(DeliveryError) as raised:
                await mailer.send(make_message())
    assert (raised.value.permanent, raised.value.stage) == (False, "connect")


@in_loop
async def test_it_gives_up_on_a_server_that_stops_answering(smtp: SMTPTestServer) -> None:
    smtp.stall("DATA", times=1)
    async with mailer_for(smtp, timeout=0.5) as mailer:
        with pytest.raises(DeliveryError) as raised:
            await mailer.send(make_message(1))
        await mailer.send(make_message(2))
    assert (raised.value.permanent, raised.value.stage) == (False, "data")
    assert [mail.parse()["Message-ID"] for mail in smtp.received] == ["<delivery-2@tracker.test>"]
    assert smtp.sessions == 2


@in_loop
async def test_it_upgrades_with_starttls_to_a_trusted_certificate(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    with SMTPTestServer(starttls=server_tls) as server:
        async with mailer_for(server, url=f"{server.url}?starttls=true", tls_context=client_tls) as mailer:
            await mailer.send(make_message())
    assert server.received[0].tls


@in_loop
async def test_it_speaks_tls_from_the_start_with_smtps(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    with SMTPTestServer(implicit_tls=server_tls) as server:
        assert server.url.startswith("smtps://")
        async with mailer_for(server, tls_context=client_tls) as mailer:
            await mailer.send(make_message())
    assert len(server.received) == 1


@in_loop
async def test_it_refuses_a_certificate_it_does_not_trust(server_tls: ssl.SSLContext) -> None:
    with SMTPTestServer(starttls=server_tls) as server:
        async with mailer_for(server, url=f"{server.url}?starttls=true") as mailer:
            with pytest.raises(DeliveryError) as raised:
                await mailer.send(make_message())
    assert (raised.value.permanent, raised.value.stage) == (False, "connect")
    assert "certificate" in raised.value.message.lower()
    assert not server.received


@in_loop
async def test_it_does_not_go_on_in_the_clear_when_starttls_was_asked_for(smtp: SMTPTestServer) -> None:
    async with mailer_for(smtp, url=f"{smtp.url}?starttls=true") as mailer:
        with pytest.raises(DeliveryError) as raised:
            await mailer.send(make_message())
    assert (raised.value.permanent, raised.value.stage) == (False, "connect")
    assert not smtp.received


@in_loop
async def test_it_does_not_upgrade_plain_smtp_on_its_own(server_tls: ssl.SSLContext) -> None:
    # The relay offers STARTTLS with a certificate we cannot check; plain smtp:// must still work.
    with SMTPTestServer(starttls=server_tls) as server:
        async with mailer_for(server) as mailer:
            await mailer.send(make_message())
    assert not server.received[0].tls


@in_loop
async def test_it_logs_in_with_the_credentials_in_the_url() -> None:
    with SMTPTestServer(credentials={"tracker@example.org": "p@ss:w/rd %"}) as server:
        url = f"smtp://tracker%40example.org:p%40ss%3Aw%2Frd%20%25@127.0.0.1:{server.port}"
        async with mailer_for(server, url=url) as mailer:
            await mailer.send(make_message())
    assert server.logins == [("PLAIN", "tracker@example.org")]
    assert server.received[0].login == "tracker@example.org"


@in_loop
async def test_it_fails_temporarily_on_a_wrong_password() -> None:
    # A misconfigured relay must not count against the recipients' addresses.
    with SMTPTestServer(credentials={"tracker": "right"}) as server:
        async with mailer_for(server, url=f"smtp://tracker:wrong@127.0.0.1:{server.port}") as mailer:
            with pytest.raises(DeliveryError) as raised:
                await mailer.send(make_message())
    assert (raised.value.permanent, raised.value.stage, raised.value.code) == (False, "connect", 535)


@in_loop
async def test_it_says_quit_on_every_pooled_connection_when_closed(smtp: SMTPTestServer) -> None:
    mailer = mailer_for(smtp, connections=2)
    await asyncio.gather(*(mailer.send(make_message(number)) for number in range(6)))
    await mailer.close()
    smtp.wait_until(lambda server: server.open_sessions == 0)
    assert smtp.quits == smtp.sessions
    with pytest.raises(RuntimeError):
        await mailer.send(make_message())


@in_loop
async def test_it_refuses_an_envelope_without_recipients_or_with_injected_commands(smtp: SMTPTestServer) -> None:
    message = make_message()
    del message["To"]
    async with mailer_for(smtp) as mailer:
        with pytest.raises(DeliveryError) as no_one:
            await mailer.send(message)
        with pytest.raises(DeliveryError) as injected:
            await mailer.send(make_message(), recipients=["ada@example.org>\r\nRCPT TO:<eve@example.org"])
    assert (no_one.value.permanent, no_one.value.stage) == (True, "envelope")
    assert (injected.value.permanent, injected.value.stage) == (True, "envelope")
    assert smtp.sessions == 0


def test_it_refuses_to_connect_to_a_remote_smtp_server(remote_smtp_attempts: list[str]) -> None:
    async def send() -> None:
        async with SMTPMailer.from_url("smtp://mail.example.org:25", local_hostname="client.test") as mailer:
            await mailer.send(make_message())

    with pytest.raises(RemoteSMTPError):
        asyncio.run(send())
    assert remote_smtp_attempts == ["mail.example.org:25"]
    remote_smtp_attempts.clear()


class FakeClock:
    """A clock that only moves when told to; sleeps are recorded, not slept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@in_loop
async def test_it_spaces_concurrent_messages_by_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
    await asyncio.gather(*(limiter.wait() for _ in range(5)))
    assert clock.sleeps == pytest.approx([0.25, 0.5, 0.75, 1.0])


@in_loop
async def test_it_waits_only_for_the_rest_of_the_interval_and_saves_no_credit_while_idle() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)
    await limiter.wait()
    clock.now = 0.1
    await limiter.wait()
    clock.now = 60.0
    await limiter.wait()
    await limiter.wait()
    assert clock.sleeps == pytest.approx([0.15, 0.25])


@in_loop
async def test_it_sends_through_the_rate_limiter(smtp: SMTPTestServer) -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    async with SMTPMailer(parse_smtp_url(smtp.url), limiter=limiter, local_hostname="client.test") as mailer:
        for number in range(3):
            await mailer.send(make_message(number))
    assert clock.sleeps == pytest.approx([0.5, 1.0])
    assert len(smtp.received) == 3


def test_it_rejects_a_rate_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("smtp://relay.example.org", SMTPServer("relay.example.org", 25)),
        ("smtp://relay.example.org?starttls=true", SMTPServer("relay.example.org", 587, starttls=True)),
        ("smtps://relay.example.org", SMTPServer("relay.example.org", 465, use_tls=True)),
        (
            "smtp://me%40example.org:p%40ss%3Aw%2Frd@relay.example.org:2525?starttls=1",
            SMTPServer("relay.example.org", 2525, "me@example.org", "p@ss:w/rd", starttls=True),
        ),
        ("smtp://127.0.0.1:1025?starttls=false", SMTPServer("127.0.0.1", 1025)),
    ],
)
def test_it_reads_the_smtp_url(url: str, server: SMTPServer) -> None:
    assert parse_smtp_url(url) == server


@pytest.mark.parametrize(
    "url",
    [
        "http://relay.example.org",
        "smtp://",
        "smtp://relay.example.org?tls=true",
        "smtp://relay.example.org?starttls=maybe",
        "smtps://relay.example.org?starttls=true",
    ],
)
def test_it_rejects_a_bad_smtp_url(url: str) -> None:
    with pytest.raises(ValueError):
        parse_smtp_url(url)


def test_it_keeps_the_password_out_of_reprs() -> None:
    assert "secret" not in repr(parse_smtp_url("smtp://me:secret@relay.example.org"))


def test_it_takes_the_envelope_from_the_headers() -> None:
    envelope = make_envelope(make_message(Sender="bounces@example.org", Cc="Bob <bob@example.org>"))
    assert (envelope.sender, envelope.recipients) == ("bounces@example.org", ("ada@example.org", "bob@example.org"))


@in_loop
async def test_it_writes_an_eml_file_with_the_bytes_of_the_message(tmp_path: Path) -> None:
    message = make_message(calendar=True)
    receipt = await DirectoryMailer(tmp_path / "outbox").send(message)
    [path] = (tmp_path / "outbox").iterdir()
    assert path.name == "delivery-1@tracker.test.eml"
    assert receipt.reply == f"written to {path}"
    assert path.read_bytes() == message.as_bytes(policy=email.policy.SMTP)
    with path.open("rb") as file:
        parsed = email.message_from_binary_file(file, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert_same_message(parsed, message)


@in_loop
async def test_it_replaces_the_file_when_the_same_message_is_written_again(tmp_path: Path) -> None:
    mailer = DirectoryMailer(tmp_path)
    await asyncio.gather(*(mailer.send(make_message(7)) for _ in range(5)))
    assert [path.name for path in tmp_path.iterdir()] == ["delivery-7@tracker.test.eml"]


@in_loop
async def test_it_leaves_no_partial_file_when_writing_fails(tmp_path: Path) -> None:
    # A folder where the file should go makes the final rename fail after the data was written.
    (tmp_path / "delivery-1@tracker.test.eml").mkdir()
    with pytest.raises(DeliveryError) as raised:
        await DirectoryMailer(tmp_path).send(make_message())
    assert (raised.value.permanent, raised.value.stage) == (False, "write")
    assert [path.name for path in tmp_path.iterdir()] == ["delivery-1@tracker.test.eml"]


@pytest.mark.parametrize("message_id", ["<../../etc/passwd>", "<a/b@c>", "<.hidden@x>", f"<{'x' * 300}@y>"])
def test_it_names_files_safely(message_id: str) -> None:
    message = make_message()
    message.replace_header("Message-ID", message_id)
    name = eml_name(message)
    assert "/" not in name and not name.startswith(".") and name.endswith(".eml") and len(name) < 200


def test_it_picks_the_directory_mailer_without_an_smtp_url(tmp_path: Path) -> None:
    mailer = make_mailer("", tmp_path, connections=4, rate=None)
    assert isinstance(mailer, DirectoryMailer) and mailer.folder == tmp_path


def test_it_picks_the_smtp_mailer_for_an_smtp_url(tmp_path: Path) -> None:
    mailer = make_mailer("smtp://relay.example.org:2525", tmp_path, connections=3, rate=10)
    assert isinstance(mailer, SMTPMailer)
    assert (mailer.server, mailer.connections) == (SMTPServer("relay.example.org", 2525), 3)
    assert mailer.limiter is not None and mailer.limiter.interval == pytest.approx(0.1)


# --- pre-flattened bytes -------------------------------------------------------------------------


def wire_bytes(number: int = 1) -> bytes:
    """A message as render_bytes gives it: CRLF line ends, 7-bit; a lone dot and a leading dot to stuff."""
    head = (
        f"From: Tracker <tracker@example.org>\r\nTo: Ada Lovelace <ada@example.org>\r\nSubject: Rappel {number}\r\n"
        f"Message-ID: <delivery-{number}@tracker.test>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
    )
    return (head + "\r\nCommentaires attendus le 24 f=C3=A9vrier.\r\n.\r\n.leading dot\r\n").encode("ascii")


class SevenBitServer(SMTPTestServer):
    """A test server that does not offer 8BITMIME (aiosmtpd leaves it out when it decodes data)."""

    def _make_session(self) -> Any:
        session = super()._make_session()
        session._decode_data = True
        return session


@in_loop
async def test_it_delivers_bytes_as_they_are_to_the_envelope_given(smtp: SMTPTestServer) -> None:
    data = wire_bytes()
    async with mailer_for(smtp) as mailer:
        receipt = await mailer.send_bytes(data, sender="bounces@example.org", recipients=["ada@example.org"])
    assert receipt.reply == "250 2.0.0 Ok: queued as M1"
    [mail] = smtp.received
    assert (mail.mail_from, mail.rcpt_tos, mail.content) == ("bounces@example.org", ("ada@example.org",), data)
    assert "BODY=8BITMIME" in mail.mail_options and f"SIZE={len(data)}" in mail.mail_options


@pytest.mark.parametrize(
    "data",
    [
        b"Subject: x\r\n\r\nline\r\n",  # on the wire already: sent as it is
        b"Subject: x\n\nline\n.\n.dot\n",  # Unix line ends, a lone dot, a leading dot
        b"Subject: x\r\n\r\nbare\rcarriage\r\n",  # a CR alone
        b"Subject: x\r\n\r\nmixed\nends\r\n..two dots\r\n",
        b"Subject: x\r\n\r\nno line end at the end",
        b".starts with a dot\r\n",
    ],
)
def test_bytes_go_on_the_wire_as_aiosmtplib_would_send_them(data: bytes) -> None:
    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    from tracker.mail.smtp import on_the_wire

    # aiosmtplib's own DATA step is the reference: the shortcut for clean bytes must change nothing.
    assert on_the_wire(data) == PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"


@in_loop
async def test_bytes_with_unix_line_ends_arrive_with_crlf_and_their_dots(smtp: SMTPTestServer) -> None:
    data = wire_bytes().replace(b"\r\n", b"\n")
    async with mailer_for(smtp) as mailer:
        await mailer.send_bytes(data, sender="bounces@example.org", recipients=["ada@example.org"])
    [mail] = smtp.received
    assert mail.content == wire_bytes()  # the server undid the dot-stuffing: ".\r\n" and ".leading dot" intact


@in_loop
async def test_a_rendered_message_arrives_the_same_as_bytes_or_as_a_message(smtp: SMTPTestServer) -> None:
    renderer = Renderer(TEMPLATES, LOCALES, SENDER)
    request = make_request("reminder", "en")  # a long List-Unsubscribe: it must arrive unfolded both ways
    address = request.recipient.email
    async with mailer_for(smtp) as mailer:
        await mailer.send(renderer.render(request))
        await mailer.send_bytes(renderer.render_bytes(request), sender="tracker@example.org", recipients=[address])
    as_message, as_bytes = (mail.content for mail in smtp.received)
    assert as_message == as_bytes == bytes(renderer.render(request))


@in_loop
async def test_bytes_share_the_pool_and_the_rate_limiter_with_messages(smtp: SMTPTestServer) -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    async with SMTPMailer(parse_smtp_url(smtp.url), connections=2, limiter=limiter, local_hostname="x") as mailer:
        await asyncio.gather(
            *(mailer.send_bytes(wire_bytes(n), sender="a@example.org", recipients=["b@example.org"]) for n in range(3)),
            mailer.send(make_message(3)),
        )
    assert len(smtp.received) == 4 and smtp.sessions <= 2
    assert clock.sleeps == pytest.approx([0.5, 1.0, 1.5])


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
@pytest.mark.parametrize(("reply", "permanent"), [("451 4.3.0 Try again later", False), ("550 5.7.1 Rejected", True)])
@in_loop
async def test_bytes_map_the_servers_answer_as_messages_do(
    smtp: SMTPTestServer, stage: Any, reply: str, permanent: bool
) -> None:
    smtp.answer(stage, reply, times=1)
    async with mailer_for(smtp) as mailer:
        with pytest.raises(DeliveryError) as raised:
            await mailer.send_bytes(wire_bytes(1), sender="a@example.org", recipients=["b@example.org"])
        await mailer.send_bytes(wire_bytes(2), sender="a@example.org", recipients=["b@example.org"])
    assert (raised.value.code, raised.value.permanent, raised.value.stage) == (int(reply[:3]), permanent, stage.lower())
    assert [mail.parse()["Message-ID"] for mail in smtp.received] == ["<delivery-2@tracker.test>"]
    assert smtp.sessions == 1


@in_loop
async def test_bytes_are_retried_on_a_new_connection_when_a_pooled_one_broke_but_never_after_data(
    smtp: SMTPTestServer,
) -> None:
    async with mailer_for(smtp) as mailer:
        await mailer.send_bytes(wire_bytes(1), sender="a@example.org", recipients=["b@example.org"])
        smtp.drop("MAIL", times=1)
        await mailer.send_bytes(wire_bytes(2), sender="a@example.org", recipients=["b@example.org"])
        smtp.drop("DATA", times=1)
        with pytest.raises(DeliveryError) as raised:
            await mailer.send_bytes(wire_bytes(3), sender="a@example.org", recipients=["b@example.org"])
    assert (raised.value.permanent, raised.value.stage) == (False, "data")
    assert [mail.parse()["Message-ID"] for mail in smtp.received] == [
        "<delivery-1@tracker.test>",
        "<delivery-2@tracker.test>",
    ]


@pytest.mark.parametrize(
    ("sender", "recipients"),
    [("a@example.org", []), ("", ["b@example.org"]), ("a@example.org", ["b@example.org>\r\nRCPT TO:<eve@example.org"])],
)
@in_loop
async def test_bytes_with_an_unusable_envelope_are_refused_before_connecting(
    smtp: SMTPTestServer, sender: str, recipients: list[str]
) -> None:
    async with mailer_for(smtp) as mailer:
        with pytest.raises(DeliveryError) as raised:
            await mailer.send_bytes(wire_bytes(), sender=sender, recipients=recipients)
    assert (raised.value.permanent, raised.value.stage) == (True, "envelope")
    assert smtp.sessions == 0


@in_loop
async def test_8_bit_bytes_are_refused_by_a_server_without_8bitmime_and_7_bit_ones_go() -> None:
    with SevenBitServer() as server:
        async with mailer_for(server) as mailer:
            with pytest.raises(DeliveryError) as raised:
                await mailer.send_bytes("Subject: é\r\n\r\né\r\n".encode(), sender="a@x.org", recipients=["b@x.org"])
            await mailer.send_bytes(wire_bytes(), sender="a@example.org", recipients=["b@example.org"])
    assert (raised.value.permanent, raised.value.stage) == (True, "mail")
    assert [mail.content for mail in server.received] == [wire_bytes()]
    assert "BODY=8BITMIME" not in server.received[0].mail_options


@in_loop
async def test_bytes_go_to_a_file_named_after_their_message_id(tmp_path: Path) -> None:
    mailer = DirectoryMailer(tmp_path)
    receipt = await mailer.send_bytes(wire_bytes(7), sender="a@example.org", recipients=["b@example.org"])
    [path] = tmp_path.iterdir()
    assert path.name == "delivery-7@tracker.test.eml" and receipt.reply == f"written to {path}"
    assert path.read_bytes() == wire_bytes(7)
    with pytest.raises(DeliveryError) as raised:
        await mailer.send_bytes(wire_bytes(8), sender="a@example.org", recipients=["b@example.org\nBcc: eve@x.org"])
    assert (raised.value.permanent, raised.value.stage) == (True, "envelope")
