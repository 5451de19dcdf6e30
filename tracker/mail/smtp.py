"""The pooled SMTP client: envelopes checked, commands pipelined (RFC 2920), every failure a DeliveryError.

With `replies`, the only module that imports aiosmtplib. A DeliveryError says whether trying
again later can help: 4xx and network trouble retry, 5xx is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import email.generator
import email.message
import email.parser
import email.policy
import io
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from aiosmtplib import (
    SMTP,
    SMTPDataError,
    SMTPException,
    SMTPRecipientRefused,
    SMTPResponse,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPStatus,
)
from aiosmtplib.email import extract_recipients, extract_sender, parse_address
from aiosmtplib.protocol import PERIOD_REGEX, SMTPProtocol, normalize_message_line_endings

from tracker.mail.replies import PipelinedProtocol, read_replies_in_order
from tracker.mail.wire import WireReady, crlf_only, dotted
from tracker.text import CONTROLS

Stage = Literal["envelope", "connect", "mail", "rcpt", "data", "write"]
# Failures at these stages happen before the server could have accepted the message.
BEFORE_DATA: frozenset[Stage] = frozenset({"mail", "rcpt"})
TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
NETWORK_ERRORS = (SMTPException, OSError, TimeoutError)
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


BeforeData = Callable[[], Awaitable[object]]  # awaited once the recipients are accepted, before the content


class DeliveryError(Exception):
    """A message was not accepted; `permanent` says whether retrying can ever help."""

    def __init__(self, message: str, *, permanent: bool, code: int | None = None, stage: Stage | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code
        # Where it failed (envelope, connect, mail, rcpt, data, write): only a permanent "rcpt" or
        # "data" error says something about the recipient; "connect" and "mail" are about the relay.
        self.stage = stage


@dataclass(frozen=True)
class Receipt:
    """What the server said when it took the message."""

    reply: str
    refused: Mapping[str, tuple[int, str]] = field(default_factory=dict)


Payload = email.message.EmailMessage | bytes  # a message, or one already flattened for the wire


class Mailer(Protocol):
    """Where rendered messages go: an SMTP relay, or files."""

    async def send(
        self, message: email.message.EmailMessage, *, sender: str | None = None, recipients: Sequence[str] | None = None
    ) -> Receipt: ...

    async def send_bytes(
        self, data: bytes, *, sender: str, recipients: Sequence[str], before_data: BeforeData | None = None
    ) -> Receipt: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Envelope:
    """The SMTP envelope of one message: who it is from and to, as sent in MAIL and RCPT."""

    sender: str
    recipients: tuple[str, ...]

    @property
    def needs_utf8(self) -> bool:
        """Tell whether an address needs SMTPUTF8 (RFC 6531)."""
        return not all(address.isascii() for address in (self.sender, *self.recipients))


def make_envelope(
    message: email.message.EmailMessage, sender: str | None = None, recipients: Sequence[str] | None = None
) -> Envelope:
    """Take the envelope from the arguments, else from From/Sender and To/Cc/Bcc; refuse unusable addresses."""
    try:
        sender = sender if sender is not None else extract_sender(message)
        found = recipients if recipients is not None else extract_recipients(message)
    except ValueError as exc:
        raise DeliveryError(f"unusable envelope: {exc}", permanent=True, stage="envelope") from exc
    return envelope_of(sender, found)


def envelope_of(sender: str | None, recipients: Sequence[str]) -> Envelope:
    """Check and parse the envelope's addresses; refuse unusable ones as a permanent DeliveryError."""
    try:
        found = [recipients] if isinstance(recipients, str) else list(recipients)
        if any(CONTROLS.search(address) for address in (sender or "", *found)):
            # parse_address would quietly keep the part before a CR/LF; a caller's bug should show.
            raise ValueError("control character in an address")
        addresses = tuple(dict.fromkeys(bare_address(address) for address in found))
        if not sender or not addresses:
            raise ValueError("no sender" if not sender else "no recipients")
        return Envelope(bare_address(sender), addresses)
    except ValueError as exc:
        raise DeliveryError(f"unusable envelope: {exc}", permanent=True, stage="envelope") from exc


