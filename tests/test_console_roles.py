"""Every console route and every write API route has a rule saying who may use it, and the rule holds.

Adding a route under /console (or a POST/PUT/PATCH/DELETE under /api) without a line in RULES
fails this file: the line is where a new route's minimum role is decided.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from starlette.routing import BaseRoute

from tests.support.console import ConsoleSite, console_site, csrf_of
from tests.support.smtp_server import SMTPTestServer
from tests.support.web import SECRET
from tracker.accounts.api_tokens import create_token
from tracker.accounts.roles import ROLES
from tracker.accounts.users import find_user
from tracker.config import Settings
from tracker.feeds.calendars import Calendars
from tracker.store.engine import transaction
from tracker.web.app import create_api
from tracker.web.console_access import RoleRule

pytestmark = pytest.mark.store  # the module's site opens its store from empty_database()
ADMIN_TOKEN = "an-admin-token-for-the-role-tests-0123456789"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
PLACEHOLDERS = {
    "{row_id}": "1",
    "{action}": "hold",
    "{subscriber_id}": "1",
    "{upload}": "not-an-upload",
    "{timeline_id}": "hlpf",
    "{token_id}": "999999",  # no such token: revoking a real one would end another test's
}
# (method, path) → who may: anyone, a role and those above it, or a personal API token of a role and those above it
# (and, for one more release, the old TRACKER_ADMIN_TOKEN).
RULES: dict[tuple[str, str], str] = {
    ("GET", "/console/sign-in"): "anyone",
    ("POST", "/console/sign-in"): "anyone",
    ("GET", "/console/sent"): "anyone",
    ("GET", "/console/sign-in/{token}"): "anyone",
    ("POST", "/console/sign-in/{token}"): "anyone",
    ("GET", "/console/oidc/start"): "anyone",
    ("GET", "/console/oidc/callback"): "anyone",
    ("GET", "/console/"): "viewer",
    ("POST", "/console/sign-out"): "viewer",
    ("GET", "/console/timelines"): "viewer",
    ("GET", "/console/timelines/{timeline_id}"): "viewer",
    ("GET", "/console/timelines/{timeline_id}/{milestone}/done"): "secretary",
    ("POST", "/console/timelines/{timeline_id}/{milestone}/done"): "secretary",
    ("GET", "/console/timelines/{timeline_id}/{milestone}/amend"): "secretary",
    ("POST", "/console/timelines/{timeline_id}/{milestone}/amend"): "secretary",
    ("GET", "/console/timelines/{timeline_id}/{milestone}/reopen"): "secretary",
    ("POST", "/console/timelines/{timeline_id}/{milestone}/reopen"): "secretary",
    ("GET", "/console/audit"): "viewer",
    ("GET", "/console/outbox"): "viewer",
    ("GET", "/console/outbox/{row_id}"): "viewer",
    ("POST", "/console/outbox/{row_id}/{action}"): "secretary",
    ("GET", "/console/subscribers"): "viewer",
    ("POST", "/console/subscribers"): "secretary",
    ("GET", "/console/subscribers/export"): "secretary",
    ("POST", "/console/subscribers/import"): "secretary",
    ("POST", "/console/subscribers/import/{upload}"): "secretary",
    ("GET", "/console/subscribers/{subscriber_id}"): "viewer",
    ("POST", "/console/subscribers/{subscriber_id}"): "secretary",
    ("GET", "/console/subscribers/{subscriber_id}/data"): "secretary",
    ("POST", "/console/subscribers/{subscriber_id}/{action}"): "secretary",
    ("GET", "/console/tokens"): "admin",
    ("POST", "/console/tokens"): "admin",
    ("POST", "/console/tokens/{token_id}/revoke"): "admin",
    ("GET", "/console/files"): "viewer",
    ("POST", "/console/files/dry-run"): "secretary",
    ("POST", "/api/milestones/{timeline}/{milestone}/done"): "secretary token",
    ("POST", "/api/milestones/{timeline}/{milestone}/reopen"): "secretary token",
}


def guarded_routes(app: FastAPI) -> dict[tuple[str, str], str | None]:
    """Each console route and write API route of *app*, with the rule it declares (None: none)."""
    found: dict[tuple[str, str], str | None] = {}
    for route, path in every_route(app.routes, ""):
        for method in route.methods or ():
            if path.startswith("/console"):
                rules = [d.call for d in route.dependant.dependencies if isinstance(d.call, RoleRule)]
                found[(method, path)] = (rules[0].minimum or "anyone") if len(rules) == 1 else None
            elif path.startswith("/api/") and method in WRITES:
                found[(method, path)] = RULES.get((method, path))  # checked over HTTP below
    return found


def every_route(routes: Sequence[BaseRoute], prefix: str) -> Iterator[tuple[APIRoute, str]]:
    """Every APIRoute with its full path, in included routers too (FastAPI keeps those as they were included)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route, prefix + route.path
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from every_route(included.routes, prefix + str(getattr(context, "prefix", "")))


