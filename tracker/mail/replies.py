"""Replies to pipelined SMTP commands (RFC 2920): aiosmtplib's protocol, but no reply is ever dropped.

With PIPELINING a client writes MAIL, RCPT and DATA at once and then reads three replies, which
may come in one packet or in three. aiosmtplib's SMTPProtocol expects one command per reply: it
parses the first reply of a packet and keeps the rest unread, and it drops whatever arrives
while no command is waiting. This subclass keeps every byte and hands replies out in order.

aiosmtplib builds its protocol itself (SMTP._create_connection), so the mailer switches an open
connection's protocol to this class once the server has said it offers PIPELINING. The state
is the same (the buffer and the one waiter), only the two methods that read it differ;
aiosmtplib's version is pinned and the mailer's tests run on both classes.
"""

from __future__ import annotations

import asyncio

from aiosmtplib import (
    SMTP,
    SMTPReadTimeoutError,
    SMTPResponse,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPStatus,
)
from aiosmtplib.protocol import MAX_RESPONSE_LENGTH, SMTPProtocol

# Unread replies kept at most: a few commands' worth. More is a server talking out of turn.
MAX_UNREAD = 8 * MAX_RESPONSE_LENGTH


class PipelinedProtocol(SMTPProtocol):
    """Keep every reply until it is read; read_response returns them one at a time, oldest first."""

    def data_received(self, data: bytes) -> None:
        waiter = self._response_waiter
        if waiter is None:  # the connection is gone
            return
        self._buffer.extend(data)
        if len(self._buffer) > MAX_UNREAD:
            self._give_up(waiter, SMTPResponseException(SMTPStatus.invalid_response.value, "Response too long"))
            return
        if waiter.done():  # it holds an older reply, not read yet: this one waits in the buffer
            return
        try:
            reply = self._read_response_from_buffer()
        except SMTPResponseException as exc:  # a malformed reply: the reader gets the error, as from aiosmtplib
            self._give_up(waiter, exc)
            return
        if reply is not None:
            waiter.set_result(reply)

    def _give_up(self, waiter: asyncio.Future[SMTPResponse], error: SMTPResponseException) -> None:
        """After a reply that cannot be read, no later one can be paired with its command: hang up."""
        self._buffer.clear()
        if not waiter.done():
            self._set_response_exception(waiter, error)
        if self.transport is not None:
            self.transport.close()

    async def read_response(self, timeout: float | None = None) -> SMTPResponse:
        waiter = self._response_waiter
        if waiter is None or not holds_reply(waiter):
            # A reply that came in the same packet as an earlier one: it is older than the next
            # packet, and than a lost connection (the waiter is then gone, or holds the error).
            reply = self._read_response_from_buffer()
            if reply is not None:
                return reply
        if waiter is None:
            raise SMTPServerDisconnected("Connection lost")
        try:
            if timeout is None:
                return await waiter
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError as exc:
            raise SMTPReadTimeoutError("Timed out waiting for server response") from exc
        finally:
            self._response_pending = False
            self._response_waiter = None if self.transport is None else self._loop.create_future()


def holds_reply(waiter: asyncio.Future[SMTPResponse]) -> bool:
    return waiter.done() and not waiter.cancelled() and waiter.exception() is None


def read_replies_in_order(client: SMTP) -> bool:
    """Switch *client*'s connection to PipelinedProtocol if its server offers PIPELINING; tell whether it did."""
    protocol = client.protocol
    if protocol is None or not client.supports_extension("pipelining"):
        return False
    if type(protocol) is SMTPProtocol:
        protocol.__class__ = PipelinedProtocol  # same state, other readers: see the module's docstring
    return isinstance(protocol, PipelinedProtocol)
