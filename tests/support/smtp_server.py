"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) that records mail and misbehaves on request."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Stage = Literal["MAIL", "RCPT", "DATA", "DATA command"]  # DATA: the answer after the content
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 5.0


@dataclass(frozen=True)
class ReceivedMail:
    """One message the server accepted, with its envelope and the session it came in on."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    mail_options: tuple[str, ...]
    content: bytes
    session: int
    tls: bool
    login: str | None
    content_at: float = 0.0  # time.time() when its content had arrived (before the relay's delay)

    def parse(self) -> EmailMessage:
        """Parse the received bytes as a mail client would."""
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Fault:
    stage: Stage
    reply: str | None  # None: close the connection instead of answering
    stall: bool
    address: str | None
    times: int | None  # None: forever


class _Handler:
    """Hooks that aiosmtpd calls by name: record what arrives, answer with the first matching fault."""

    def __init__(self, owner: SMTPTestServer) -> None:
        self.owner = owner

    async def handle_EHLO(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # this hook's job, once it exists
        if self.owner.pipelining:  # aiosmtpd reads pipelined commands in order; it only does not say so
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self.owner._fault_reply(server, "MAIL", address)
        if reply is None:
            envelope.mail_from = address
            envelope.mail_options.extend(options)
        return reply or "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self.owner._fault_reply(server, "RCPT", address)
        if reply is None:
            envelope.rcpt_tos.append(address)
        return reply or "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        reply = await self.owner._fault_reply(server, "DATA", None)
        if reply is not None:
            return reply
        content_at = time.time()
        if self.owner.delay:  # a slow relay: lets a test catch a sender mid-send
            await asyncio.sleep(self.owner.delay)
        number = self.owner._record(server, session, envelope, content_at)
        return f"250 2.0.0 Ok: queued as M{number}"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.owner._count_quit()
        return "221 Bye"


class _CountingSMTP(SMTP):
    """An aiosmtpd session that tells its server when it starts and ends."""

    def __init__(self, owner: SMTPTestServer, number: int, **kwargs: Any) -> None:
        super().__init__(_Handler(owner), **kwargs)
        self.owner = owner
        self.number = number

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # STARTTLS calls this a second time for the same session; count it once.
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self.owner._session_started(self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.owner._session_ended(self)

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 (aiosmtpd's name)
        """The DATA command itself; a fault answered here leaves the envelope open, as a relay may."""
        reply = await self.owner._fault_reply(self, "DATA command", None)
        if reply is not None:
            await self.push(reply)
            return
        await super().smtp_DATA(arg)


class SMTPTestServer:
    """aiosmtpd in its own thread on a free loopback port; faults are set from the test thread."""

    def __init__(
        self,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        credentials: Mapping[str, str] | None = None,
        pipelining: bool = True,
    ) -> None:
        self.host = LOOPBACK
        self.pipelining = pipelining  # offer PIPELINING (RFC 2920), as Postfix and most relays do
        self.port = 0
        self.received: list[ReceivedMail] = []
        self.sessions = 0  # connections ever accepted
        self.peak = 0  # most connections open at once
        self.quits = 0
        self.delay = 0.0  # seconds the server waits before accepting each message
        self.logins: list[tuple[str, str]] = []  # (mechanism, login) that succeeded
        self._starttls = starttls
        self._implicit_tls = implicit_tls
        self._credentials = dict(credentials) if credentials is not None else None
        self._faults: list[_Fault] = []
        self._live: set[_CountingSMTP] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """Give the smtp:// URL of this server (smtps:// when it speaks TLS from the start)."""
        scheme = "smtps" if self._implicit_tls else "smtp"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def open_sessions(self) -> int:
        with self._changed:
            return len(self._live)

    def answer(self, stage: Stage, reply: str, *, address: str | None = None, times: int | None = None) -> None:
        """Answer *reply* at *stage* (for *address* only, if given), *times* times or forever."""
        self._add(_Fault(stage, reply, stall=False, address=address, times=times))

    def drop(self, stage: Stage, *, times: int | None = None) -> None:
        """Close the connection at *stage* without answering (for DATA: after the content arrived)."""
        self._add(_Fault(stage, None, stall=False, address=None, times=times))

    def stall(self, stage: Stage, *, times: int | None = None) -> None:
        """Never answer at *stage*, so that the client has to time out."""
        self._add(_Fault(stage, None, stall=True, address=None, times=times))

    def clear_faults(self) -> None:
        with self._changed:
            self._faults.clear()

    def wait_until(self, condition: Callable[[SMTPTestServer], bool], timeout: float = 5.0) -> None:
        """Block until *condition* holds for this server; fail after *timeout* seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self), timeout):
                raise AssertionError(f"server never reached the expected state within {timeout}s")

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Listen (on the same port as before after a restart) and return once connections are accepted."""
        assert self._thread is None, "already running"
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="smtp-test-server", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT) or not self.port:
            raise RuntimeError("the test SMTP server did not start")

    def stop(self) -> None:
        """Close every session and the listener, then end the thread."""
        if self._thread is None:
            return
        assert self._loop is not None and self._stopping is not None
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(START_TIMEOUT)
        assert not self._thread.is_alive(), "the test SMTP server did not stop"
        self._thread = None

    def restart(self) -> None:
        """Stop and start again on the same port: every client connection goes stale."""
        self.stop()
        self.start()

    def __enter__(self) -> SMTPTestServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        asyncio.run(self._serve(ready))

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await self._loop.create_server(self._make_session, self.host, self.port, ssl=self._implicit_tls)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopping.wait()
        server.close()
        for session in list(self._live):
            if session.transport is not None:
                session.transport.close()
        await self._finish_other_tasks()
        await server.wait_closed()

    async def _finish_other_tasks(self) -> None:
        # Let closed sessions run their connection_lost before the loop goes away.
        await asyncio.sleep(0)
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _make_session(self) -> _CountingSMTP:
        options: dict[str, Any] = {"hostname": "smtp.test", "enable_SMTPUTF8": True, "tls_context": self._starttls}
        if self._credentials is not None:
            options.update(
                authenticator=self._authenticate,
                auth_require_tls=False,  # offer AUTH on plain connections too, so tests need no TLS
                auth_exclude_mechanism=["LOGIN"],
            )
        with self._changed:
            self.sessions += 1
            number = self.sessions
        return _CountingSMTP(self, number, **options)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self._credentials is not None and isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        if self._credentials.get(login) != password:
            return AuthResult(success=False, handled=False)
        with self._changed:
            self.logins.append((mechanism, login))
        return AuthResult(success=True, auth_data=login)

    def _add(self, fault: _Fault) -> None:
        with self._changed:
            self._faults.append(fault)

    def _take_fault(self, stage: Stage, address: str | None) -> _Fault | None:
        with self._changed:
            for fault in self._faults:
                if fault.stage == stage and fault.address in (None, address):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
            return None

    async def _fault_reply(self, server: SMTP, stage: Stage, address: str | None) -> str | None:
        fault = self._take_fault(stage, address)
        if fault is None:
            return None
        if fault.reply is not None:
            return fault.reply
        if not fault.stall:
            assert server.transport is not None
            server.transport.close()
        # Wait for connection_lost (or the client giving up), which cancels this session task.
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def _record(self, server: SMTP, session: Session, envelope: Envelope, content_at: float) -> int:
        content = envelope.original_content
        assert envelope.mail_from is not None and isinstance(content, bytes)
        assert isinstance(server, _CountingSMTP)
        mail = ReceivedMail(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            mail_options=tuple(envelope.mail_options),
            content=content,
            session=server.number,
            tls=session.ssl is not None,
            login=session.auth_data if isinstance(session.auth_data, str) else None,
            content_at=content_at,
        )
        with self._changed:
            self.received.append(mail)
            self._changed.notify_all()
            return len(self.received)

    def _count_quit(self) -> None:
        with self._changed:
            self.quits += 1
            self._changed.notify_all()

    def _session_started(self, session: _CountingSMTP) -> None:
        with self._changed:
            self._live.add(session)
            self.peak = max(self.peak, len(self._live))
            self._changed.notify_all()

    def _session_ended(self, session: _CountingSMTP) -> None:
        with self._changed:
            self._live.discard(session)
            self._changed.notify_all()


