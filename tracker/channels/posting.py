"""The HTTP POST that delivers a channel's message: signed, bounded, its answer mapped to retry or fail.

2xx: delivered. 429, 5xx and network trouble: tried again later, no sooner than a `Retry-After`
says (capped). Any other answer: failed, with the status and the start of the body as the reason.
Redirects are not followed (a webhook that moved says so), the answer's body is read up to
RESPONSE_BYTES, and every request has a deadline of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx2

from tracker.channels.payloads import clean
from tracker.text import describe_text

TIMEOUT = httpx2.Timeout(10.0, connect=5.0)  # each step: connect, each write, each read
TOTAL = 20.0  # seconds a whole post may take (a receiver trickling its answer): within a 30 s lease
RESPONSE_BYTES = 4096
LONGEST_WAIT = timedelta(hours=1)  # a Retry-After further than this is read as this
USER_AGENT = "Tracker-Channels/1"

# httpx2 logs each request at INFO with its whole URL, and a Slack or Teams webhook's URL is its
# secret (`tracker run` logs at INFO): only its warnings pass.
for _name in ("httpx2", "httpcore2"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class PostError(Exception):
    """A post that did not deliver: *permanent* fails the row, else it is tried again (not before *retry_after*)."""

    def __init__(self, message: str, *, permanent: bool, status: int | None = None,
                 retry_after: timedelta | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.message, self.permanent, self.status, self.retry_after = message, permanent, status, retry_after


@dataclass(frozen=True)
class Delivered:
    status: int
    reply: str  # the start of the answer, for the log


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Tracker-Signature` header: `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def headers_for(body: bytes, delivery: str, secret: str, now: int | None = None) -> dict[str, str]:
    """The request's headers: its delivery key (the same for every attempt), and the signature if a secret is set."""
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
               "Tracker-Delivery": delivery}  # fmt: skip
    if secret:
        timestamp = int(time.time()) if now is None else now
        headers["Tracker-Timestamp"] = str(timestamp)
        headers["Tracker-Signature"] = sign(secret, timestamp, body)
    return headers


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A `Retry-After` header read: seconds or an HTTP date, capped at LONGEST_WAIT; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # however many digits: a huge wait is the longest, not none
        wait = LONGEST_WAIT if len(value) > 10 else timedelta(seconds=int(value))
    else:
        try:
            wait = parsedate_to_datetime(value) - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(timedelta(0), min(wait, LONGEST_WAIT))


class Poster:
    """One HTTP client for a pass's posts (connections kept alive), closed at the end of the pass."""

    def __init__(self, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self.transport = transport
        self._client: httpx2.AsyncClient | None = None

    @property
    def client(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False,
                                              transport=self.transport)  # fmt: skip
        return self._client

    async def post(self, url: str, body: bytes, headers: dict[str, str], now: datetime) -> Delivered:
        """POST *body*; raise PostError unless the answer is 2xx."""
        try:
            async with (
                asyncio.timeout(TOTAL),
                self.client.stream("POST", url, content=body, headers=headers) as response,
            ):
                reply = await read_bounded(response)
        except TimeoutError as exc:
            raise PostError(f"no answer within {TOTAL:g} s", permanent=False) from exc
        except httpx2.HTTPError as exc:
            raise PostError(f"could not post: {describe_text(type(exc).__name__ + ': ' + str(exc))}",
                            permanent=False) from exc  # fmt: skip
        except Exception as exc:  # a URL httpx2 cannot use (InvalidURL is no HTTPError): this
            # channel's post fails, with why; it must not look like the store's trouble and end the pass
            raise PostError(f"could not post: {describe_text(type(exc).__name__ + ': ' + str(exc))}",
                            permanent=True) from exc  # fmt: skip
        status = response.status_code
        said = f"{status} {clean(reply, 200)}".strip()
        if 200 <= status < 300:
            return Delivered(status, describe_text(said))
        if status == 429 or status >= 500:
            wait = retry_after(response.headers.get("retry-after"), now)
            raise PostError(describe_text(f"HTTP {said}"), permanent=False, status=status, retry_after=wait)
        raise PostError(describe_text(f"HTTP {said}"), permanent=True, status=status)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def read_bounded(response: httpx2.Response) -> str:
    """The start of the answer's body, as text: a receiver's long page is not read whole."""
    data = b""
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= RESPONSE_BYTES:
            break
    return data[:RESPONSE_BYTES].decode("utf-8", "replace")
