"""PIPELINING (RFC 2920): the envelope in one write, replies read in order however they arrive, the hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from tests.support.mailer import in_loop, mailer_for, make_message
from tests.support.smtp_server import LOOPBACK, SMTPTestServer
from tracker.mail.smtp import DeliveryError, SMTPMailer

ENVELOPE_REPLIES = [b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n"]


@pytest.fixture(params=[True, False], ids=["pipelining", "one-command-at-a-time"])
def smtp(request: pytest.FixtureRequest) -> Iterator[SMTPTestServer]:
    with SMTPTestServer(pipelining=request.param) as server:
        yield server


@dataclass
class Scripted:
    """What a scripted server saw: the commands of each session, the messages it took."""

    commands: list[list[bytes]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    port: int = 0


Answer = Callable[[asyncio.StreamWriter, list[bytes]], Awaitable[bool]]  # False: hang up


@asynccontextmanager
async def scripted_server(answer_envelope: Answer) -> AsyncIterator[Scripted]:
    """An SMTP server offering PIPELINING that answers nothing of an envelope before it has all of it.

    A client that waits for the reply to MAIL before sending RCPT would wait forever.
    """
    seen = Scripted()

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        commands: list[bytes] = []
        seen.commands.append(commands)
        writer.write(b"220 scripted ESMTP\r\n")
        try:
            while line := await reader.readline():
                commands.append(line.rstrip())
                if line.startswith(b"EHLO"):
                    writer.write(b"250-scripted\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 1000000\r\n")
                elif line.startswith(b"DATA"):
                    if not await answer_envelope(writer, commands[-3:]):
                        break
                    seen.messages.append(await reader.readuntil(b"\r\n.\r\n"))
                    writer.write(b"250 2.0.0 queued\r\n")
                elif line.startswith((b"QUIT", b"RSET")):
                    writer.write(b"221 Bye\r\n" if line.startswith(b"QUIT") else b"250 Ok\r\n")
                elif not line.startswith((b"MAIL", b"RCPT")):
                    writer.write(b"502 not scripted\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(session, LOOPBACK, 0)
    seen.port = server.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        server.close()


def scripted_mailer(seen: Scripted, timeout: float = 2.0) -> SMTPMailer:
    return SMTPMailer.from_url(f"smtp://{LOOPBACK}:{seen.port}", timeout=timeout, connect_timeout=2.0,
                               local_hostname="client.test")  # fmt: skip


async def all_at_once(writer: asyncio.StreamWriter, envelope: list[bytes]) -> bool:
    writer.write(b"".join(ENVELOPE_REPLIES))
    return True


async def one_by_one(writer: asyncio.StreamWriter, envelope: list[bytes]) -> bool:
    for reply in ENVELOPE_REPLIES:
        writer.write(reply)
        await writer.drain()
        await asyncio.sleep(0.02)  # separate packets, each read on its own
    return True


@pytest.mark.parametrize("answer", [all_at_once, one_by_one], ids=["one-packet", "three-packets"])
@in_loop
async def test_the_envelope_goes_in_one_write_and_the_replies_are_read_in_order(answer: Answer) -> None:
    async with scripted_server(answer) as seen, scripted_mailer(seen) as mailer:
        first = await mailer.send(make_message(1))
        second = await mailer.send(make_message(2))  # the same connection: nothing was left unread
    assert first.reply == second.reply == "250 2.0.0 queued"
    assert len(seen.commands) == 1
    envelope = [c for c in seen.commands[0] if not c.startswith((b"EHLO", b"QUIT"))]
    assert envelope == [b"MAIL FROM:<tracker@example.org> BODY=8BITMIME SIZE=" + envelope[0].split(b"SIZE=")[1],
                        b"RCPT TO:<ada@example.org>", b"DATA"] * 2  # fmt: skip
    assert [b"<delivery-1@tracker.test>" in seen.messages[0], b"<delivery-2@tracker.test>" in seen.messages[1]] == [
        True,
        True,
    ]


@in_loop
async def test_a_server_that_takes_data_after_refusing_every_recipient_gets_no_message() -> None:
    answers = iter([b"".join(ENVELOPE_REPLIES)])

    async def refuse_then_take(writer: asyncio.StreamWriter, envelope: list[bytes]) -> bool:
        # After a first message, every recipient refused and DATA taken anyway (not as RFC 2920 asks).
        writer.write(next(answers, b"250 2.1.0 Ok\r\n550 5.1.1 No such user\r\n354 go ahead\r\n"))
        return True

    async with scripted_server(refuse_then_take) as seen, scripted_mailer(seen) as mailer:
        await mailer.send(make_message(1))
        with pytest.raises(DeliveryError) as raised:
            await mailer.send(make_message(2))  # on the pooled connection
        await asyncio.sleep(0.1)
    assert (raised.value.code, raised.value.permanent, raised.value.stage) == (550, True, "rcpt")
    [message] = seen.messages  # the connection was closed instead of sending the content
    assert b"<delivery-1@tracker.test>" in message
    assert len(seen.commands) == 1  # a refusal is not tried again on a new connection


@in_loop
async def test_after_a_garbled_reply_the_next_message_goes_on_a_new_connection() -> None:
    answers = iter([b"XYZ garbled\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"])

    async def garbled_once(writer: asyncio.StreamWriter, envelope: list[bytes]) -> bool:
        writer.write(next(answers, b"".join(ENVELOPE_REPLIES)))
        return True

    # A connection kept out of step would wait for replies to the next envelope (the server takes
    # it for content) until this timeout, past the test's own limit.
    async with scripted_server(garbled_once) as seen, scripted_mailer(seen, timeout=60) as mailer:
        with pytest.raises(DeliveryError) as raised:
            await mailer.send(make_message(1))
        await mailer.send(make_message(2))
    assert (raised.value.permanent, raised.value.stage) == (False, "mail")
    assert len(seen.commands) == 2  # the first connection was out of step: closed, not reused
    [message] = seen.messages
    assert b"<delivery-2@tracker.test>" in message and b"MAIL FROM" not in message


@in_loop
async def test_replies_that_came_before_the_server_hung_up_are_read_first() -> None:
    async def close_at_rcpt(writer: asyncio.StreamWriter, envelope: list[bytes]) -> bool:
        writer.write(b"250 2.1.0 Ok\r\n421 4.3.2 Shutting down\r\n")
        await writer.drain()
        return False  # and hang up, as a relay going down does

    async with scripted_server(close_at_rcpt) as seen, scripted_mailer(seen) as mailer:
        with pytest.raises(DeliveryError) as raised:
            await mailer.send(make_message(1))
    assert (raised.value.code, raised.value.permanent) == (421, False)
    assert "Shutting down" in raised.value.message


@in_loop
async def test_the_server_cannot_have_the_message_before_the_hold_returns(smtp: SMTPTestServer) -> None:
    released = asyncio.Event()

    async def hold() -> None:
        await released.wait()

    async with mailer_for(smtp) as mailer:
        sending = asyncio.create_task(mailer.send_bytes(bytes(make_message(1)), sender="tracker@example.org",
                                                        recipients=["ada@example.org"], before_data=hold))  # fmt: skip
        await asyncio.sleep(0.3)
        assert smtp.received == []
        released.set()
        await sending
    assert len(smtp.received) == 1


@in_loop
async def test_a_failed_hold_sends_nothing_and_the_next_message_still_goes(smtp: SMTPTestServer) -> None:
    async def failing_hold() -> None:
        raise RuntimeError("the store could not record the last outcome")

    async with mailer_for(smtp) as mailer:
        with pytest.raises(RuntimeError):
            await mailer.send_bytes(bytes(make_message(1)), sender="tracker@example.org",
                                    recipients=["ada@example.org"], before_data=failing_hold)  # fmt: skip
        await mailer.send(make_message(2))
    await asyncio.sleep(0.1)
    assert [mail.parse()["Message-ID"] for mail in smtp.received] == ["<delivery-2@tracker.test>"]