def closed_port() -> int:
    """Return a loopback port with nothing listening on it, so connections are refused."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextmanager
def silent_listener() -> Iterator[int]:
    """Yield a loopback port that accepts TCP connections but never says a word, like a hung server."""
    with socket.create_server((LOOPBACK, 0), backlog=16) as sock:
        yield int(sock.getsockname()[1])


class RemoteSMTPError(AssertionError):
    """A test tried to reach a mail server outside this machine."""


def _is_loopback(host: object) -> bool:
    if host is None or host == "localhost":
        return True  # no host: a socket or path was given, which stays on this machine
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


def forbid_remote_smtp(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every connection to a host outside loopback fail loudly; return the list of attempts.

    Both asyncio (aiosmtplib) and blocking sockets (smtplib) are covered. The error is an
    AssertionError, which no mailer maps to a DeliveryError, so it cannot be swallowed as a
    temporary failure; a fixture should also assert the returned list is empty at teardown.
    """
    attempts: list[str] = []
    loop_connect = asyncio.BaseEventLoop.create_connection
    socket_connect = socket.create_connection

    def check(host: object, port: object) -> None:
        if not _is_loopback(host):
            attempts.append(f"{host}:{port}")
            raise RemoteSMTPError(f"tests may not connect to {host}:{port}; use a local SMTP test server")

    async def guarded_loop_connect(self: Any, factory: Any, host: Any = None, port: Any = None, **kwargs: Any) -> Any:
        check(host, port)
        return await loop_connect(self, factory, host, port, **kwargs)

    def guarded_socket_connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        check(address[0], address[1])
        return socket_connect(address, *args, **kwargs)

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", guarded_loop_connect)
    monkeypatch.setattr(socket, "create_connection", guarded_socket_connect)
    return attempts
