"""Channels through the outbox: a webhook, Teams and Slack told what subscribers are told, against a real HTTP receiver.

The receiver is a real server on loopback, started by each test; signatures are checked here
with the standard library, independently of Tracker's own code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from tests.support.cli import cli_env, tracker
from tests.support.delivery import Clock, at, deliver, make_dispatcher, mark_done, rows, subscribe, sync
from tests.support.factories import REPO
from tests.support.receiver import Answer, Receiver
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, WriteTimeline
from tracker.channels import channel_of, posting
from tracker.channels.settings import read_channels
from tracker.delivery.dispatcher import NO_TIME_LEFT, Dispatcher
from tracker.delivery.outbox_log import LogQuery, search
from tracker.delivery.rendering import Recipe, RenderHelper
from tracker.delivery.showing import show_message
from tracker.emails import Sender
from tracker.store.engine import transaction
from tracker.store.models import Channel

SECRET = "a-webhook-secret-of-some-length-0123"
REMINDER_AT = "2017-02-10 09:00"  # 14 days before the revised draft's deadline (24 Feb), at the reminder hour


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def hlpf(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Engine:
    write_timeline("hlpf", HLPF)
    sync(engine, schedules, at("2017-02-01 09:00"))
    return engine


def write_channels(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "channels.toml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def webhook(url: str, *, name: str = "site", audiences: str = '["secretariat"]', extra: str = "") -> str:
    return f"""
    [channels.{name}]
    kind = "webhook"
    url = "{url}/hook/{name}"
    secret_env = "TRACKER_TEST_HOOK_SECRET"
    audiences = {audiences}
    {extra}
    """


def dispatcher_for(engine: Engine, smtp_url: str, clock: Clock, channels: Path, **config: object) -> Dispatcher:
    return make_dispatcher(engine, smtp_url, clock, channels_file=channels, **config)


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does (docs/channels.md): recompute the HMAC of "t.body" and compare in constant time."""
    parts = dict(item.split("=", 1) for item in headers["tracker-signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return parts["t"] == headers["tracker-timestamp"] and hmac.compare_digest(expected, parts["v1"])


def documented_verify() -> Callable[..., bool]:
    """The `verify` function of docs/channels.md's Python block."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "channels.md").read_text(encoding="utf-8")
    [code] = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # the repository's own documentation
    return cast("Callable[..., bool]", namespace["verify"])


@pytest.fixture(autouse=True)
def hook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKER_TEST_HOOK_SECRET", SECRET)


def test_a_webhook_gets_a_reminder_once_signed_with_its_secret(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    channels = write_channels(tmp_path, webhook(receiver.url))
    clock = Clock(at(REMINDER_AT) - timedelta(minutes=1))
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels)).sent == 0
    clock.advance(minutes=1)
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels)).sent == 1
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels)).sent == 0  # once
    [request] = receiver.received
    assert request.path == "/hook/site"
    assert verify(SECRET, request.headers, request.body)
    assert not verify("another-secret-0123456789", request.headers, request.body)
    documented = documented_verify()  # the receiver docs/channels.md gives, as a reader would copy it
    headers = {"Tracker-Signature": request.headers["tracker-signature"]}
    assert documented(SECRET, headers, request.body)
    assert not documented(SECRET, headers, request.body.replace(b"reminder", b"reminded"))
    assert not documented(SECRET, headers, request.body, tolerance=-1)  # too old
    assert documented(SECRET, {"tracker-signature": headers["Tracker-Signature"]}, request.body)  # any case
    for hostile in ("v1=é", "v1=00", "t=x,v1=00", "garbage", ""):  # refused, never an exception
        assert not documented(SECRET, {"Tracker-Signature": hostile}, request.body)
    assert not documented(SECRET, {}, request.body)
    body = request.json()
    assert body["schema"] == "tracker.channel-message/1"
    assert (body["kind"], body["channel"], body["language"], body["offset"]) == ("reminder", "site", "en", "14d")
    assert body["milestone"]["key"] == "revised-draft" and body["milestone"]["zone"] == "Europe/Zurich"
    assert body["milestone"]["due_at"] == "2017-02-24T22:59:59Z"  # all day: the end of 24 Feb in Geneva, in UTC
    assert body["timeline"] == {"id": "hlpf", "title": "ITU Council contribution to HLPF-17",
                                "page": "https://tracker.example.org/timelines/hlpf"}  # fmt: skip
    assert "Revised draft posted" in body["title"] and "Revised draft posted" in body["text"]
    assert "attached calendar" not in body["text"]  # a channel gets no calendar file
    [row] = rows(hlpf, state="sent")
    assert request.headers["tracker-delivery"] == body["id"] and body["delivery"] == row.id
    assert channel_of(row.subscriber_id) is not None and row.kind == "reminder" and row.slot == "14d"
    assert row.reply.startswith("200")
    with transaction(hlpf) as session:  # the console's outbox names it, and finds it by name
        found, _ = search(session, LogQuery(address="channel:site", state="sent"))
    assert [(entry.email, entry.row.kind) for entry in found] == [("channel:site (webhook)", "reminder")]
    with transaction(hlpf) as session:  # and shows what it is posted, without its URL or signature
        shown = show_message(session, dispatcher_for(hlpf, smtp.url, clock, channels).renderer, found[0].row,
                             "https://tracker.example.org", clock.now)  # fmt: skip
    assert shown.headers == [("POST", "channel:site (webhook)"), ("Tracker-Delivery", body["id"])]
    assert json.loads(shown.text) == body  # what was posted, as it would be posted now
    assert receiver.url not in shown.text and SECRET not in shown.text


def test_a_channel_follows_its_audiences_and_timelines_as_a_subscriber_does(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    text = webhook(receiver.url, name="members", audiences='["membership"]')
    text += webhook(receiver.url, name="secretariat", audiences='["secretariat"]', extra='timelines = ["hlpf"]')
    text += webhook(receiver.url, name="elsewhere", audiences='["secretariat"]', extra='timelines = ["cwg-32"]')
    channels = write_channels(tmp_path, text)
    clock = Clock(at(REMINDER_AT))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    result = deliver(dispatcher_for(hlpf, smtp.url, clock, channels))
    assert result.sent == 2  # the subscriber's email and the secretariat channel's post
    assert [r.path for r in receiver.received] == ["/hook/secretariat"]


def test_a_server_error_is_retried_with_the_same_delivery_id(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    channels = write_channels(tmp_path, webhook(receiver.url))
    receiver.answer(Answer(500, body=b"database down"))
    clock = Clock(at(REMINDER_AT))
    result = deliver(dispatcher_for(hlpf, smtp.url, clock, channels))
    assert (result.sent, result.retrying) == (0, 1)
    [row] = rows(hlpf, kind="reminder", milestone_key="revised-draft", slot="14d")
    assert row.state == "planned" and row.attempt_at > clock.now
    assert row.last_error == "HTTP 500 database down"

    clock.now = row.attempt_at
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels)).sent == 1
    first, second = receiver.received
    assert first.headers["tracker-delivery"] == second.headers["tracker-delivery"]
    assert first.json()["id"] == second.json()["id"]


def test_too_many_requests_waits_as_long_as_retry_after_says(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    channels = write_channels(tmp_path, webhook(receiver.url))
    receiver.answer(Answer(429, {"Retry-After": "600"}))
    clock = Clock(at(REMINDER_AT))
    tried_at = clock.now
    deliver(dispatcher_for(hlpf, smtp.url, clock, channels, retry_base=timedelta(seconds=1)))
    [row] = rows(hlpf, kind="reminder", milestone_key="revised-draft", slot="14d")
    assert row.state == "planned" and row.attempt_at >= tried_at + timedelta(seconds=600)

    clock.advance(seconds=599)  # its own backoff (a second) is long over, Retry-After's is not
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels, retry_base=timedelta(seconds=1))).sent == 0
    assert len(receiver.received) == 1
    clock.now = row.attempt_at
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels, retry_base=timedelta(seconds=1))).sent == 1
    assert len(receiver.received) == 2


def test_a_refusal_fails_the_row_with_the_receivers_words(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    channels = write_channels(tmp_path, webhook(receiver.url))
    receiver.answer(Answer(404, body=b"no such hook\x1b[31m red"))
    clock = Clock(at(REMINDER_AT))
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels)).failed == 1
    [row] = rows(hlpf, kind="reminder", milestone_key="revised-draft", slot="14d")
    assert (row.state, row.reason) == ("failed", "refused by the channel")
    assert row.last_error.startswith("HTTP 404 no such hook") and "\x1b" not in row.last_error
    clock.advance(hours=1)
    deliver(dispatcher_for(hlpf, smtp.url, clock, channels))
    assert len(receiver.received) == 1  # not tried again


def test_one_bad_channel_is_reported_at_its_line_and_the_others_still_get_their_messages(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    bad = """
    [channels.broken]
    kind = "pager"
    url = "http://example.org/hook"
    audiences = ["secretariat"]
    """
    channels = write_channels(tmp_path, bad + webhook(receiver.url))
    found = read_channels(channels)
    assert [spec.name for spec in found.channels] == ["site"]
    messages = [str(p) for p in found.problems]
    assert f"{channels}:2: channel 'broken': kind 'pager' is not one of webhook, teams, slack" in messages
    assert any(m.startswith(f"{channels}:3: channel 'broken': the URL must use https://") for m in messages)
    clock = Clock(at(REMINDER_AT))
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels)).sent == 1
    assert [r.path for r in receiver.received] == ["/hook/site"]


def test_a_secret_by_variable_must_be_set_and_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACKER_TEST_HOOK_SECRET")
    channels = write_channels(tmp_path, webhook("https://hooks.example.org") + """
    [channels.short]
    kind = "webhook"
    url = "https://hooks.example.org/short"
    secret = "tiny"
    audiences = ["secretariat"]
    """)  # fmt: skip
    found = read_channels(channels)
    assert found.channels == []
    assert [str(p) for p in found.problems] == [
        f"{channels}:4: channel 'site': the environment variable TRACKER_TEST_HOOK_SECRET is not set: "
        "set it where Tracker runs",
        f"{channels}:11: channel 'short': the secret is shorter than 16 characters: use a long random one, "
        "such as `python -c 'import secrets; print(secrets.token_hex(32))'`",
    ]


def test_a_channel_removed_from_the_file_is_sent_nothing_more(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    channels = write_channels(tmp_path, webhook(receiver.url))
    clock = Clock(at("2017-02-01 10:00"))
    deliver(dispatcher_for(hlpf, smtp.url, clock, channels))
    assert {row.state for row in rows(hlpf, kind="reminder")} == {"planned"}
    channels.write_text("", encoding="utf-8")
    deliver(dispatcher_for(hlpf, smtp.url, clock, channels))
    assert {(row.state, row.reason) for row in rows(hlpf, kind="reminder")} == {
        ("cancelled", "channel removed or quarantined")
    }
    with transaction(hlpf) as session:
        [channel] = session.exec(select(Channel)).all()
        assert channel.state == "removed"
    channels.write_text(textwrap.dedent(webhook(receiver.url)), encoding="utf-8")  # back: planned again
    deliver(dispatcher_for(hlpf, smtp.url, clock, channels))
    assert {row.state for row in rows(hlpf, kind="reminder")} == {"planned"}


def test_the_delivery_log_shows_a_channel_by_name_and_validate_checks_the_channels_file(
    database_url: str, schedules: Path, write_timeline: WriteTimeline, tmp_path: Path, receiver: Receiver
) -> None:
    write_timeline("hlpf", HLPF)
    channels = write_channels(tmp_path, webhook(receiver.url))
    env = cli_env(database_url, schedules, TRACKER_CHANNELS_FILE=str(channels),
                  TRACKER_TEST_HOOK_SECRET=SECRET)  # fmt: skip
    assert tracker("sync", env=env, cwd=tmp_path).returncode == 0
    receiver.answer(Answer(410, body=b"gone for good"))
    sent = tracker("send-due", "--now", "2017-02-10 09:05", env=env, cwd=tmp_path)
    assert sent.returncode == 3 and "failed 1" in sent.stdout, sent.stdout + sent.stderr  # 3: something failed
    log = json.loads(tracker("deliveries", "--to", "channel:site", "--status", "failed", "--json",
                             env=env, cwd=tmp_path).stdout)  # fmt: skip
    assert [(d["to"], d["kind"], d["slot"], d["last_error"]) for d in log] == [
        ("channel:site (webhook)", "reminder", "14d", "HTTP 410 gone for good")
    ]
    table = tracker("deliveries", "--status", "failed", env=env, cwd=tmp_path).stdout
    assert "channel:site (webhook)" in table and "HTTP 410 gone for good" in table

    valid = tracker("validate", env={k: v for k, v in env.items() if k != "TRACKER_TEST_HOOK_SECRET"}, cwd=tmp_path)
    assert valid.returncode == 0 and "1 channels" in valid.stdout  # CI has no secrets: only their names are checked
    channels.write_text(channels.read_text() + '\n[channels.chat]\nkind = "slack"\naudiences = "all"\n')
    invalid = tracker("validate", env=env, cwd=tmp_path)
    assert invalid.returncode == 1
    assert f"{channels}:8: channel 'chat': url is missing" in invalid.stderr
    assert f"{channels}:10: channel 'chat': audiences must be a list" in invalid.stderr


HOSTILE = """
    id: hostile
    title: "Council <!channel> & **everyone**"
    timezone: Europe/Zurich
    audiences: [secretariat]
    reminders: [7d]
    milestones:
      - id: report
        title: "Report <https://evil.example|click> [here](https://evil.example) _now_ # <at>all</at>"
        owner: secretariat
        due: 2017-02-24
"""
HOSTILE_AT = "2017-02-17 09:00"  # 7 days before


def chat_channels(tmp_path: Path, url: str) -> Path:
    return write_channels(tmp_path, f"""
    [channels.team]
    kind = "teams"
    url = "{url}/teams"
    audiences = ["secretariat"]

    [channels.chat]
    kind = "slack"
    url = "{url}/slack"
    audiences = ["secretariat"]
    """)  # fmt: skip


def test_teams_gets_an_adaptive_card_whose_text_cannot_make_links_or_mentions(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline, tmp_path: Path, receiver: Receiver,
    smtp: SMTPTestServer,
) -> None:  # fmt: skip
    write_timeline("hostile", HOSTILE)
    sync(engine, schedules, at("2017-02-01 09:00"))
    channels = chat_channels(tmp_path, receiver.url)
    assert deliver(dispatcher_for(engine, smtp.url, Clock(at(HOSTILE_AT)), channels)).sent == 2
    [teams] = [r for r in receiver.received if r.path == "/teams"]
    assert "tracker-signature" not in teams.headers and teams.headers["tracker-delivery"]
    message = teams.json()
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"], card["lang"]) == ("AdaptiveCard", "1.4", "en")
    report = r"Report \<https://evil.example|click\> \[here\](https://evil.example) \_now\_ # \<at\>all\</at\>"
    title = f"Due in 7 days: {report}"
    assert card["body"][0] == {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True}
    lines = [(block["text"], block.get("spacing")) for block in card["body"][1:]]
    assert lines == [
        (title.removeprefix("Due in 7 days: "), None),
        ("Due in 7 days", "None"),  # a block per line: no Markdown needed
        ("When: Friday, 24 February 2017, end of day, Zurich time", None),  # its timeline's clock only
        ("Action by: Secretariat", "None"),
        (r"Timeline: Council \<!channel\> & \*\*everyone\*\*", "None"),
        ("Timeline page: https://tracker.example.org/timelines/hostile", "None"),
    ]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the timeline page",
                                "url": "https://tracker.example.org/timelines/hostile"}]  # fmt: skip


def test_slack_gets_block_kit_whose_text_cannot_mention_the_channel_or_link(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline, tmp_path: Path, receiver: Receiver,
    smtp: SMTPTestServer,
) -> None:  # fmt: skip
    write_timeline("hostile", HOSTILE)
    sync(engine, schedules, at("2017-02-01 09:00"))
    channels = chat_channels(tmp_path, receiver.url)
    deliver(dispatcher_for(engine, smtp.url, Clock(at(HOSTILE_AT)), channels))
    [slack] = [r for r in receiver.received if r.path == "/slack"]
    message = slack.json()
    header, *sections, actions = message["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"  # plain text: never read as markup
    assert "Report <https://evil.example|click>" in header["text"]["text"]
    mrkdwn = [message["text"]] + [section["text"]["text"] for section in sections]
    assert all(section["type"] == "section" and section["text"]["verbatim"] for section in sections)
    assert not any("<!channel>" in text or "<https://" in text for text in mrkdwn)
    assert "&lt;!channel&gt; &amp; **everyone**" in "\n".join(mrkdwn)
    button = {"type": "button", "url": "https://tracker.example.org/timelines/hostile",
              "text": {"type": "plain_text", "text": "Open the timeline page"}}  # fmt: skip
    assert actions == {"type": "actions", "elements": [button]}


def test_a_channel_reads_in_its_language_what_a_member_of_that_language_reads(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    languages = ("en", "fr", "es", "ru", "zh", "ar")
    text = "".join(webhook(receiver.url, name=code, extra=f'language = "{code}"') for code in languages)
    channels = write_channels(tmp_path, text)
    clock = Clock(at(REMINDER_AT))
    for code in languages:
        subscribe(hlpf, f"{code}@example.org", clock.now, audiences=("secretariat",), language=code)
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels)).sent == 12
    subjects = {m.rcpt_tos[0].partition("@")[0]: str(m.parse()["Subject"]) for m in smtp.received}
    posts = {r.path.rsplit("/", 1)[1]: r.json() for r in receiver.received}
    for code in languages:
        post = posts[code]
        assert (post["language"], post["title"]) == (code, subjects[code])
        assert post["milestone"]["title"] == "Revised draft posted"  # the file gives no translation
    assert len({posts[code]["text"].split("\n")[1] for code in languages}) == 6  # "14 days left" in six words


def test_a_change_set_is_one_changed_message_to_a_channel_listing_each_line(
    hlpf: Engine, schedules: Path, write_timeline: WriteTimeline, tmp_path: Path, receiver: Receiver,
    smtp: SMTPTestServer,
) -> None:  # fmt: skip
    channels = write_channels(tmp_path, webhook(receiver.url, name="slack-like"))
    clock = Clock(at("2017-02-02 09:00"))
    deliver(dispatcher_for(hlpf, smtp.url, clock, channels))  # the channel is planned for, nothing due yet
    assert receiver.received == []
    moved = HLPF.replace("due: 2017-02-24", "due: 2017-03-03").replace("due: 2017-04-28 12:00", "due: 2017-05-05 12:00")
    write_timeline("hlpf", moved)
    sync(hlpf, schedules, clock.now)
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels)).sent == 1
    [request] = receiver.received
    body = request.json()
    assert body["kind"] == "changed" and body["milestone"] is None
    assert [(c["milestone"], c["change"], c["old_at"], c["new_at"]) for c in body["changes"]] == [
        ("revised-draft", "moved", "2017-02-24T22:59:59Z", "2017-03-03T22:59:59Z"),
        ("final-draft", "moved", "2017-03-24T22:59:59Z", "2017-03-31T21:59:59Z"),  # its steps follow; summer time
        ("submission", "moved", "2017-04-28T10:00:00Z", "2017-05-05T10:00:00Z"),
    ]
    assert body["title"] == "Dates changed: ITU Council contribution to HLPF-17"
    assert verify(SECRET, request.headers, request.body)


def test_a_pass_rendered_ahead_posts_its_channels_here_and_renders_only_emails_in_the_helper(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    channels = write_channels(tmp_path, webhook(receiver.url, name="one") + webhook(receiver.url, name="two"))
    clock = Clock(at(REMINDER_AT))
    for n in range(6):
        subscribe(hlpf, f"member{n}@example.org", clock.now, audiences=("secretariat",))
    dispatcher = dispatcher_for(hlpf, smtp.url, clock, channels)
    sender = Sender("Tracker <tracker@example.org>", "https://tracker.example.org", "<deadlines.example.org>")
    helper = RenderHelper(dispatcher.renderer, Recipe(REPO / "templates" / "emails", REPO / "locale", sender), after=1)
    dispatcher.helper = helper
    helper.expect(2)
    assert helper.wait_ready(60), "the helper did not start"
    result = deliver(dispatcher)
    assert (result.sent, result.rendered_ahead) == (8, 6)
    assert len(smtp.received) == 6 and sorted(r.path for r in receiver.received) == ["/hook/one", "/hook/two"]


def test_a_channel_whose_table_breaks_is_quarantined_and_planned_again_once_it_reads(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    channels = write_channels(tmp_path, webhook(receiver.url))
    clock = Clock(at("2017-02-01 10:00"))
    deliver(dispatcher_for(hlpf, smtp.url, clock, channels))
    good = channels.read_text(encoding="utf-8")
    channels.write_text(good.replace('kind = "webhook"', 'kind = "webhok"'), encoding="utf-8")
    deliver(dispatcher_for(hlpf, smtp.url, clock, channels))
    with transaction(hlpf) as session:
        [channel] = session.exec(select(Channel)).all()
    assert channel.state == "quarantined"
    assert channel.reason == f"{channels}:2: channel 'site': kind 'webhok' is not one of webhook, teams, slack"
    assert {row.state for row in rows(hlpf, kind="reminder")} == {"cancelled"}
    channels.write_text(good, encoding="utf-8")
    clock.now = at(REMINDER_AT)
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels)).sent == 1
    assert len(receiver.received) == 1


def test_a_retry_after_beyond_the_deadline_fails_the_row_rather_than_trying_sooner(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    channels = write_channels(tmp_path, webhook(receiver.url))
    receiver.answer(Answer(503, {"Retry-After": "1800"}))  # half an hour: the submission is due in twenty minutes
    clock = Clock(at("2017-04-28 11:40"))
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels)).failed == 1
    [row] = rows(hlpf, kind="reminder", milestone_key="submission", slot="4h")
    assert (row.state, row.reason, row.last_error) == ("failed", NO_TIME_LEFT, "HTTP 503 ok")


def test_a_late_step_is_chased_and_the_step_it_opens_announced_to_the_channels_concerned(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    text = webhook(receiver.url, name="secretariat") + webhook(receiver.url, name="members", audiences='["membership"]')
    channels = write_channels(tmp_path, text)
    clock = Clock(at("2017-02-25 09:00"))  # the revised draft was due yesterday and is not done
    deliver(dispatcher_for(hlpf, smtp.url, clock, channels))
    told = {(p["channel"], p["kind"], p["milestone"]["key"]) for p in (r.json() for r in receiver.received)}
    assert told == {("secretariat", "overdue", "revised-draft"), ("members", "delayed", "member-comments")}
    mark_done(hlpf, "hlpf/revised-draft", clock.now)
    clock.advance(minutes=1)
    deliver(dispatcher_for(hlpf, smtp.url, clock, channels))
    after = {(p["channel"], p["kind"]): p for p in (r.json() for r in receiver.received[2:])}
    assert set(after) == {("members", "opened"), ("secretariat", "changed")}  # the final draft follows the comments
    opened = after["members", "opened"]
    assert opened["milestone"]["key"] == "member-comments"
    assert opened["previous"] == {"key": "revised-draft", "title": "Revised draft posted"}
    assert opened["milestone"]["due_at"] == "2017-03-11T22:59:59Z"  # 14 days after it was done


def test_a_receiver_that_does_not_answer_in_time_is_tried_again_later(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(posting, "TOTAL", 0.5)  # instead of 20 s: the test waits less
    channels = write_channels(tmp_path, webhook(receiver.url))
    receiver.answer(Answer(delay=2))
    clock = Clock(at(REMINDER_AT))
    started = time.monotonic()
    assert deliver(dispatcher_for(hlpf, smtp.url, clock, channels)).retrying == 1
    assert time.monotonic() - started < 2  # the pass did not wait for the answer
    [row] = rows(hlpf, kind="reminder", milestone_key="revised-draft", slot="14d")
    assert (row.state, row.last_error) == ("planned", "no answer within 0.5 s")


def test_a_channels_file_that_is_not_toml_changes_nothing_and_is_reported_once(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    channels = write_channels(tmp_path, webhook(receiver.url))
    dispatcher = dispatcher_for(hlpf, smtp.url, Clock(at("2017-02-01 10:00")), channels)
    dispatcher.refresh(timely=True)
    channels.write_text('[channels.site\nkind = "webhook"\n', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="tracker.delivery.channels"):
        for _ in range(3):  # a sweep every two seconds: one line, not one a pass
            dispatcher.refresh()
    assert [record.getMessage() for record in caplog.records] == [
        f"{channels}:1: not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 15); "
        "fix the syntax there"
    ]
    with transaction(hlpf) as session:
        [channel] = session.exec(select(Channel)).all()
    assert channel.state == "active"  # the file as it was stays in force


# --- from an outside review -------------------------------------------------------------------


def test_a_post_logs_no_webhook_url_for_its_secret_is_in_it(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A Slack or Teams webhook's URL is its credential; `tracker run` logs at INFO, where httpx2 logged each URL.
    secret_path = "T0001/B0002/XYZsecretTOKEN123"
    channels = write_channels(tmp_path, f"""
    [channels.chat]
    kind = "slack"
    url = "{receiver.url}/services/{secret_path}"
    audiences = ["secretariat"]
    """)  # fmt: skip
    with caplog.at_level(logging.DEBUG):
        deliver(dispatcher_for(hlpf, smtp.url, Clock(at(REMINDER_AT)), channels))
    assert [r.path for r in receiver.received] == [f"/services/{secret_path}"]
    assert "XYZsecretTOKEN123" not in caplog.text


def test_a_channel_whose_host_cannot_be_posted_to_fails_alone(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    bad = """
    [channels.typo]
    kind = "slack"
    url_env = "TRACKER_TEST_TYPO_URL"
    audiences = ["secretariat"]
    """
    channels = write_channels(tmp_path, bad + webhook(receiver.url))
    for n in range(3):
        subscribe(hlpf, f"s{n}@example.org", at("2017-02-01 09:00"), audiences=("secretariat",))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRACKER_TEST_TYPO_URL", "https://exämple..com/hook")  # no check of a value given by variable
        result = deliver(dispatcher_for(hlpf, smtp.url, Clock(at(REMINDER_AT)), channels, connections=1))
    assert [r.path for r in receiver.received] == ["/hook/site"]  # the good channel is posted to
    assert result.released == 0
    typo = [r for r in rows(hlpf, kind="reminder", milestone_key="revised-draft", slot="14d")
            if r.subscriber_id < 0 and r.state != "sent"]  # fmt: skip
    assert [r.state for r in typo] in (["planned"], ["failed"])
    assert "host name does not read" in typo[0].last_error or "could not post" in typo[0].last_error


def test_a_process_without_the_secret_does_not_quarantine_the_channel_for_the_others(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = write_channels(tmp_path, webhook(receiver.url))
    clock = Clock(at("2017-02-01 10:00"))
    running = dispatcher_for(hlpf, smtp.url, clock, channels)
    running.refresh(timely=True)
    monkeypatch.delenv("TRACKER_TEST_HOOK_SECRET")
    dispatcher_for(hlpf, smtp.url, clock, channels).refresh(timely=True)  # an operator's shell, without the secret
    monkeypatch.setenv("TRACKER_TEST_HOOK_SECRET", SECRET)
    running.refresh(timely=True)
    with transaction(hlpf) as session:
        assert [c.state for c in session.exec(select(Channel))] == ["active"]
    clock.now = at(REMINDER_AT)
    deliver(running)
    assert [r.path for r in receiver.received] == ["/hook/site"]


def test_a_typo_at_the_top_of_the_file_removes_no_channel(
    hlpf: Engine, tmp_path: Path, receiver: Receiver, smtp: SMTPTestServer
) -> None:
    channels = write_channels(tmp_path, webhook(receiver.url))
    clock = Clock(at("2017-02-01 10:00"))
    dispatcher_for(hlpf, smtp.url, clock, channels).refresh(timely=True)
    write_channels(tmp_path, webhook(receiver.url).replace("[channels.site]", "[channel.site]"))  # still TOML
    dispatcher_for(hlpf, smtp.url, clock, channels).refresh(timely=True)
    with transaction(hlpf) as session:
        assert [(c.name, c.state) for c in session.exec(select(Channel))] == [("site", "active")]
