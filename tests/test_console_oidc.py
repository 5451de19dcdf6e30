"""Single sign-on over HTTP against a real OpenID provider run by the test (oidc-provider-mock, built on
Authlib's server), following every redirect between the console and the provider as a browser does."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import col, select

from tests.support.browser import OpenTab
from tests.support.console import ConsoleSite, console_site
from tests.support.oidc import Provider, oidc_provider, sso_site
from tests.support.processes import free_port
from tests.support.smtp_server import SMTPTestServer
from tests.support.web import SECRET
from tracker.accounts.oidc import Identity, parse_role_map, read_identity
from tracker.config import Settings
from tracker.store.engine import transaction
from tracker.store.models import Event, User
from tracker.subscribers.personal import stranger

# The provider under test uses an Authlib server API that Authlib now deprecates: its warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning")

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AMINA = "amina@mission.example.org"
START = re.compile(r'href="(/console/oidc/start[^"]*)"')


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with oidc_provider() as found:
        yield found


@pytest.fixture
def site(engine: Engine, smtp: SMTPTestServer, provider: Provider) -> Iterator[ConsoleSite]:
    provider.misbehave(None)
    with sso_site(engine, smtp, AT, provider.issuer) as found:
        yield found


def leave_for_provider(site: ConsoleSite, browser: httpx.Client, back: str = "/console/") -> httpx.Response:
    """Follow "Sign in with UN Login" on the sign-in page: the console's answer."""
    page = browser.get("/console/sign-in", params={"next": back})
    link = START.search(page.text)
    assert link is not None, page.text
    return browser.get(html.unescape(link.group(1)))


def sign_in_at_provider(browser: httpx.Client, authorize: str, sub: str) -> str:
    """At the provider's page, sign in as *sub*; the URL the provider sends the browser back to."""
    assert browser.get(authorize).status_code == 200
    back = browser.post(authorize, data={"sub": sub})
    assert back.status_code == 302, back.text
    return back.headers["location"]


def sign_in(
    site: ConsoleSite, provider: Provider, sub: str, back: str = "/console/"
) -> tuple[httpx.Client, httpx.Response]:
    """A new browser through the whole flow: the console's answer to the provider's way back."""
    browser = site.browser()
    left = leave_for_provider(site, browser, back)
    assert left.status_code == 303, left.text
    callback = sign_in_at_provider(browser, left.headers["location"], sub)
    return browser, browser.get(callback)


def events(site: ConsoleSite, kind: str) -> list[dict[str, Any]]:
    """The details of the events of *kind*, oldest first, with their actor as `actor`."""
    with transaction(site.engine) as session:
        found = session.exec(select(Event).where(Event.kind == kind).order_by(col(Event.id)))
        return [{**(event.detail or {}), "actor": event.actor} for event in found]


def role_of(site: ConsoleSite, email: str) -> str | None:
    with transaction(site.engine) as session:
        user = session.exec(select(User).where(User.email_key == email.lower())).first()
        return None if user is None else user.role


def test_a_user_signs_in_with_the_provider_and_works_with_their_role(site: ConsoleSite, provider: Provider) -> None:
    site.add_user(AMINA, "viewer")
    provider.add_person("amina", email="Amina@Mission.example.org", email_verified=True)

    browser = site.browser()
    left = leave_for_provider(site, browser, "/console/audit")
    asked = parse_qs(urlsplit(left.headers["location"]).query)
    callback = sign_in_at_provider(browser, left.headers["location"], "amina")
    answer = browser.get(callback)

    assert left.headers["location"].startswith(f"{provider.issuer}/oauth2/authorize?")
    assert asked["code_challenge_method"] == ["S256"] and asked["nonce"] and asked["state"]
    assert asked["redirect_uri"] == [f"{site.url}/console/oidc/callback"]
    assert answer.status_code == 303 and answer.headers["location"] == "/console/audit"
    assert browser.get("/console/").status_code == 200
    assert browser.get("/console/subscribers/export").status_code == 403  # a viewer, as `tracker users add` said
    [signed_in] = events(site, "console_signed_in")
    assert signed_in["actor"] == f"console:{AMINA}" and signed_in["method"] == "oidc"
    assert "method: oidc" in browser.get("/console/audit").text


