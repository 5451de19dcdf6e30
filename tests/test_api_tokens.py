"""Personal API tokens: made with `tracker users token`, shown once, hashed at rest, used over real HTTP on /api."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, inspect, text
from sqlmodel import select

from tests.support.cli import tracker
from tests.support.console import ConsoleSite, console_site
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, NOW, WriteTimeline
from tracker.accounts import api_tokens
from tracker.accounts.api_tokens import TokenError, create_token
from tracker.accounts.roles import Role
from tracker.accounts.users import find_user, remove_user, save_user
from tracker.store.engine import transaction
from tracker.store.models import ApiToken, Event
from tracker.timelines.pipeline import sync_folder

DONE = "/api/milestones/hlpf/revised-draft/done"
REOPEN = "/api/milestones/hlpf/revised-draft/reopen"
AMINA = "amina@mission.example.org"
OLD_TOKEN = "the-old-shared-admin-token-0123456789"
AT = NOW.replace(month=2, day=27)


@pytest.fixture
def site(engine: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline) -> Iterator[ConsoleSite]:
    write_timeline("hlpf", HLPF)
    assert sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["14d", "7d", "1d"], now=NOW).ok
    with console_site(engine, smtp, AT, admin_token=OLD_TOKEN, api_token_failures=3) as found:
        yield found


def token_of(site: ConsoleSite, email: str, role: Role, *, token_role: Role | None = None, days: int | None = None,
             name: str = "website") -> str:  # fmt: skip
    """A new user *email* with *role* and a token of theirs, as `tracker users token add` makes it."""
    with transaction(site.engine, write=True) as session:
        user, _ = save_user(session, email, role, "en", site.clock())
        _, token = create_token(session, user, name, token_role, days, site.clock())
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def actors(engine: Engine, kind: str) -> list[str]:
    with transaction(engine) as session:
        return [event.actor for event in session.exec(select(Event).where(Event.kind == kind))]


def stored_token(engine: Engine) -> ApiToken:
    with transaction(engine) as session:
        return session.exec(select(ApiToken)).one()


def test_a_token_is_printed_once_and_nothing_stored_gives_it_back(env: dict[str, str], tmp_path: Path,
                                                                  engine: Engine) -> None:  # fmt: skip
    tracker("users", "add", AMINA, "--role", "secretary", env=env, cwd=tmp_path)
    added = tracker("users", "token", "add", AMINA, "--name", "website sync", "--days", "30", env=env, cwd=tmp_path)
    listed = tracker("users", "token", "list", "--json", env=env, cwd=tmp_path)
    table = tracker("users", "token", "list", env=env, cwd=tmp_path)

    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert token.startswith("trk_") and len(token) > 50
    assert "copy it now, it is not shown again" in added.stdout
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["owner"], row["role"], row["last_used_at"], row["revoked_at"]) == (
        "website sync", AMINA, "secretary", None, None)  # fmt: skip
    assert row["expires_at"] is not None
    secret_part = token.split("_", 2)[2]
    assert token not in listed.stdout + table.stdout and secret_part not in listed.stdout + table.stdout
    with engine.connect() as connection:  # every column of every row: no plaintext anywhere
        columns = [c["name"] for c in inspect(engine).get_columns("api_tokens")]
        cells = [str(cell) for found in connection.execute(text("SELECT * FROM api_tokens")) for cell in found]
    assert len(cells) == len(columns)
    assert not any(secret_part in cell or token in cell for cell in cells)
    assert hashlib.sha256(token.encode()).hexdigest() in cells  # only its hash: what a request is checked against
    assert [actor.startswith("cli:") for actor in actors(engine, "api_token_created")] == [True]


def test_the_cli_refuses_a_role_above_the_owners_a_taken_name_and_revokes_by_name_or_id(
    env: dict[str, str], tmp_path: Path
) -> None:
    tracker("users", "add", AMINA, "--role", "secretary", env=env, cwd=tmp_path)
    above = tracker("users", "token", "add", AMINA, "--name", "ci", "--role", "admin", env=env, cwd=tmp_path)
    first = tracker("users", "token", "add", AMINA, "--name", "ci", "--role", "viewer", env=env, cwd=tmp_path)
    taken = tracker("users", "token", "add", AMINA, "--name", "ci", env=env, cwd=tmp_path)
    nobody = tracker("users", "token", "add", "li@mission.example.org", "--name", "x", env=env, cwd=tmp_path)
    by_name = tracker("users", "token", "revoke", "ci", env=env, cwd=tmp_path)
    again = tracker("users", "token", "add", AMINA, "--name", "ci", env=env, cwd=tmp_path)
    by_id = tracker("users", "token", "revoke", "2", env=env, cwd=tmp_path)
    twice = tracker("users", "token", "revoke", "2", env=env, cwd=tmp_path)
    listed = json.loads(tracker("users", "token", "list", "--json", env=env, cwd=tmp_path).stdout)

    assert above.returncode == 2 and "a token of theirs can be at most secretary" in above.stderr
    assert first.returncode == 0 and taken.returncode == 2 and "a token named 'ci' exists" in taken.stderr
    assert nobody.returncode == 2 and "no user 'li@mission.example.org'" in nobody.stderr
    assert by_name.returncode == 0 and "revoked" in by_name.stdout
    assert again.returncode == 0 and by_id.returncode == 0
    assert twice.returncode == 1 and "revoked already" in twice.stderr
    assert [(t["id"], t["role"], t["revoked_at"] is not None) for t in listed] == [(2, "secretary", True),
                                                                                   (1, "viewer", True)]  # fmt: skip
    assert "Traceback" not in above.stderr + taken.stderr + nobody.stderr + twice.stderr


def test_revoking_a_token_named_by_a_superscript_digit_says_there_is_none(env: dict[str, str], tmp_path: Path) -> None:
    tracker("users", "add", AMINA, "--role", "secretary", env=env, cwd=tmp_path)
    tracker("users", "token", "add", AMINA, "--name", "ci", env=env, cwd=tmp_path)

    revoked = tracker("users", "token", "revoke", "²", env=env, cwd=tmp_path)  # "²".isdigit() is True

    assert revoked.returncode == 2 and "no token '²'" in revoked.stderr, revoked.stderr
    assert "Traceback" not in revoked.stderr


def test_a_name_taken_between_the_check_and_the_insert_is_a_token_error(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with transaction(engine, write=True) as session:
        user, _ = save_user(session, AMINA, "secretary", "en", NOW)
        create_token(session, user, "ci", None, None, NOW)
    monkeypatch.setattr(api_tokens, "live_named", lambda session, name: None)  # another creation won the race

    with transaction(engine, write=True) as session:
        owner = find_user(session, AMINA)
        assert owner is not None
        with pytest.raises(TokenError) as refused:
            create_token(session, owner, "ci", None, None, NOW)
        create_token(session, owner, "ci-2", None, None, NOW)  # the transaction is still usable

    assert refused.value.reason == "taken" and "a token named 'ci' exists" in str(refused.value)
    with transaction(engine) as session:
        assert sorted(row.name for row in session.exec(select(ApiToken))) == ["ci", "ci-2"]


def test_a_secretary_token_records_a_completion_in_the_name_of_the_token_and_its_owner(site: ConsoleSite) -> None:
    token = token_of(site, AMINA, "secretary")

    done = httpx.post(site.url + DONE, headers=bearer(token), json={"note": "posted"})
    first_use = stored_token(site.engine).last_used_at
    site.clock.move(timedelta(seconds=30))
    reopened = httpx.post(site.url + REOPEN, headers=bearer(token), json={"note": "wrong file"})
    within_a_minute = stored_token(site.engine).last_used_at
    site.clock.move(timedelta(minutes=2))
    httpx.post(site.url + DONE, headers=bearer(token), json={})
    later = stored_token(site.engine).last_used_at

    assert done.status_code == 200, done.text
    assert reopened.status_code == 200, reopened.text
    assert "deprecation" not in done.headers
    assert actors(site.engine, "completed")[0] == f"api:website ({AMINA})"
    assert actors(site.engine, "reopened") == [f"api:website ({AMINA})"]
    assert first_use == AT and within_a_minute == AT and later == AT + timedelta(minutes=2, seconds=30)


def test_a_viewer_token_may_not_write_and_an_admin_token_may(site: ConsoleSite) -> None:
    viewer = token_of(site, "li@mission.example.org", "viewer", name="reader")
    admin = token_of(site, "root@un.example.org", "admin", name="ops")

    refused = httpx.post(site.url + DONE, headers=bearer(viewer), json={})
    allowed = httpx.post(site.url + DONE, headers=bearer(admin), json={})

    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("the token 'reader' has the role viewer: writes need secretary or admin")
    assert allowed.status_code == 200, allowed.text
    assert actors(site.engine, "completed")[0] == "api:ops (root@un.example.org)"


def test_a_token_limited_below_its_owners_role_keeps_its_limit(site: ConsoleSite) -> None:
    token = token_of(site, AMINA, "admin", token_role="viewer")

    assert httpx.post(site.url + DONE, headers=bearer(token), json={}).status_code == 403


def test_lowering_the_owners_role_lowers_their_tokens(site: ConsoleSite) -> None:
    token = token_of(site, AMINA, "admin")
    with transaction(site.engine, write=True) as session:
        save_user(session, AMINA, "viewer", "en", site.clock())

    answer = httpx.post(site.url + DONE, headers=bearer(token), json={})

    assert answer.status_code == 403 and "has the role viewer" in answer.json()["detail"]
    assert stored_token(site.engine).role == "viewer"


@pytest.mark.parametrize("how", ["revoked", "expired", "owner removed"])
def test_a_revoked_or_expired_token_or_one_whose_owner_left_is_refused_with_401(site: ConsoleSite, how: str) -> None:
    token = token_of(site, AMINA, "secretary", days=1)
    assert httpx.post(site.url + REOPEN, headers=bearer(token), json={}).status_code == 409  # works: nothing to reopen
    if how == "revoked":
        with transaction(site.engine, write=True) as session:
            session.exec(select(ApiToken)).one().revoked_at = site.clock()
    elif how == "expired":
        site.clock.move(timedelta(days=1))
    else:
        with transaction(site.engine, write=True) as session:
            user = find_user(session, AMINA)
            assert user is not None
            remove_user(session, user, site.clock())

    refused = httpx.post(site.url + DONE, headers=bearer(token), json={})

    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="tracker", error="invalid_token"'
    assert {"revoked": "this token was revoked", "expired": "this token has expired",
            "owner removed": "this token was revoked"}[how] in refused.json()["detail"]  # fmt: skip
    assert "tracker users token add" in refused.json()["detail"]
    assert actors(site.engine, "completed") == []


def test_refused_tokens_are_recorded_and_limited_per_client(site: ConsoleSite) -> None:
    good = token_of(site, AMINA, "secretary")
    wrong = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    guesses = [wrong, "trk_000000000000_" + "x" * 43, "not-a-token"]

    refused = [httpx.post(site.url + DONE, headers=bearer(guess), json={}) for guess in guesses]
    limited = httpx.post(site.url + DONE, headers=bearer("another-guess"), json={})
    even_good = httpx.post(site.url + DONE, headers=bearer(good), json={})
    no_header = httpx.post(site.url + DONE, json={})

    assert [answer.status_code for answer in refused] == [401, 401, 401]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert even_good.status_code == 429  # the client waits, whatever it sends next
    assert no_header.status_code == 429
    with transaction(site.engine) as session:
        events = session.exec(select(Event).where(Event.kind == "api_token_refused")).all()
    details = [event.detail or {} for event in events]
    assert [(d["reason"], d["client"], d.get("token")) for d in details] == [
        ("unknown", "127.0.0.1", good.split("_")[1]), ("unknown", "127.0.0.1", "000000000000"),
        ("malformed", "127.0.0.1", None)]  # fmt: skip
    recorded = json.dumps(details)
    assert good.split("_", 2)[2][:-4] not in recorded and "x" * 43 not in recorded and "not-a-token" not in recorded


def test_the_old_shared_token_still_works_and_says_it_is_deprecated(
    site: ConsoleSite, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tracker.web.api_auth"):
        done = httpx.post(site.url + DONE, headers=bearer(OLD_TOKEN), json={})

    assert done.status_code == 200, done.text
    assert done.headers["deprecation"] == "true"
    assert actors(site.engine, "completed")[0] == "api"
    warnings = [r.getMessage() for r in caplog.records if r.name == "tracker.web.api_auth"]
    assert any("TRACKER_ADMIN_TOKEN is deprecated" in w and "tracker users token add EMAIL --name NAME" in w
               for w in warnings)  # fmt: skip


def test_the_old_shared_token_is_named_deprecated_when_the_app_starts(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    from tracker.config import Settings
    from tracker.feeds.calendars import Calendars
    from tracker.web.app import create_app

    calendars = Calendars(engine, base_url="http://127.0.0.1", cancelled_grace=timedelta(days=30), secret=b"k" * 48)
    with caplog.at_level(logging.WARNING, logger="tracker.web.api_auth"):
        create_app(engine, calendars, settings=Settings(admin_token=OLD_TOKEN))
        create_app(engine, calendars, settings=Settings(admin_token=""))

    warnings = [r.getMessage() for r in caplog.records if "TRACKER_ADMIN_TOKEN is deprecated" in r.getMessage()]
    assert len(warnings) == 1 and "`tracker users token add EMAIL --name NAME --role secretary`" in warnings[0]


def test_lowering_a_users_role_or_removing_them_with_the_cli_reaches_their_tokens(
    env: dict[str, str], tmp_path: Path
) -> None:
    tracker("users", "add", AMINA, "--role", "admin", env=env, cwd=tmp_path)
    tracker("users", "token", "add", AMINA, "--name", "ops", env=env, cwd=tmp_path)
    tracker("users", "add", AMINA, "--role", "viewer", env=env, cwd=tmp_path)
    lowered = json.loads(tracker("users", "token", "list", "--json", env=env, cwd=tmp_path).stdout)
    removed = tracker("users", "remove", AMINA, env=env, cwd=tmp_path)
    after = json.loads(tracker("users", "token", "list", "--json", env=env, cwd=tmp_path).stdout)
    events = json.loads(tracker("events", "--json", env=env, cwd=tmp_path).stdout)

    assert [(t["name"], t["role"], t["revoked_at"]) for t in lowered] == [("ops", "viewer", None)]
    assert "their API tokens revoked" in removed.stdout
    assert [(t["name"], t["owner"], t["revoked_at"] is not None) for t in after] == [("ops", None, True)]
    created = next(e for e in events if e["kind"] == "api_token_created")
    assert "name: ops" in created["detail"] and created["subject"] == AMINA
