"""DKIM: every message Tracker sends verifies with dkimpy's verifier, and a changed byte does not."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.crypto import parse_pem_private_key
from sqlalchemy import Engine

from tests.support.cli import TRACKER, cli_env, tracker
from tests.support.delivery import Clock, at, deliver, make_dispatcher, set_subscriber, subscribe, sync
from tests.support.emails import BASE, LOCALES, SENDER, TEMPLATES, make_request, make_view, recipient
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, WriteTimeline
from tracker.delivery.rendering import Recipe, RenderHelper
from tracker.emails import KINDS, Kind, Renderer, Sender
from tracker.mail import signing as signing_module
from tracker.mail.signing import SIGNED, SigningError, aligned, load_signer
from tracker.text import LANGUAGES

SELECTOR = "tracker2026"
DOMAIN = "tracker.example.org"  # SENDER's From domain
HOSTILE_NAMES = (
    "السيد منصور القرشي",
    "蔡国磊先生",
    'Dr "Bob" O\'Brien \\ chair',
    "Délégué Númber 5 " * 20,  # a long name: folded over several encoded words
    "Delegate\r\nBcc: victim@example.net",
    "=?utf-8?q?=0D=0ABcc:_victim@example.net?=",
)
DnsFunc = Callable[..., bytes | None]


@pytest.fixture(scope="module")
def key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


@pytest.fixture(scope="module")
def dns(key_pem: bytes) -> DnsFunc:
    """A DNS that knows one record: the test key's public half at SELECTOR._domainkey.DOMAIN."""
    return dns_for(key_pem, SELECTOR, DOMAIN)


def dns_for(key_pem: bytes, selector: str, domain: str) -> DnsFunc:
    key = serialization.load_pem_private_key(key_pem, password=None)
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    name = f"{selector}._domainkey.{domain}.".encode()

    def lookup(asked: bytes, timeout: float = 5) -> bytes | None:
        return record if asked == name else None

    return lookup


@pytest.fixture(scope="module")
def key_file(key_pem: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    path.write_bytes(key_pem)
    return path


@pytest.fixture(scope="module")
def signing(key_file: Path) -> Renderer:
    return Renderer(TEMPLATES, LOCALES, SENDER, signer=load_signer(key_file, SELECTOR, DOMAIN))


def verifies(data: bytes, dns: DnsFunc) -> bool:
    return bool(dkim.verify(data, dnsfunc=dns))


def signature_tags(data: bytes) -> dict[str, str]:
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    value = re.sub(r"\s+", "", str(message["DKIM-Signature"]))
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


# --- the renderer, both paths ----------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_verifies_in_every_language_on_both_paths(
    signing: Renderer, dns: DnsFunc, kind: Kind, language: str
) -> None:
    request = make_request(kind, language)

    fast = signing.render_bytes(request)
    whole = bytes(signing.render(request))

    assert verifies(fast, dns) and verifies(whole, dns)
    assert fast.startswith(b"DKIM-Signature: ") and whole.startswith(b"DKIM-Signature: ")
    # Apart from the signature (its t= is the second it was made), the same bytes as unsigned.
    assert b"From: " + fast.partition(b"\r\nFrom: ")[2] == Renderer(TEMPLATES, LOCALES, SENDER).render_bytes(request)


def test_the_signature_covers_the_list_headers_relaxed_without_a_length(signing: Renderer) -> None:
    tags = signature_tags(signing.render_bytes(make_request("reminder")))

    assert tags["c"] == "relaxed/relaxed" and tags["a"] == "rsa-sha256"
    assert (tags["d"], tags["s"]) == (DOMAIN, SELECTOR)
    assert tags["h"].split(":") == [name.lower() for name in SIGNED]
    assert "list-unsubscribe-post" in tags["h"] and "l" not in tags