def test_the_sign_in_page_offers_the_provider_only_when_one_is_set_up(
    site: ConsoleSite, engine: Engine, smtp: SMTPTestServer
) -> None:
    assert "Sign in with <bdi>UN Login</bdi>" in site.browser().get("/console/sign-in").text
    with console_site(engine, smtp, AT) as plain:
        browser = plain.browser()
        assert "Sign in with" not in browser.get("/console/sign-in").text
        assert browser.get("/console/oidc/start").status_code == 404


def test_an_address_without_an_account_is_refused_and_recorded(site: ConsoleSite, provider: Provider) -> None:
    provider.add_person("stranger", email="stranger@example.org", email_verified=True)

    browser, answer = sign_in(site, provider, "stranger")

    assert answer.status_code == 403
    assert "stranger@example.org has no account in this console" in answer.text
    assert browser.get("/console/").status_code == 303  # still signed out
    [refused] = events(site, "console_sign_in_refused")
    # No account: the log keeps who tried as a one-way reference (erasure reaches it), not the address.
    assert refused == {"email": stranger(SECRET, "stranger@example.org"), "reason": "unknown", "method": "oidc",
                       "actor": "oidc"}  # fmt: skip
    assert role_of(site, "stranger@example.org") is None


def test_an_address_the_provider_has_not_verified_is_refused(site: ConsoleSite, provider: Provider) -> None:
    site.add_user(AMINA, "admin")
    provider.add_person("amina-unverified", email=AMINA, email_verified=False)

    browser, answer = sign_in(site, provider, "amina-unverified")

    assert answer.status_code == 403 and "it is not verified there" in answer.text
    assert browser.get("/console/").status_code == 303
    assert [e["reason"] for e in events(site, "console_sign_in_refused")] == ["unverified"]


@pytest.fixture
def mapped_site(engine: Engine, smtp: SMTPTestServer, provider: Provider) -> Iterator[ConsoleSite]:
    provider.misbehave(None)
    mapping = "tracker-admins:admin,tracker-secretaries:secretary,tracker-viewers:viewer"
    with sso_site(engine, smtp, AT, provider.issuer, oidc_role_claim="groups", oidc_roles=mapping) as found:
        yield found


def test_the_role_claim_adds_the_user_and_updates_the_role_at_each_sign_in(
    mapped_site: ConsoleSite, provider: Provider
) -> None:
    site = mapped_site
    provider.add_person("omar", email="omar@un.example.org", email_verified=True, groups=["staff", "tracker-viewers"])
    browser, answer = sign_in(site, provider, "omar")
    assert answer.status_code == 303 and role_of(site, "omar@un.example.org") == "viewer"
    assert browser.get("/console/subscribers/export").status_code == 403

    provider.add_person("omar", email="omar@un.example.org", email_verified=True,
                        groups=["tracker-viewers", "tracker-admins"])  # fmt: skip
    promoted, answer = sign_in(site, provider, "omar")

    assert answer.status_code == 303 and role_of(site, "omar@un.example.org") == "admin"
    assert promoted.get("/console/subscribers/export").status_code == 200
    assert browser.get("/console/").status_code == 303  # a role change ends the older sessions
    assert [e["role"] for e in events(site, "console_user_added")] == ["viewer"]
    assert [(e["role"], e["actor"]) for e in events(site, "console_user_updated")] == [("admin", "oidc")]


def test_with_a_role_claim_someone_in_no_mapped_group_is_refused_even_with_an_account(
    mapped_site: ConsoleSite, provider: Provider
) -> None:
    mapped_site.add_user("left@un.example.org", "admin")
    provider.add_person("left", email="left@un.example.org", email_verified=True, groups=["staff"])

    _, answer = sign_in(mapped_site, provider, "left")

    assert answer.status_code == 403 and "in none of the groups that open this console" in answer.text
    assert [e["reason"] for e in events(mapped_site, "console_sign_in_refused")] == ["no-role"]


def test_someone_taken_out_of_every_mapped_group_loses_the_console_sessions_links_and_tokens(
    mapped_site: ConsoleSite, provider: Provider
) -> None:
    """The mapping decides: an admin removed from the group at the provider is no longer an admin here at all."""
    site = mapped_site
    provider.add_person("omar", email="omar@un.example.org", email_verified=True, groups=["tracker-admins"])
    first, answer = sign_in(site, provider, "omar")
    assert answer.status_code == 303 and role_of(site, "omar@un.example.org") == "admin"
    assert first.get("/console/subscribers/export").status_code == 200

    provider.add_person("omar", email="omar@un.example.org", email_verified=True, groups=["staff"])  # left the group
    _, refused = sign_in(site, provider, "omar")

    assert refused.status_code == 403
    assert role_of(site, "omar@un.example.org") is None  # no user: no emailed link, no API token works either
    assert first.get("/console/subscribers/export").status_code == 303  # the open session ended: sign in again
    assert [(e["reason"], e["actor"]) for e in events(site, "console_user_removed")] == [
        ("in no mapped group at the provider", "oidc")
    ]


