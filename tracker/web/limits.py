"""What the HTTP server refuses before any work, and what every answer says about itself.

* The request head (line and headers) is capped in the HTTP parser, the body while it is read: both
  before routing, authentication or parsing, so a request costs at most their size in memory.
* HEAD is answered for every GET route; every answer carries `X-Content-Type-Options: nosniff` and,
  unless it says otherwise (the embed may be framed), `Content-Security-Policy: frame-ancestors 'none'`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 64 * 1024  # forms and JSON here are a few KB; a subscribe form with every box ticked stays far below
# The routes that take a file, and the form around it: a subscriber CSV (web/uploads.py MAX_UPLOAD); a timeline
# file to try (1 MB, timelines/files.py MAX_FILE_BYTES; twice that gets through, so a file a little too big is
# told so on the console's page rather than by this guard).
UPLOADS = {"/console/subscribers/import": 10 * 1024 * 1024 + 64 * 1024, "/console/files/dry-run": 2_000_000 + 64 * 1024}
MAX_HEAD = 32 * 1024  # request line and headers: browsers send a few KB, cookies included
REQUEST_TIMEOUT = 20.0  # seconds for a head, and again for a body, to arrive (TRACKER_REQUEST_TIMEOUT)
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"),)
NO_FRAMING = b"frame-ancestors 'none'"


class BodyTooSlowError(HTTPException):
    """408 raised while a body is read: it did not arrive within the request timeout."""

    def __init__(self, timeout: float) -> None:
        super().__init__(408, f"the request body did not arrive within {timeout:g} seconds")


class BodyTooLargeError(HTTPException):
    """413 raised while a body is read: past the cap, reading stops."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class Guard:
    """ASGI middleware in front of the app: the body cap, HEAD as a GET without a body, the security headers."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY, timeout: float = REQUEST_TIMEOUT) -> None:
        self.app = app
        self.max_body = max_body
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        limit = UPLOADS.get(scope["path"], self.max_body) if scope["method"] == "POST" else self.max_body
        if declared.isdigit() and int(declared) > limit:
            await send_too_large(send, limit)  # refused before a byte of it is read
            return
        head = scope["method"] == "HEAD"
        if head:  # FastAPI routes answer GET only; a HEAD is that answer without its body
            scope = {**scope, "method": "GET"}
        body = Body(receive, limit, declared not in ("", "0") or "transfer-encoding" in headers, self.timeout)
        answer = Answer(send, head, body)
        try:
            await self.app(scope, body.receive, answer.send)
        except BodyTooLargeError:
            if answer.started:
                raise
            await send_too_large(send, limit)
        except BodyTooSlowError as exc:
            if answer.started:
                raise
            await send_refusal(send, 408, f"{exc.detail[0].upper()}{exc.detail[1:]}.\n")


class Body:
    """The request body as the app reads it: BodyTooLargeError as soon as it passes *limit* bytes."""

    def __init__(self, receive: Receive, limit: int, expected: bool, timeout: float = REQUEST_TIMEOUT) -> None:
        self._receive = receive
        self.limit = limit
        self.read = 0
        self.unread = expected  # part of a body still on its way
        self.timeout = timeout
        self.deadline = asyncio.get_running_loop().time() + timeout  # for the whole body, not each piece

    async def receive(self) -> Message:
        if not self.unread:  # nothing more to come but a disconnect: wait for it as long as it takes
            return await self._receive()
        left = self.deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(self._receive(), timeout=max(left, 0))
        except TimeoutError:
            raise BodyTooSlowError(self.timeout) from None
        if message["type"] == "http.request":
            self.read += len(message.get("body", b""))
            self.unread = message.get("more_body", False)
            if self.read > self.limit:
                raise BodyTooLargeError(self.limit)
        return message


class Answer:
    """The app's `send`, with the security headers added and, for HEAD, the body left out."""

    def __init__(self, send: Send, head: bool, body: Body) -> None:
        self._send = send
        self.head = head
        self.body = body
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            # An answer given before the body was read (401, 404, 413): the rest is not wanted, so the
            # connection closes rather than read it.
            headers = secure(message.get("headers", []), close=self.body.unread)
            message = {**message, "headers": headers}
        elif message["type"] == "http.response.body" and self.head:
            message = {**message, "body": b""}
        await self._send(message)