def test_every_console_and_write_api_route_has_its_rule(engine: Engine) -> None:
    calendars = Calendars(engine, base_url="http://127.0.0.1", cancelled_grace=timedelta(days=30), secret=SECRET)
    app = create_api(engine, calendars, settings=Settings(admin_token=ADMIN_TOKEN))

    routes = guarded_routes(app)

    unruled = sorted(key for key in routes if key not in RULES)
    assert unruled == [], "add each new route to RULES with the least role it needs"
    assert sorted(key for key in RULES if key not in routes) == [], "RULES names a route that is gone"
    declared = {key: rule for key, rule in routes.items() if key[1].startswith("/console")}
    assert declared == {key: rule for key, rule in RULES.items() if key[1].startswith("/console")}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsoleSite, dict[str, httpx.Client]]]:
    from tests.support.database import empty_database
    from tracker.store.engine import open_store

    with SMTPTestServer() as smtp, empty_database(tmp_path_factory.mktemp("roles")) as url:
        engine = open_store(url)
        at = datetime(2017, 2, 27, 9, 0, tzinfo=UTC)
        with console_site(engine, smtp, at, admin_token=ADMIN_TOKEN) as found:
            browsers: dict[str, httpx.Client] = {r: found.sign_in(f"{r}@mission.example.org", r) for r in ROLES}
            with transaction(engine, write=True) as session:
                for role in ROLES:
                    owner = find_user(session, f"{role}@mission.example.org")
                    assert owner is not None
                    API_TOKENS[role] = create_token(session, owner, f"roles-{role}", None, None, at)[1]
            yield found, browsers
        engine.dispose()


def outcome(browser: httpx.Client, method: str, path: str) -> str:
    """What a browser gets: sent to sign in, refused, or let in (whatever the page then says)."""
    path = path.replace("{token}", "not-a-token").replace("{timeline}", "hlpf").replace("{milestone}", "x")
    for name, value in PLACEHOLDERS.items():
        path = path.replace(name, value)
    if method == "GET":
        answer = browser.get(path)
    else:  # with a good CSRF token: what is checked here is the role
        answer = browser.post(path, data={"csrf": csrf_of(browser.get("/console/sign-in"))})
    if answer.status_code == 303 and answer.headers["location"].startswith("/console/sign-in?next="):
        return "sign in"
    return "refused" if answer.status_code in (401, 403) else "let in"


def signing_out_last(key: tuple[str, str]) -> tuple[bool, tuple[str, str]]:
    """Signing out (which every browser of the module's site does) comes last: the others need their sessions."""
    return key[1] == "/console/sign-out", key


API_TOKENS: dict[str, str] = {}  # a personal token of each role, made by the site fixture
ORDER: list[tuple[str, str]] = sorted(RULES, key=signing_out_last)


@pytest.mark.parametrize(("method", "path"), ORDER)
def test_each_rule_holds_for_the_signed_out_and_for_every_role(
    site: tuple[ConsoleSite, dict[str, httpx.Client]], method: str, path: str
) -> None:
    live, browsers = site
    rule = RULES[(method, path)]
    roles = [r for r in ROLES if r != "viewer"] + ["viewer"]  # signing out (a viewer's POST) comes last
    seen = {role: outcome(browsers[role], method, path) for role in roles}
    seen["signed out"] = outcome(live.browser(), method, path)

    if rule == "anyone":
        assert set(seen.values()) == {"let in"}
    elif rule.endswith(" token"):  # a console session is no token
        assert set(seen.values()) == {"refused"}
        url = live.url + path.replace("{timeline}", "hlpf").replace("{milestone}", "x")
        least = ROLES.index(rule.removesuffix(" token"))
        with_tokens = {role: httpx.post(url, headers={"Authorization": f"Bearer {token}"}, json={}).status_code
                       for role, token in API_TOKENS.items()}  # fmt: skip
        assert {role: status not in (401, 403) for role, status in with_tokens.items()} == {
            role: ROLES.index(role) >= least for role in ROLES
        }
        old = httpx.post(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, json={})
        assert old.status_code not in (401, 403) and old.headers["deprecation"] == "true"
    else:
        least = ROLES.index(rule)
        assert seen == {"signed out": "sign in"} | {
            role: "let in" if ROLES.index(role) >= least else "refused" for role in ROLES
        }
