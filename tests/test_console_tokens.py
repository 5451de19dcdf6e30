"""The console's API tokens page, over real HTTP: an admin creates a token (shown once), it works, they revoke it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from tests.support.console import ConsoleSite, console_site, csrf_of
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, NOW, WriteTimeline
from tracker.accounts import api_tokens
from tracker.store.engine import transaction
from tracker.store.models import ApiToken, Event
from tracker.timelines.pipeline import sync_folder

ADMIN = "root@un.example.org"
AMINA = "amina@mission.example.org"
TOKEN = re.compile(r'<code id="token"[^>]*>(trk_[A-Za-z0-9_-]+)</code>')
DONE = "/api/milestones/hlpf/revised-draft/done"


@pytest.fixture
def site(engine: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline) -> Iterator[ConsoleSite]:
    write_timeline("hlpf", HLPF)
    assert sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["14d", "7d", "1d"], now=NOW).ok
    with console_site(engine, smtp, NOW.replace(month=2, day=27)) as found:
        yield found


def create(browser: httpx.Client, **fields: str) -> httpx.Response:
    page = browser.get("/console/tokens")
    return browser.post("/console/tokens", data={"csrf": csrf_of(page), **fields})


def test_an_admin_creates_a_token_that_is_shown_once_and_works(site: ConsoleSite) -> None:
    admin = site.sign_in(ADMIN, "admin")
    site.add_user(AMINA, "secretary")

    created = create(admin, name="website sync", owner=AMINA, days="30")
    found = TOKEN.search(created.text)
    listing = admin.get("/console/tokens")
    used = httpx.post(site.url + DONE, headers={"Authorization": f"Bearer {found.group(1) if found else ''}"})

    assert created.status_code == 201 and found is not None
    assert created.headers["cache-control"] == "no-store"
    assert "Copy it now: it is not shown again" in created.text
    token = found.group(1)
    assert listing.status_code == 200 and "website sync" in listing.text and AMINA in listing.text
    assert token not in listing.text and token.split("_", 2)[2] not in listing.text
    assert listing.headers["cache-control"] == "no-store"
    assert used.status_code == 200, used.text
    with transaction(site.engine) as session:
        row = session.exec(select(ApiToken)).one()
        created_by = session.exec(select(Event).where(Event.kind == "api_token_created")).one().actor
        completed_by = session.exec(select(Event).where(Event.kind == "completed")).first()
    assert (row.name, row.role) == ("website sync", "secretary") and token not in row.secret_hash
    assert created_by == f"console:{ADMIN}"
    assert completed_by is not None and completed_by.actor == f"api:website sync ({AMINA})"


def test_the_form_refuses_a_role_above_the_owners_and_keeps_what_was_typed(site: ConsoleSite) -> None:
    admin = site.sign_in(ADMIN, "admin")
    site.add_user(AMINA, "viewer")

    above = create(admin, name="ci", owner=AMINA, role="secretary")
    nobody = create(admin, name="ci", owner="nobody@un.example.org")
    days = create(admin, name="ci", days="forever")
    bad_name = create(admin, name="<script>")

    assert above.status_code == 422 and "a token cannot have a role above its owner" in above.text
    assert 'value="ci"' in above.text and f'value="{AMINA}"' in above.text
    assert nobody.status_code == 422 and "no user has this address" in nobody.text
    assert days.status_code == 422 and "a whole number of days" in days.text
    assert bad_name.status_code == 422 and "<script>" not in bad_name.text and "&lt;script&gt;" in bad_name.text
    with transaction(site.engine) as session:
        assert session.exec(select(ApiToken)).all() == []


def test_a_superscript_digit_in_days_is_told_not_a_500(site: ConsoleSite) -> None:
    admin = site.sign_in(ADMIN, "admin")

    answer = create(admin, name="sync", days="²")  # "²".isdigit() is True; int("²") raises

    assert answer.status_code == 422 and "a whole number of days" in answer.text
    assert 'value="sync"' in answer.text


def test_a_name_taken_by_a_concurrent_creation_is_told_as_taken_not_a_500(
    site: ConsoleSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = site.sign_in(ADMIN, "admin")
    assert create(admin, name="ops").status_code == 201
    # As when another admin creates "ops" after this request's check: the check finds nothing, the insert clashes.
    monkeypatch.setattr(api_tokens, "live_named", lambda session, name: None)

    again = create(admin, name="ops")

    assert again.status_code == 422 and "a token of this name exists" in again.text
    with transaction(site.engine) as session:
        assert [row.name for row in session.exec(select(ApiToken))] == ["ops"]
        assert len(session.exec(select(Event).where(Event.kind == "api_token_created")).all()) == 1


def test_an_admin_revokes_a_token_and_it_stops_working(site: ConsoleSite) -> None:
    admin = site.sign_in(ADMIN, "admin")
    token = TOKEN.search(create(admin, name="ops").text)
    assert token is not None
    with transaction(site.engine) as session:
        token_id = session.exec(select(ApiToken)).one().id
    page = admin.get("/console/tokens")

    forged = admin.post(f"/console/tokens/{token_id}/revoke", data={"csrf": "forged"})
    revoked = admin.post(f"/console/tokens/{token_id}/revoke", data={"csrf": csrf_of(page)})
    after = admin.get("/console/tokens")
    missing = admin.post("/console/tokens/999/revoke", data={"csrf": csrf_of(page)})
    used = httpx.post(site.url + DONE, headers={"Authorization": f"Bearer {token.group(1)}"})

    assert forged.status_code == 403
    assert revoked.status_code == 303 and revoked.headers["location"] == "/console/tokens"
    assert "revoked" in after.text and f'action="/console/tokens/{token_id}/revoke"' not in after.text
    assert missing.status_code == 404
    assert used.status_code == 401
    with transaction(site.engine) as session:
        event = session.exec(select(Event).where(Event.kind == "api_token_revoked")).one()
    assert event.actor == f"console:{ADMIN}" and (event.detail or {})["name"] == "ops"


def test_creating_a_token_needs_the_form_token(site: ConsoleSite) -> None:
    admin = site.sign_in(ADMIN, "admin")
    admin.get("/console/tokens")

    forged = admin.post("/console/tokens", data={"csrf": "forged", "name": "ci"})

    assert forged.status_code == 403
    with transaction(site.engine) as session:
        assert session.exec(select(ApiToken)).all() == []


@pytest.mark.parametrize(("language", "button", "created"),
                         [("fr", "Créer le jeton", "Jeton créé"), ("ar", "أنشئ الرمز", "أُنشئ الرمز"),
                          ("zh", "创建此令牌", "令牌已创建")])  # fmt: skip
def test_the_tokens_page_and_its_answer_speak_the_readers_language(
    site: ConsoleSite, language: str, button: str, created: str
) -> None:
    admin = site.sign_in(ADMIN, "admin", language)

    page = admin.get(f"/console/tokens?lang={language}")
    answer = admin.post(f"/console/tokens?lang={language}", data={"csrf": csrf_of(page), "name": "ci"})

    assert page.status_code == 200
    assert "Create the token" not in page.text and button in page.text
    assert f'action="/console/tokens?lang={language}"' in page.text
    assert answer.status_code == 201 and created in answer.text and TOKEN.search(answer.text) is not None