def test_a_tampered_state_or_a_callback_in_another_browser_is_refused(site: ConsoleSite, provider: Provider) -> None:
    site.add_user(AMINA, "viewer")
    provider.add_person("amina", email=AMINA, email_verified=True)
    browser = site.browser()
    left = leave_for_provider(site, browser)
    callback = sign_in_at_provider(browser, left.headers["location"], "amina")
    state = parse_qs(urlsplit(callback).query)["state"][0]

    tampered = browser.get(callback.replace(f"state={state}", "state=forged"))
    elsewhere = site.browser().get(callback)  # the code stolen on its way: another browser has no flow cookie

    for answer in (tampered, elsewhere):
        assert answer.status_code == 400 and "Start again from the sign-in page" in answer.text
    assert browser.get("/console/").status_code == 303
    assert events(site, "console_signed_in") == []


def test_a_sign_in_that_took_longer_than_ten_minutes_is_refused(site: ConsoleSite, provider: Provider) -> None:
    site.add_user(AMINA, "viewer")
    provider.add_person("amina", email=AMINA, email_verified=True)
    browser = site.browser()
    left = leave_for_provider(site, browser)
    callback = sign_in_at_provider(browser, left.headers["location"], "amina")

    site.clock.move(timedelta(minutes=11))
    answer = browser.get(callback)

    assert answer.status_code == 400 and "took longer than 10 minutes" in answer.text


@pytest.mark.parametrize("mode", ["audience", "issuer", "nonce"])
def test_a_token_for_another_client_issuer_or_nonce_is_refused(
    site: ConsoleSite, provider: Provider, mode: str
) -> None:
    site.add_user(AMINA, "admin")
    provider.add_person("amina", email=AMINA, email_verified=True)
    provider.misbehave(mode)  # type: ignore[arg-type]
    try:
        browser, answer = sign_in(site, provider, "amina")
    finally:
        provider.misbehave(None)

    assert answer.status_code == 403 and "failed our checks" in answer.text, answer.text
    assert browser.get("/console/").status_code == 303
    [refused] = events(site, "console_sign_in_refused")
    assert refused["reason"].startswith("invalid token")
    # A token for another audience fails on 'azp' first: Authlib asks who it was issued for when we are not its aud.
    named = {"audience": ("'aud'", "'azp'"), "issuer": ("'iss'",), "nonce": ("'nonce'",)}[mode]
    assert any(claim in refused["reason"] for claim in named), refused["reason"]


def test_the_provider_refusing_is_said_in_the_readers_language(site: ConsoleSite, provider: Provider) -> None:
    browser = site.browser()
    left = browser.get("/console/oidc/start?lang=fr")
    assert browser.get(left.headers["location"]).status_code == 200
    denied = browser.post(left.headers["location"], data={"action": "deny"})

    answer = browser.get(denied.headers["location"] + "&lang=fr")
    hostile = browser.get("/console/oidc/callback?error=%3Cscript%3Ealert(1)%3C/script%3E")

    assert "error=access_denied" in denied.headers["location"]
    assert answer.status_code == 403 and "UN Login ne vous a pas connecté (access_denied)" in answer.text
    assert hostile.status_code == 403 and "<script>" not in hostile.text and "(error)" in hostile.text


def test_a_provider_that_cannot_be_reached_gets_a_clear_page(engine: Engine, smtp: SMTPTestServer) -> None:
    with sso_site(engine, smtp, AT, f"http://localhost:{free_port()}") as site:
        browser = site.browser()
        answer = leave_for_provider(site, browser)

    assert answer.status_code == 502
    assert "UN Login cannot be reached" in answer.text and "Traceback" not in answer.text


