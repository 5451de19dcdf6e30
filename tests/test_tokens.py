"""Signed tokens: unguessable, bound to their purpose, revocable; the secret key is never a placeholder."""

from __future__ import annotations

import base64
import hmac
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tracker.subscribers.tokens import SecretKeyError, load_secret_key, make_token, read_token

SECRET = b"k" * 48


def test_a_token_reads_back_its_subscriber_and_version() -> None:
    token = make_token(SECRET, "manage", 42, 3)

    assert read_token(SECRET, "manage", token) == (42, 3)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # another signature
        lambda t: make_token(SECRET, "manage", 43, 0).split(".")[0] + "." + t.split(".")[1],  # another subscriber
        lambda t: "",
        lambda t: "not-a-token",
        lambda t: t + "." + t,
    ],
)
def test_a_forged_or_damaged_token_is_refused(tamper: Callable[[str], str]) -> None:
    token = make_token(SECRET, "manage", 42, 0)

    assert read_token(SECRET, "manage", tamper(token)) is None


def test_a_token_works_only_for_its_purpose_and_its_key() -> None:
    token = make_token(SECRET, "feed", 7, 0)

    assert read_token(SECRET, "manage", token) is None
    assert read_token(b"x" * 48, "feed", token) is None


def test_tokens_are_not_guessable_from_each_other() -> None:
    tokens = {make_token(SECRET, "manage", n, 0).split(".")[1] for n in range(1000)}

    assert len(tokens) == 1000


@pytest.mark.parametrize("key", ["changeme", "secret", "", "short-key"])
def test_placeholder_and_short_keys_are_refused(key: str, tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text(key or "x")

    with pytest.raises(SecretKeyError, match="at least 32 characters"):
        load_secret_key(key or "x", tmp_path / "secret_key")


def test_a_key_is_generated_once_and_kept_even_when_two_instances_start_together(tmp_path: Path) -> None:
    target = tmp_path / "var" / "secret_key"
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(load_secret_key("", target))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(keys)) == 1 and len(keys[0]) >= 32
    assert load_secret_key("", target) == keys[0]
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in target.parent.iterdir()] == ["secret_key"]


def test_a_token_does_not_show_which_subscriber_it_names() -> None:
    bodies = {n: make_token(SECRET, "manage", n, 0).split(".")[0] for n in (41, 42, 1000, 123456)}

    for n, body in bodies.items():
        decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        assert str(n).encode() not in decoded, (n, decoded)
    # Neighbours look unrelated: nothing to count up or down from.
    same = sum(a == b for a, b in zip(bodies[41], bodies[42], strict=True))
    assert same < len(bodies[41]) // 4


@pytest.mark.parametrize(("subscriber_id", "version"), [(1, 0), (42, 3), (2**40, 2**20), (2**63 - 1, 2**63 - 1)])
def test_every_subscriber_and_version_reads_back(subscriber_id: int, version: int) -> None:
    token = make_token(SECRET, "feed", subscriber_id, version)

    assert read_token(SECRET, "feed", token) == (subscriber_id, version)
    assert len(token) <= 64 and token.isascii()


def test_a_link_written_before_tokens_were_opaque_still_works() -> None:
    # The first form of a token, in emails already sent: base64 of "id.version", then the signature.
    body = base64.urlsafe_b64encode(b"42.3").rstrip(b"=").decode()
    signature = hmac.digest(SECRET, f"manage:{body}".encode(), "sha256")[:18]
    token = f"{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    assert read_token(SECRET, "manage", token) == (42, 3)
    assert read_token(SECRET, "feed", token) is None