def secure(headers: Sequence[tuple[bytes, bytes]], *, close: bool = False) -> list[tuple[bytes, bytes]]:
    """*headers* with nosniff and, unless the answer allows framing itself, frame-ancestors 'none'."""
    found = MutableHeaders(raw=list(headers))
    for name, value in SECURITY_HEADERS:
        found.setdefault(name.decode(), value.decode())
    policy = found.get("content-security-policy")
    if policy is None:
        found["content-security-policy"] = NO_FRAMING.decode()
    elif "frame-ancestors" not in policy:
        found["content-security-policy"] = f"{policy}; {NO_FRAMING.decode()}"
    if close:
        found["connection"] = "close"
    return found.raw


async def send_too_large(send: Send, limit: int) -> None:
    await send_refusal(send, 413, f"The request body is larger than {limit} bytes.\n")


async def send_refusal(send: Send, status: int, text: str) -> None:
    """Answer *status* with *text*, and close the connection: the rest of the request is not wanted."""
    body = text.encode()
    # no-store: a refusal is of one request, and the console's answers are never kept (docs/console.md).
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": secure(headers, close=True)})
    await send({"type": "http.response.body", "body": body})


class TextJSONResponse(JSONResponse):
    """JSON that stays valid whatever it carries: non-ASCII escaped (lone surrogates too), no NaN."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def validation_problem(errors: Sequence[Any]) -> TextJSONResponse:
    """422 in FastAPI's shape: where and what, without echoing the input (it may be anything)."""
    detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in errors]  # fmt: skip
    return TextJSONResponse({"detail": detail}, 422)


# --- the request head, in the HTTP parser ---------------------------------------------------------


def server_options(timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
    """uvicorn settings that cap the request head: the httptools protocol below (h11 caps by itself, but serves
    cached feeds several times slower)."""
    try:
        protocol = head_capped_protocol(timeout)
    except ImportError:  # no httptools: h11 keeps a head to this size
        return {"http": "h11", "h11_max_incomplete_event_size": MAX_HEAD}
    return {"http": protocol, "h11_max_incomplete_event_size": MAX_HEAD}


def head_capped_protocol(timeout: float = REQUEST_TIMEOUT) -> type[Any]:
    """uvicorn's httptools protocol with a cap on the request head (431) and a time for it to arrive (408).

    llhttp keeps a header whole however long it grows, and uvicorn sets no limit for it: the
    server's memory grew with the header, and the connection waited forever; a client sending a
    header line every few seconds held its connection for as long as it liked.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeadCapped(HttpToolsProtocol):
        head_limit = MAX_HEAD
        head_timeout = timeout

        def connection_made(self, transport: Any) -> None:
            self.heading, self.head_read, self.too_large = True, 0, False
            self.head_timer: asyncio.TimerHandle | None = None
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            self.stop_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.heading:  # between two requests, or inside a head not yet finished
                if self.head_read == 0 and data:  # a head begins: it has head_timeout to arrive whole
                    self.head_timer = asyncio.get_running_loop().call_later(self.head_timeout, self.head_too_slow)
                self.head_read += len(data)
            super().data_received(data)
            if self.heading and self.head_read > self.head_limit and not self.transport.is_closing():
                self.refuse_head()  # a head still unfinished past the cap

        def on_headers_complete(self) -> None:
            self.heading = False
            self.stop_head_timer()
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > self.head_limit:  # a whole head that came in one read
                self.too_large = True
                raise ValueError("request head too large")  # stops the parser: uvicorn answers with send_400
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self.heading, self.head_read = True, 0
            super().on_message_complete()

        def send_400_response(self, msg: str) -> None:
            if self.too_large:
                self.refuse_head()
            else:
                super().send_400_response(msg)

        def stop_head_timer(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def head_too_slow(self) -> None:
            self.head_timer = None
            if self.heading and not self.transport.is_closing():
                seconds = f"{self.head_timeout:g}"
                self.answer_and_close(b"408 Request Timeout", f"did not arrive within {seconds} seconds")

        def refuse_head(self) -> None:
            self.answer_and_close(b"431 Request Header Fields Too Large", f"are larger than {self.head_limit} bytes")

        def answer_and_close(self, status: bytes, why: str) -> None:
            """Answer before the app sees the request (its head is not whole), and close the connection."""
            text = f"The request line and headers {why}.\n".encode()
            self.transport.write(
                b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\nx-content-type-options: nosniff\r\n\r\n%s"
                % (status, len(text), text)
            )
            self.transport.close()

    return HeadCapped