def bare_address(address: str) -> str:
    """Return the address alone ('Ada <ada@example.org>' gives 'ada@example.org'); raise ValueError if unusable."""
    # A plain address is its own result, without parseaddr's pure-Python scan (twice a message).
    return address if PLAIN_ADDRESS.fullmatch(address) else parse_address(address)


def flatten(message: email.message.EmailMessage, *, utf8: bool = False, eight_bit: bool = True) -> bytes:
    """Render *message* as it goes on the wire: CRLF line ends, Bcc removed, headers folded as its policy says."""
    # As aiosmtplib's flatten_message, but for the line length: that one folds every header at 78,
    # which breaks a long List-Unsubscribe URL into RFC 2047 words (render.HEADERS_POLICY's 998).
    outgoing = copy.copy(message)
    del outgoing["Bcc"]
    del outgoing["Resent-Bcc"]
    policy = (email.policy.SMTPUTF8 if utf8 else email.policy.SMTP).clone(
        cte_type="8bit" if eight_bit else "7bit", max_line_length=message.policy.max_line_length
    )
    with io.BytesIO() as out:
        email.generator.BytesGenerator(out, policy=policy).flatten(outgoing)
        return out.getvalue()


@dataclass(frozen=True)
class SMTPServer:
    """Where and how to connect, parsed from TRACKER_SMTP_URL."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    use_tls: bool = False  # smtps://: TLS from the first byte
    starttls: bool = False  # smtp://…?starttls=true: upgrade, and refuse to go on without it


def parse_smtp_url(url: str) -> SMTPServer:
    """Read smtp://user:pass@host:port[?starttls=true] or smtps://…; percent-escapes are decoded."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"not an smtp:// or smtps:// URL with a host: {url!r}")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    starttls = _flag(options.pop("starttls", "false"))
    if options:
        raise ValueError(f"unknown SMTP URL option(s): {', '.join(sorted(options))}")
    if starttls and parts.scheme == "smtps":
        raise ValueError("smtps:// is TLS already; starttls=true applies to smtp:// only")
    use_tls = parts.scheme == "smtps"
    return SMTPServer(
        host=parts.hostname,
        port=parts.port or (465 if use_tls else 587 if starttls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        use_tls=use_tls,
        starttls=starttls,
    )


def _flag(value: str) -> bool:
    if value.lower() in TRUE | FALSE:
        return value.lower() in TRUE
    raise ValueError(f"starttls must be true or false, not {value!r}")


class RateLimiter:
    """Space message starts at least 1/rate seconds apart, across every task that shares it."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next_at = float("-inf")

    async def wait(self) -> None:
        """Return when the caller may start its message."""
        now = self._clock()
        start = max(now, self._next_at)
        # Reserve the slot before sleeping, so concurrent callers queue up behind it; an idle
        # spell earns no credit, hence no burst after it.
        self._next_at = start + self.interval
        if start > now:
            await self._sleep(start - now)


class _StaleConnectionError(Exception):
    """A pooled connection broke before the server could have accepted the message."""


class SMTPMailer:
    """Send through at most `connections` long-lived SMTP connections, shared by concurrent tasks."""

    def __init__(
        self,
        server: SMTPServer,
        *,
        connections: int = 4,
        limiter: RateLimiter | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if connections < 1:
            raise ValueError("at least one connection is needed")
        self.server = server
        self.connections = connections
        self.limiter = limiter
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._tls_context = tls_context
        self._local_hostname = local_hostname
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[SMTP] = []
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        connections: int = 4,
        rate: float | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> SMTPMailer:
        """Build a mailer for TRACKER_SMTP_URL; `rate` is messages per second, None for unlimited."""
        return cls(
            parse_smtp_url(url),
            connections=connections,
            limiter=RateLimiter(rate) if rate else None,
            timeout=timeout,
            connect_timeout=connect_timeout,
            tls_context=tls_context,
            local_hostname=local_hostname,
        )

    async def send(
        self, message: email.message.EmailMessage, *, sender: str | None = None, recipients: Sequence[str] | None = None
    ) -> Receipt:
        """Hand *message* to the server; raise DeliveryError unless at least one recipient was accepted."""
        self._check_open()
        return await self._send(message, make_envelope(message, sender, recipients))

    async def send_bytes(
        self, data: bytes, *, sender: str, recipients: Sequence[str], before_data: BeforeData | None = None
    ) -> Receipt:
        """Hand *data*, a message as it goes on the wire (CRLF line ends, no Bcc), to the server, as send does.

        The bytes go as they are: when they are not all ASCII, the server must offer 8BITMIME.
        *before_data*, if given, is awaited once the recipients are accepted and before the
        content goes (before DATA, or after its 354 when the commands are pipelined): the server
        cannot have the message until it returns. If it raises, the transaction is reset (or,
        after a 354, the connection closed).
        """
        self._check_open()
        return await self._send(data, envelope_of(sender, recipients), before_data)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the mailer is closed")

    async def _send(self, payload: Payload, envelope: Envelope, before_data: BeforeData | None = None) -> Receipt:
        async with self._slots:
            if self.limiter is not None:
                await self.limiter.wait()
            try:
                return await self._attempt(payload, envelope, before_data, fresh=False)
            except _StaleConnectionError:
                # Nothing reached the server, so one more try on a new connection cannot duplicate it.
                return await self._attempt(payload, envelope, before_data, fresh=True)

    async def __aenter__(self) -> SMTPMailer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Say QUIT on every idle connection; connections still sending are closed when they finish."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._quit(client) for client in idle))

    async def _attempt(
        self, payload: Payload, envelope: Envelope, before_data: BeforeData | None, *, fresh: bool
    ) -> Receipt:
        client, reused = (await self._connect(), False) if fresh else await self._checkout()
        keep = False
        try:
            receipt = await self._transact(client, payload, envelope, before_data)
            keep = True
            return receipt
        except DeliveryError as error:
            # After a server's answer the connection is still in step; after anything else it is not.
            keep = client.is_connected
            # Without a reply, or with a 421 (the session is closing): not about this message.
            if reused and not keep and error.stage in BEFORE_DATA and error.code in (None, 421):
                raise _StaleConnectionError from error
            raise
        finally:
            self._checkin(client, keep=keep)

    async def _checkout(self) -> tuple[SMTP, bool]:
        while self._idle:
            client = self._idle.pop()  # the most recently used is the least likely to have timed out
            if client.is_connected:
                return client, True
            client.close()
        return await self._connect(), False

    def _checkin(self, client: SMTP, *, keep: bool) -> None:
        if keep and client.is_connected and not self._closed:
            self._idle.append(client)
        else:
            client.close()

    async def _connect(self) -> SMTP:
        if self._local_hostname is None:
            # aiosmtplib would look this up again for every connection.
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        client = SMTP(
            hostname=self.server.host,
            port=self.server.port,
            username=self.server.username,
            password=self.server.password,
            use_tls=self.server.use_tls,
            # False, not aiosmtplib's default None: never upgrade opportunistically and then
            # fail on a relay's self-signed certificate when plain smtp:// was asked for.
            start_tls=self.server.starttls,
            tls_context=self._tls_context,
            local_hostname=self._local_hostname,
            timeout=self.timeout,
        )
        try:
            async with asyncio.timeout(self.connect_timeout):
                await client.connect()
                if client.is_ehlo_or_helo_needed:
                    await client.ehlo()
            read_replies_in_order(client)  # so that MAIL, RCPT and DATA can go in one write
        except NETWORK_ERRORS as exc:
            client.close()
            # Even a 5xx here (bad password, EHLO refused) is about the relay, not this message.
            raise _to_delivery_error(exc, "connect", permanent=False) from exc
        return client

    async def _quit(self, client: SMTP) -> None:
        try:
            async with asyncio.timeout(self.connect_timeout):
                await client.quit()
        except NETWORK_ERRORS:
            pass  # it is being closed anyway
        finally:
            client.close()

    async def _transact(
        self, client: SMTP, payload: Payload, envelope: Envelope, before_data: BeforeData | None = None
    ) -> Receipt:
        # A deadline for the envelope and one for the data, each kept by one timer: a timeout for
        # each reply cost a timer and two more turns of the loop, four times a message.
        data, options = self._prepare(client, payload, envelope)
        if isinstance(client.protocol, PipelinedProtocol):
            return await self._transact_pipelined(client, data, options, envelope, before_data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        stage: Stage = "mail"
        try:
            async with asyncio.timeout_at(deadline):
                await _mail(client, envelope, options)
                stage = "rcpt"
                refused = await self._recipients(client, envelope)
            if before_data is not None:
                await self._hold(client, before_data, deadline)
            stage = "data"
            # Counted from here: the hold waits for our own store, which says nothing of the server.
            deadline = loop.time() + self.timeout
            async with asyncio.timeout_at(deadline):
                reply = await _data(client, data, deadline)
        except NETWORK_ERRORS as exc:
            if isinstance(exc, TimeoutError) or (isinstance(exc, SMTPResponseException) and exc.code == 421):
                # A reply that comes after the timeout would be taken for the next command's. A 421:
                # the server is closing the session (aiosmtplib notices that for MAIL and RCPT, not DATA).
                client.close()
            elif stage in BEFORE_DATA:
                await _reset(client, deadline)
            raise _to_delivery_error(exc, stage) from exc
        return Receipt(reply=f"{reply.code} {reply.message}", refused=refused)

    async def _transact_pipelined(
        self, client: SMTP, data: bytes, options: Sequence[str], envelope: Envelope, before_data: BeforeData | None
    ) -> Receipt:
        """MAIL, every RCPT and DATA in one write, their replies read in order (RFC 2920); then the message.

        Half the round trips of one command at a time. *before_data* is awaited after the 354:
        the server cannot have the message before the content and its end mark are written.
        """
        loop = asyncio.get_running_loop()
        stage: Stage = "mail"
        try:
            protocol = _protocol(client)
            protocol.write(_envelope_commands(envelope, options))
            async with asyncio.timeout(self.timeout):
                replies = await _envelope_replies(protocol, len(envelope.recipients) + 2)
            refused, failure = judge_envelope(envelope, replies)
            if failure is not None:
                stage = failure[0]
                await _abandon(client, replies, loop.time() + self.timeout)
                raise failure[1]
            if before_data is not None:
                await _hold_open_data(client, before_data)
            stage = "data"
            async with asyncio.timeout(self.timeout):
                reply = await _content(client, data)
        except NETWORK_ERRORS as exc:
            if not _answered_in_step(exc):
                client.close()  # out of step with the server, or the server is closing the session
            raise _to_delivery_error(exc, stage) from exc
        return Receipt(reply=f"{reply.code} {reply.message}", refused=refused)

    async def _hold(self, client: SMTP, before_data: BeforeData, deadline: float) -> None:
        """Wait for the caller's condition with the envelope accepted; reset the transaction if it fails."""
        try:
            await before_data()
        except BaseException:
            with contextlib.suppress(*NETWORK_ERRORS):
                await _reset(client, deadline)
            raise

    def _prepare(self, client: SMTP, payload: Payload, envelope: Envelope) -> tuple[bytes, list[str]]:
        utf8 = envelope.needs_utf8  # SMTPUTF8 only when an address needs it, as few relays need to support it
        if utf8 and not client.supports_extension("smtputf8"):
            raise DeliveryError("an address is not ASCII and the server lacks SMTPUTF8", permanent=True, stage="mail")
        eight_bit = client.supports_extension("8bitmime")
        if isinstance(payload, bytes):
            # Bytes cannot be encoded again for a 7-bit server, as a message is.
            if not eight_bit and not payload.isascii():
                raise DeliveryError("the message is 8-bit and the server lacks 8BITMIME", permanent=True, stage="mail")
            data = payload
        else:
            data = flatten(payload, utf8=utf8, eight_bit=eight_bit)
        options = ["BODY=8BITMIME"] if eight_bit else []
        if client.supports_extension("size"):
            options.append(f"SIZE={len(data)}")
        if utf8:
            options.append("SMTPUTF8")
        return data, options

    async def _recipients(self, client: SMTP, envelope: Envelope) -> dict[str, tuple[int, str]]:
        refused: dict[str, tuple[int, str]] = {}
        for address in envelope.recipients:
            try:
                await _rcpt(client, address, _encoding(envelope))
            except SMTPRecipientRefused as exc:
                if not client.is_connected:  # a 421 ends the session: it is not about this address
                    raise
                refused[address] = (exc.code, exc.message)
        if len(refused) == len(envelope.recipients):
            raise _AllRefused(refused)
        return refused


class _AllRefused(SMTPException):
    """The server refused every recipient of a message."""

    def __init__(self, refused: Mapping[str, tuple[int, str]]) -> None:
        super().__init__("; ".join(f"{address}: {code} {text}" for address, (code, text) in refused.items()))
        self.codes = [code for code, _ in refused.values()]


# The transaction's commands, as aiosmtplib's SMTP.mail, rcpt and data send them, less the work
# they repeat for every message: parsing addresses that envelope_of already checked (twice a
# message) and two regular-expression passes over a message that is usually on the wire already.


async def _mail(client: SMTP, envelope: Envelope, options: Sequence[str]) -> SMTPResponse:
    sender = f"<{envelope.sender}>".encode(_encoding(envelope))
    extra = [option.encode("ascii") for option in options]
    response = await client.execute_command(b"MAIL", b"FROM:" + sender, *extra, timeout=None)
    if response.code != SMTPStatus.completed:
        raise SMTPSenderRefused(response.code, response.message, envelope.sender)
    return response


async def _rcpt(client: SMTP, address: str, encoding: str) -> SMTPResponse:
    response = await client.execute_command(b"RCPT", b"TO:<" + address.encode(encoding) + b">", timeout=None)
    if response.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
        raise SMTPRecipientRefused(response.code, response.message, address)
    return response


async def _data(client: SMTP, data: bytes, deadline: float) -> SMTPResponse:
    """DATA, then the message and its end mark; the caller's deadline bounds the replies."""
    start = await client.execute_command(b"DATA", timeout=None)
    if start.code != SMTPStatus.start_input:
        # The envelope is still open on the server: the connection's next MAIL would be refused.
        await _reset(client, deadline)
        raise SMTPDataError(start.code, start.message)
    return await _content(client, data)


async def _content(client: SMTP, data: bytes) -> SMTPResponse:
    """The message and its end mark, after the server's 354; its reply."""
    try:
        protocol = _protocol(client)
        protocol.write(on_the_wire(data))
        response = await protocol.read_response(timeout=None)
    except SMTPServerDisconnected:
        client.close()
        raise
    if response.code != SMTPStatus.completed:
        raise SMTPDataError(response.code, response.message)
    return response


def _protocol(client: SMTP) -> SMTPProtocol:
    if client.protocol is None:
        raise SMTPServerDisconnected("Connection lost")
    return client.protocol


def _answered_in_step(exc: BaseException) -> bool:
    """Tell whether a pipelined transaction ended on a readable refusal, its replies all read.

    Only then may the connection carry another message (the envelope was reset, or the
    content refused). A timeout, a lost connection or a garbled reply leave it out of step.
    """
    refusal = (SMTPSenderRefused, SMTPRecipientRefused, _AllRefused, SMTPDataError)
    return isinstance(exc, refusal) and getattr(exc, "code", None) != SMTPStatus.domain_unavailable


def _envelope_commands(envelope: Envelope, options: Sequence[str]) -> bytes:
    """MAIL, RCPT for each recipient and DATA, as one piece to write (the bytes aiosmtplib would send)."""
    encoding = _encoding(envelope)
    mail = b" ".join([b"MAIL FROM:<" + envelope.sender.encode(encoding) + b">", *(o.encode("ascii") for o in options)])
    rcpts = [b"RCPT TO:<" + address.encode(encoding) + b">" for address in envelope.recipients]
    return b"\r\n".join([mail, *rcpts, b"DATA", b""])


async def _envelope_replies(protocol: SMTPProtocol, count: int) -> list[SMTPResponse]:
    """Up to *count* replies; a 421 is the last (the server is closing and answers nothing more)."""
    replies: list[SMTPResponse] = []
    while len(replies) < count:
        replies.append(reply := await protocol.read_response())
        if reply.code == SMTPStatus.domain_unavailable:
            break
    return replies


Failure = tuple[Stage, SMTPException]


def judge_envelope(
    envelope: Envelope, replies: Sequence[SMTPResponse]
) -> tuple[dict[str, tuple[int, str]], Failure | None]:
    """Read the replies to MAIL, each RCPT and DATA: the refused recipients, and why not to go on, if so.

    The same outcomes as the commands sent one at a time: a refused sender, every recipient
    refused, a refused DATA, and a 421 anywhere, which ends the session.
    """
    last = replies[-1]
    if last.code == SMTPStatus.domain_unavailable:  # 421: the server is closing the session
        answered = len(replies) - 1  # the command it answers: MAIL, a RCPT or DATA
        stage: Stage = "mail" if answered == 0 else "rcpt" if answered <= len(envelope.recipients) else "data"
        return {}, (stage, SMTPResponseException(last.code, last.message))
    mail, *rcpts, start = replies
    if mail.code != SMTPStatus.completed:
        return {}, ("mail", SMTPSenderRefused(mail.code, mail.message, envelope.sender))
    refused = {
        address: (reply.code, reply.message)
        for address, reply in zip(envelope.recipients, rcpts, strict=True)
        if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward)
    }
    if len(refused) == len(envelope.recipients):
        return refused, ("rcpt", _AllRefused(refused))
    if start.code != SMTPStatus.start_input:
        return refused, ("data", SMTPDataError(start.code, start.message))
    return refused, None