@pytest.mark.parametrize("kind", ["reminder", "digest", "sign-in"])
def test_a_changed_subject_or_body_byte_fails(signing: Renderer, dns: DnsFunc, kind: Kind) -> None:
    data = signing.render_bytes(make_request(kind, "fr"))
    head, _, body = data.partition(b"\r\n\r\n")
    subject = re.search(rb"\r\nSubject: (.)", head)
    assert subject is not None
    at = subject.start(1)
    other_subject = head[:at] + bytes([head[at] ^ 1]) + head[at + 1 :] + b"\r\n\r\n" + body
    middle = len(body) // 2
    while body[middle : middle + 1] in (b"\r", b"\n", b" ", b"\t"):
        middle += 1
    other_body = head + b"\r\n\r\n" + body[:middle] + bytes([body[middle] ^ 1]) + body[middle + 1 :]

    assert verifies(data, dns)
    assert not verifies(other_subject, dns)
    assert not verifies(other_body, dns)
    assert not verifies(data.replace(b"List-Unsubscribe-Post: ", b"X-Unsubscribe-Post: "), dns)


def test_openssl_signs_the_very_bytes_dkimpy_would(key_file: Path) -> None:
    signer = load_signer(key_file, SELECTOR, DOMAIN)
    key = parse_pem_private_key(signer.key)
    digest = hashlib.sha256(b"the canonical headers")

    assert dkim.RSASSA_PKCS1_v1_5_sign is signing_module._sign_digest  # dkimpy's signer calls ours
    assert dkim.parse_pem_private_key is signing_module._parse_key
    assert key["modulus"] in signing_module._OPENSSL  # loaded by OpenSSL when the signer was checked
    assert signing_module._sign_digest(digest, key) == bytes(signing_module._PURE_SIGN(digest, key))


def test_another_key_at_the_selector_fails(signing: Renderer) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption())  # fmt: skip
    assert not verifies(signing.render_bytes(make_request("reminder")), dns_for(pem, SELECTOR, DOMAIN))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("kind", ["reminder", "changed", "confirm", "digest"])
def test_hostile_names_and_long_subjects_still_verify(signing: Renderer, dns: DnsFunc, kind: Kind, name: str) -> None:
    request = make_request(kind, "ar", recipient=replace(recipient("ar"), name=name))
    if request.view is not None:  # the subject carries the milestone's title: a very long one
        request = replace(request, view=make_view(title="Commentaires sur le projet révisé — " * 12 + "終"))

    for data in (signing.render_bytes(request), bytes(signing.render(request))):
        assert verifies(data, dns), name


def test_without_a_signer_there_is_no_signature(renderer: Renderer) -> None:
    for kind in KINDS:
        request = make_request(kind)
        assert b"DKIM-Signature" not in renderer.render_bytes(request)
        assert "DKIM-Signature" not in renderer.render(request)


# --- the settings ----------------------------------------------------------------------------


def test_domains_align_with_the_from_domain_or_a_parent() -> None:
    assert aligned("example.org", "example.org") and aligned("example.org", "tracker.example.org")
    assert aligned("mail.example.org", "example.org")
    assert not aligned("example.net", "example.org") and not aligned("org", "example.org")
    assert not aligned("ample.org", "example.org")


