"""Bounces for tests: the DSN samples, sent rows to bounce, and the real listener in a thread."""

from __future__ import annotations

import asyncio
import re
import smtplib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from tests.support.delivery import SECRET
from tracker.bounces.intake import BounceConfig
from tracker.bounces.listener import serve
from tracker.bounces.policy import SuspendPolicy
from tracker.mail.verp import verp_address
from tracker.store.engine import transaction
from tracker.store.models import Delivery

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "bounces"
BOUNCES = "bounces@example.org"
CONFIG = BounceConfig(SECRET, BOUNCES, SuspendPolicy(), max_size=200_000)


def sample(name: str, verp: str = "", *, message_id: str | None = None) -> bytes:
    """A DSN sample as a relay forwards it: {VERP} filled in, an mbox 'From ' line dropped, CRLF line ends."""
    data = (SAMPLES / name).read_bytes().replace(b"{VERP}", verp.encode())
    if data.startswith(b"From "):
        data = data.split(b"\n", 1)[1]
    if message_id is not None:
        data = re.sub(rb"(?im)^Message-Id: .*$", b"Message-Id: " + message_id.encode(), data, count=1)
    return b"\r\n".join(data.splitlines()) + b"\r\n"


def sent_row(engine: Engine, subscriber_id: int, now: datetime, slot: str = "7d") -> tuple[int, str]:
    """A reminder the relay accepted for *subscriber_id*; its id and the envelope sender it went with."""
    with transaction(engine, write=True) as session:
        row = Delivery(subscriber_id=subscriber_id, timeline_id="hlpf", milestone_key="revised-draft", kind="reminder",
                       slot=slot, state="sent", send_at=now, attempt_at=now, sent_at=now, reply="250 OK",
                       created_at=now, updated_at=now)  # fmt: skip
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id, verp_address(SECRET, BOUNCES, row.id)


@contextmanager
def listening(engine: Engine, clock: Callable[[], datetime], config: BounceConfig = CONFIG) -> Iterator[int]:
    """`tracker bounces listen`'s server on a free loopback port, in its own thread; yields the port."""
    ports: list[int] = []
    ready = threading.Event()
    holder: dict[str, object] = {}

    def started(port: int) -> None:
        ports.append(port)
        ready.set()

    def run() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            holder["stop"], holder["loop"] = stop, asyncio.get_running_loop()
            await serve(engine, config, "127.0.0.1", 0, clock, started=started, stop=stop)

        asyncio.run(main())

    thread = threading.Thread(target=run, name="bounce-listener", daemon=True)
    thread.start()
    assert ready.wait(5), "the bounce listener did not start"
    try:
        yield ports[0]
    finally:
        loop, stop = holder["loop"], holder["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)


def relay(port: int, data: bytes, recipient: str, sender: str = "") -> tuple[int, bytes]:
    """Forward *data* to the listener as a relay does (null sender); the reply to the message."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("relay.example.org")
        client.mail(sender)
        code, text = client.rcpt(recipient)
        if code != 250:
            return code, text
        return client.data(data)


def deeply_nested(verp: str, depth: int = 1_000) -> bytes:
    """A 56 KB message of *depth* nested multipart/mixed parts: the stdlib parser recurses once per level."""
    parts = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (n, n) for n in range(depth))
    return f"To: {verp}\r\nMessage-ID: <deep@x>\r\n".encode() + parts + b"\r\nhello\r\n"