def test_a_provider_gone_between_leaving_and_coming_back_gets_a_clear_page(
    engine: Engine, smtp: SMTPTestServer
) -> None:
    with oidc_provider() as passing, sso_site(engine, smtp, AT, passing.issuer) as site:
        site.add_user(AMINA, "viewer")
        passing.add_person("amina", email=AMINA, email_verified=True)
        browser = site.browser()
        callback = sign_in_at_provider(browser, leave_for_provider(site, browser).headers["location"], "amina")
        passing.stop()  # the token endpoint is gone when the code comes back
        answer = browser.get(callback)
        still_out = browser.get("/console/")

    assert answer.status_code == 502 and "UN Login cannot be reached" in answer.text
    assert still_out.status_code == 303


def test_the_web_app_loads_authlib_only_where_single_sign_on_is_set_up() -> None:
    code = "import sys, tracker.web.app; print(sorted({m.split('.')[0] for m in sys.modules} & {'authlib', 'joserfc'}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert loaded.strip() == "[]"


def test_leaving_for_the_provider_is_rate_limited_per_client(
    engine: Engine, smtp: SMTPTestServer, provider: Provider
) -> None:
    with sso_site(engine, smtp, AT, provider.issuer, console_client_limit=2) as site:
        browser = site.browser()
        answers = [leave_for_provider(site, browser).status_code for _ in range(3)]

    assert answers == [303, 303, 429]


def test_in_chromium_a_user_signs_in_with_the_provider(site: ConsoleSite, provider: Provider, visit: OpenTab) -> None:
    site.add_user(AMINA, "secretary")
    provider.add_person("amina", email=AMINA, email_verified=True)
    tab = visit()

    tab.open(f"{site.url}/console/sign-in?lang=ar")
    tab.shoot("console-sign-in-sso-ar")
    tab.open(f"{site.url}/console/")
    tab.shoot("console-sign-in-sso-en")
    tab.page.get_by_role("link", name="Sign in with UN Login").click()
    tab.page.get_by_placeholder("sub").fill("amina")
    tab.page.get_by_role("button", name="Authorize").click()
    tab.page.get_by_role("heading", name="Dashboard").wait_for()

    assert tab.page.url == f"{site.url}/console/"


def test_the_settings_refuse_an_issuer_that_is_not_https_and_a_mapping_that_names_no_role() -> None:
    for wrong, said in [
        ({"oidc_issuer": "http://login.example.org", "oidc_client_id": "x"}, "must start with https://"),
        ({"oidc_issuer": "https://login.example.org"}, "TRACKER_OIDC_CLIENT_ID is empty"),
        ({"oidc_issuer": "https://login.example.org?x=1", "oidc_client_id": "x"}, "issuer URL"),
        ({"oidc_role_claim": "groups", "oidc_roles": "tracker-admins:boss"}, "'boss' is not a role"),
        ({"oidc_role_claim": "groups", "oidc_roles": "tracker-admins"}, "write GROUP:ROLE"),
        ({"oidc_role_claim": "groups"}, "set TRACKER_OIDC_ROLE_CLAIM and TRACKER_OIDC_ROLES together"),
    ]:
        with pytest.raises(ValidationError, match=re.escape(said)):
            Settings(**wrong)  # type: ignore[arg-type]
    Settings(oidc_issuer="https://login.example.org/realms/un", oidc_client_id="tracker")


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"email": AMINA, "email_verified": True}, Identity(AMINA, None)),
        ({"email": AMINA, "email_verified": "true"}, Identity(AMINA, None)),
        ({"email": AMINA}, "unverified"),
        ({"email": AMINA, "email_verified": "yes"}, "unverified"),
        ({"email": "not an address", "email_verified": True}, "no-email"),
        ({"email": ["a@b.org"], "email_verified": True}, "no-email"),
        ({"email_verified": True}, "no-email"),
    ],
)
def test_only_a_verified_address_names_someone(claims: dict[str, object], expected: object) -> None:
    assert read_identity(claims, role_claim="", roles={}) == expected


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (["tracker-viewers", "tracker-admins"], "admin"),  # the highest wins
        ("tracker-secretaries other", "secretary"),  # some providers send one string
        (["Tracker-Admins"], None),  # names are compared as they are written
        ([{"name": "tracker-admins"}], None),
        (None, None),
    ],
)
def test_the_role_claim_maps_to_the_highest_role_named(groups: object, expected: str | None) -> None:
    roles = parse_role_map("tracker-admins:admin, tracker-secretaries:secretary,tracker-viewers:viewer")
    identity = read_identity({"email": AMINA, "email_verified": True, "groups": groups}, role_claim="groups",
                             roles=roles)  # fmt: skip
    assert identity == (Identity(AMINA, expected) if expected else "no-role")  # type: ignore[arg-type]