async def _abandon(client: SMTP, replies: Sequence[SMTPResponse], deadline: float) -> None:
    """Leave a refused pipelined transaction so that the connection can carry the next message."""
    if replies[-1].code in (SMTPStatus.start_input, SMTPStatus.domain_unavailable):
        # The server waits for content (it took DATA though it refused the rest) or is closing:
        # only a new connection gets out of that.
        client.close()
    elif replies[0].code == SMTPStatus.completed:
        await _reset(client, deadline)  # the sender was accepted: the envelope is open


async def _hold_open_data(client: SMTP, before_data: BeforeData) -> None:
    """Wait for the caller's condition after the 354; if it fails, only closing ends the transaction."""
    try:
        await before_data()
    except BaseException:
        client.close()  # no RSET in the middle of DATA; a message cut short is not delivered
        raise


def on_the_wire(data: bytes) -> bytes:
    """Return *data* as sent after DATA: CRLF line ends, leading dots doubled, the end mark added."""
    if type(data) is not WireReady:  # checked already, maybe in the render helper
        if not crlf_only(data):
            data = normalize_message_line_endings(data)
        if dotted(data):
            data = PERIOD_REGEX.sub(b"..", data)
    return data + b".\r\n"


def _encoding(envelope: Envelope) -> str:
    return "utf-8" if envelope.needs_utf8 else "ascii"


