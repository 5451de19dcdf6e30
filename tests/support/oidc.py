"""A real OpenID provider on a local port (oidc-provider-mock: Authlib's server classes), and the console
configured to use it. The provider can be told to misbehave: issue its tokens for another client, under
another issuer, or with another nonce, by rewriting what reaches it, so our checks meet a real bad token."""

from __future__ import annotations

import base64
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import authlib.deprecate  # first: importing it puts its "always show" filter first, before ours
import httpx
from sqlalchemy import Engine
from werkzeug.serving import make_server

from tests.support.console import ConsoleSite, MovingClock
from tests.support.processes import free_port
from tests.support.smtp_server import SMTPTestServer
from tests.support.web import SECRET, running
from tracker.config import Settings
from tracker.feeds.calendars import Calendars
from tracker.web.app import create_app
from tracker.web.signups import Signups

with warnings.catch_warnings():  # it imports authlib.jose, which Authlib now deprecates: its warning, not ours
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    import oidc_provider_mock

CLIENT_ID = "tracker-console"
CLIENT_SECRET = "s3cret-of-the-console"
Misbehaviour = Literal["audience", "issuer", "nonce"]
Environ = dict[str, Any]
WSGIApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]


class Misbehaving:
    """WSGI middleware in front of the provider: changes what it is asked so that its tokens are wrong."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.mode: Misbehaviour | None = None

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.mode in ("audience", "nonce") and path == "/oauth2/authorize":
            query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
            if self.mode == "audience":
                query["client_id"] = "another-application"
            else:
                query["nonce"] = "a-nonce-we-never-sent"
            environ["QUERY_STRING"] = urlencode(query)
        if self.mode == "audience" and path == "/oauth2/token":
            environ["HTTP_AUTHORIZATION"] = basic("another-application", CLIENT_SECRET)
        if self.mode == "issuer" and path == "/oauth2/token":
            environ["HTTP_HOST"] = environ["HTTP_HOST"].replace("localhost", "127.0.0.1")  # iss is the host asked
        return self.app(environ, start_response)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Provider:
    """The running provider: its issuer URL, its people, and a switch to make it misbehave."""

    def __init__(self, issuer: str, front: Misbehaving, stop: Callable[[], None]) -> None:
        self.issuer, self.front, self.stop = issuer, front, stop

    def add_person(self, sub: str, **claims: object) -> None:
        """Someone who can sign in at the provider, with these claims in their ID token."""
        answer = httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10)
        assert answer.status_code == 204, answer.text

    def misbehave(self, mode: Misbehaviour | None) -> None:
        self.front.mode = mode


@contextmanager
def oidc_provider() -> Iterator[Provider]:
    """A provider at http://localhost:PORT, on a thread of its own."""
    front = Misbehaving(oidc_provider_mock.app())
    server = make_server("localhost", 0, front, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        """Stop answering and close the port: a provider gone down."""
        if not stopped.is_set():
            stopped.set()
            server.shutdown()
            thread.join(timeout=5)
            server.server_close()

    try:
        yield Provider(f"http://localhost:{server.server_port}", front, stop)
    finally:
        stop()


@contextmanager
def sso_site(
    engine: Engine, smtp: SMTPTestServer, at: datetime, issuer: str, **settings: object
) -> Iterator[ConsoleSite]:
    """The console served at its own base URL (the provider sends browsers back there), using *issuer*."""
    port = free_port()
    clock = MovingClock(at)
    calendars = Calendars(engine, base_url="http://127.0.0.1", cancelled_grace=timedelta(days=30), clock=clock,
                          check_interval=0, secret=SECRET)  # fmt: skip
    signups = Signups()
    config = Settings(base_url=f"http://127.0.0.1:{port}", oidc_issuer=issuer, oidc_client_id=CLIENT_ID,
                      oidc_client_secret=CLIENT_SECRET, oidc_name="UN Login", **settings)  # type: ignore[arg-type]  # fmt: skip
    app = create_app(engine, calendars, settings=config, signups=signups)
    with running(app, port) as url:
        yield ConsoleSite(url, engine, clock, signups, smtp)
    signups.close()