def test_an_unusable_key_is_refused_with_the_fix(tmp_path: Path, key_file: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    edwards = tmp_path / "ed25519.pem"
    edwards.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    public = tmp_path / "public.pem"
    public.write_text("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n")

    for path, reason in ((tmp_path / "missing.pem", "cannot read it"), (garbage, "not an RSA private key"),
                         (edwards, "not an RSA private key"), (public, "not an unencrypted PEM private key"),
                         (tmp_path, "cannot read it")):  # fmt: skip
        with pytest.raises(SigningError, match=reason) as raised:
            load_signer(path, SELECTOR, DOMAIN)
        assert "TRACKER_DKIM_KEY_FILE" in str(raised.value) and "openssl genrsa" in str(raised.value)
    short = tmp_path / "short.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(short), "768"], check=True, capture_output=True)
    with pytest.raises(SigningError, match="a 768-bit key, which receivers refuse"):
        load_signer(short, SELECTOR, DOMAIN)
    with pytest.raises(SigningError, match="TRACKER_DKIM_SELECTOR"):
        load_signer(key_file, "bad selector\r\nX-Evil: 1", DOMAIN)
    with pytest.raises(SigningError, match=r"TRACKER_DKIM_DOMAIN 'bücher\.example' .* xn-- form"):
        load_signer(key_file, SELECTOR, "bücher.example")


def test_a_key_with_crlf_line_ends_is_read(tmp_path: Path, key_pem: bytes, dns: DnsFunc) -> None:
    path = tmp_path / "windows.pem"
    path.write_bytes(key_pem.replace(b"\n", b"\r\n"))
    signer = load_signer(path, SELECTOR, DOMAIN)
    assert verifies(signer.sign(b"From: a@tracker.example.org\nSubject: x\n\nbody\n"), dns)


@pytest.fixture
def env(database_url: str, schedules: Path, key_file: Path) -> dict[str, str]:
    return cli_env(database_url, schedules, TRACKER_FROM="Tracker <tracker@tracker.example.org>",
                   TRACKER_BASE_URL=BASE)  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"TRACKER_DKIM_KEY_FILE": "{missing}"}, "TRACKER_DKIM_KEY_FILE and TRACKER_DKIM_SELECTOR together"),
        ({"TRACKER_DKIM_SELECTOR": SELECTOR}, "TRACKER_DKIM_KEY_FILE and TRACKER_DKIM_SELECTOR together"),
        ({"TRACKER_DKIM_KEY_FILE": "{missing}", "TRACKER_DKIM_SELECTOR": SELECTOR}, "cannot read it"),
        ({"TRACKER_DKIM_KEY_FILE": "{garbage}", "TRACKER_DKIM_SELECTOR": SELECTOR}, "not an unencrypted PEM"),
        ({"TRACKER_DKIM_KEY_FILE": "{key}", "TRACKER_DKIM_SELECTOR": SELECTOR, "TRACKER_DKIM_DOMAIN": "example.net"},
         "TRACKER_DKIM_DOMAIN 'example.net' does not align with the From address's domain 'tracker.example.org'"),
    ],
)  # fmt: skip
def test_bad_dkim_settings_stop_the_start_with_a_clear_message(
    env: dict[str, str], tmp_path: Path, key_file: Path, settings: dict[str, str], said: str
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    paths = {"missing": str(tmp_path / "missing.pem"), "garbage": str(garbage), "key": str(key_file)}
    values = {name: value.format(**paths) for name, value in settings.items()}

    result = tracker("preview", "digest", env={**env, **values}, cwd=tmp_path)

    assert result.returncode == 2
    assert said in result.stderr and "bad settings" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# --- what goes out: the preview, and the dispatcher through a real SMTP server ---------------


@pytest.mark.parametrize("kind", ["reminder", "changed", "digest", "confirm", "sign-in"])
def test_the_preview_shows_the_signed_message(
    env: dict[str, str], tmp_path: Path, key_file: Path, dns: DnsFunc, write_timeline: WriteTimeline, kind: str
) -> None:
    write_timeline("hlpf", HLPF)
    assert tracker("sync", env=env, cwd=tmp_path).returncode == 0
    milestone = () if kind in ("digest", "confirm", "sign-in") else ("--milestone", "hlpf/member-comments")
    dkim_env = {**env, "TRACKER_DKIM_KEY_FILE": str(key_file), "TRACKER_DKIM_SELECTOR": SELECTOR}

    signed = preview_bytes(dkim_env, tmp_path, kind, *milestone)
    unsigned = preview_bytes(env, tmp_path, kind, *milestone)

    assert signed.startswith(b"DKIM-Signature: ") and verifies(signed, dns)
    assert b"DKIM-Signature" not in unsigned


def preview_bytes(env: dict[str, str], cwd: Path, *args: str) -> bytes:
    result = subprocess.run([TRACKER, "preview", *args], env=env, cwd=cwd, capture_output=True, check=False,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def members(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Engine:
    """HLPF's 14-day reminder due, for 24 members in the six languages, some with hostile names."""
    write_timeline("hlpf", HLPF)
    now = at("2017-02-10 09:00")
    sync(engine, schedules, now)
    for n in range(24):
        member = subscribe(engine, f"member{n}@example.org", now, audiences=("secretariat",), language=LANGUAGES[n % 6])
        set_subscriber(engine, member, name=HOSTILE_NAMES[n % len(HOSTILE_NAMES)])
    return engine


@pytest.mark.parametrize("helper_after", ["0", "10"], ids=["rendered-here", "render-helper"])
def test_every_message_the_dispatcher_sends_verifies_at_the_server(
    members: Engine,
    database_url: str,
    schedules: Path,
    tmp_path: Path,
    smtp: SMTPTestServer,
    key_file: Path,
    dns: DnsFunc,
    helper_after: str,
) -> None:
    env = cli_env(database_url, schedules, TRACKER_SMTP_URL=smtp.url, TRACKER_RENDER_HELPER_AFTER=helper_after,
                  TRACKER_FROM="Tracker <tracker@tracker.example.org>", TRACKER_DKIM_KEY_FILE=str(key_file),
                  TRACKER_DKIM_SELECTOR=SELECTOR, TRACKER_DKIM_DOMAIN="Example.ORG")  # fmt: skip

    result = tracker("send-due", "--now", "2017-02-10 09:05", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "sent 24" in result.stdout
    if helper_after != "0":
        assert "24 rendered ahead in a helper process" in result.stdout
    parent = dns_for(key_file.read_bytes(), SELECTOR, "example.org")
    assert len(smtp.received) == 24
    languages = set()
    for mail in smtp.received:
        assert signature_tags(mail.content)["d"] == "example.org"
        assert verifies(mail.content, parent), mail.rcpt_tos
        assert not verifies(mail.content, dns)  # the record is looked up at d=, not at the From domain
        languages.add(str(mail.parse()["Content-Language"])[:2])
    assert languages == set(LANGUAGES)
    first = smtp.received[0].content
    assert not verifies(re.sub(rb"\r\nSubject: ", b"\r\nSubject: Re: ", first, count=1), parent)


def test_a_spawned_render_helper_signs_what_it_renders(members: Engine, smtp: SMTPTestServer, key_file: Path) -> None:
    """As `tracker run` renders ahead: a helper spawned from a recipe, the key loaded again there."""
    signer = load_signer(key_file, SELECTOR, "example.org")
    sender = Sender("Tracker <tracker@example.org>", "https://tracker.example.org", "<deadlines.example.org>")
    recipe = Recipe(TEMPLATES, LOCALES, sender, signer)
    dispatcher = make_dispatcher(members, smtp.url, Clock(at("2017-02-10 09:00")))
    dispatcher.renderer = recipe.build()
    helper = RenderHelper(dispatcher.renderer, recipe, after=1)
    dispatcher.helper = helper
    helper.expect(2)
    assert helper.wait_ready(60), "the helper did not start"

    result = deliver(dispatcher)

    assert (result.sent, result.rendered_ahead) == (24, 24)
    assert dispatcher.renderer.contents.made == 0  # every message was rendered, and signed, in the helper
    parent = dns_for(key_file.read_bytes(), SELECTOR, "example.org")
    assert all(verifies(mail.content, parent) for mail in smtp.received) and len(smtp.received) == 24


def test_without_dkim_no_process_imports_dkimpy() -> None:
    """dkimpy and its DNS library cost a tenth of a second at every start: only a signing process pays it."""
    code = (
        "import sys, tracker.delivery.dispatcher, tracker.cli.messages, tracker.config as c\n"
        "c.Settings(); assert 'dkim' not in sys.modules and 'dns' not in sys.modules, 'imported'"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    result = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
