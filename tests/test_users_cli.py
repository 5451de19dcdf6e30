"""`tracker users`: who may sign in to the console, through the installed command."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import tracker


def test_users_add_list_and_remove_with_roles(env: dict[str, str], tmp_path: Path) -> None:
    added = tracker("users", "add", "Amina@Mission.example.org", "--role", "admin", env=env, cwd=tmp_path)
    tracker("users", "add", "li@mission.example.org", "--role", "viewer", "--language", "zh", env=env, cwd=tmp_path)
    listed = tracker("users", "list", "--json", env=env, cwd=tmp_path)
    removed = tracker("users", "remove", "AMINA@mission.example.org", env=env, cwd=tmp_path)
    after = tracker("users", "list", "--json", env=env, cwd=tmp_path)

    assert added.returncode == 0, added.stderr
    assert "Amina@mission.example.org: added (admin)" in added.stdout
    users = json.loads(listed.stdout)
    assert [(u["email"], u["role"], u["language"]) for u in users] == [
        ("Amina@mission.example.org", "admin", "en"),
        ("li@mission.example.org", "viewer", "zh"),
    ]
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert [u["email"] for u in json.loads(after.stdout)] == ["li@mission.example.org"]


def test_users_add_changes_the_role_of_a_known_user(env: dict[str, str], tmp_path: Path) -> None:
    tracker("users", "add", "li@mission.example.org", "--role", "viewer", env=env, cwd=tmp_path)
    changed = tracker("users", "add", "li@mission.example.org", "--role", "secretary", env=env, cwd=tmp_path)
    listed = tracker("users", "list", env=env, cwd=tmp_path)

    assert "li@mission.example.org: updated (secretary)" in changed.stdout
    assert "secretary" in listed.stdout


def test_users_refuses_a_bad_role_a_bad_address_and_an_unknown_user(env: dict[str, str], tmp_path: Path) -> None:
    role = tracker("users", "add", "li@mission.example.org", "--role", "root", env=env, cwd=tmp_path)
    address = tracker("users", "add", "not an address", "--role", "viewer", env=env, cwd=tmp_path)
    unknown = tracker("users", "remove", "nobody@mission.example.org", env=env, cwd=tmp_path)

    assert role.returncode == 2 and "'root' is not a role: use one of viewer, secretary, admin" in role.stderr
    assert address.returncode == 2 and "this is not an email address" in address.stderr
    assert unknown.returncode == 2 and "no user 'nobody@mission.example.org'" in unknown.stderr
    assert "Traceback" not in role.stderr + address.stderr + unknown.stderr