async def _reset(client: SMTP, deadline: float) -> None:
    """Abandon the half-built envelope so the connection can carry the next message."""
    if not client.is_connected:
        return
    try:
        await client.rset(timeout=max(deadline - asyncio.get_running_loop().time(), 0.0))
    except NETWORK_ERRORS:
        client.close()


def _to_delivery_error(exc: BaseException, stage: Stage, *, permanent: bool | None = None) -> DeliveryError:
    if isinstance(exc, _AllRefused):
        # Permanent only if every address was refused for good; one 4xx is worth another try.
        lasting = all(code >= 500 for code in exc.codes)
        code = max(exc.codes) if lasting else min(exc.codes)
        return DeliveryError(f"all recipients refused: {exc}", permanent=lasting, code=code, stage=stage)
    if isinstance(exc, SMTPResponseException):
        lasting = exc.code >= 500 if permanent is None else permanent
        return DeliveryError(f"{stage}: {exc.code} {exc.message}", permanent=lasting, code=exc.code, stage=stage)
    # Refused, reset, disconnected, timed out, TLS trouble: the network, so try again later.
    detail = str(exc) or ("timed out" if isinstance(exc, TimeoutError) else type(exc).__name__)
    return DeliveryError(f"{stage}: {detail}", permanent=False, stage=stage)
