"""A channel's payloads and answers, pure: bounds on hostile text, and what a Retry-After asks."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from tracker.channels.payloads import Post, slack_body, teams_body, webhook_body
from tracker.channels.posting import retry_after

NOW = datetime(2027, 2, 1, 12, 0, tzinfo=UTC)


def post(title: str, text: str) -> Post:
    return Post(delivery=1, key="reminder:-1073741825:t/m:-:7d", kind="reminder", channel="c", language="en",
                title=title, text=text, link="https://tracker.example.org/timelines/t", link_label="Open",
                sent_at="2027-02-01T12:00:00Z")  # fmt: skip


def test_a_huge_text_is_cut_to_what_slack_and_teams_accept() -> None:
    text = "\n\n".join(["x" * 5000] * 100)
    slack = json.loads(slack_body(post("t" * 1000, text)))
    assert len(slack["blocks"]) <= 50 and len(slack["blocks"][0]["text"]["text"]) <= 150
    assert all(len(block["text"]["text"]) <= 3000 for block in slack["blocks"] if block["type"] == "section")
    assert len(teams_body(post("t" * 1000, text))) < 28_000  # Teams refuses larger cards
    assert len(webhook_body(post("t", text))) < 20_000


def test_control_and_direction_characters_never_reach_a_channel() -> None:
    hostile = "Title\x1b[31m\u202e\x00 end"
    for body in (slack_body, teams_body, webhook_body):
        data = body(post(hostile, hostile)).decode()
        assert "\x1b" not in data and "\\u001b" not in data and "\u202e" not in data and "\\u0000" not in data


def test_retry_after_reads_seconds_and_http_dates_and_is_capped() -> None:
    assert retry_after("1", NOW) == timedelta(seconds=1)
    assert retry_after("Mon, 01 Feb 2027 12:02:00 GMT", NOW) == timedelta(minutes=2)
    assert retry_after("Mon, 01 Feb 2027 11:00:00 GMT", NOW) == timedelta(0)  # past: at once (after the backoff)
    assert retry_after("99999999", NOW) == timedelta(hours=1)
    assert retry_after("soon", NOW) is None and retry_after(None, NOW) is None


def test_escaping_never_makes_a_slack_section_longer_than_slack_takes() -> None:
    # Found by an outside review: each paragraph was cut before '&', '<' and '>' became entities.
    slack = json.loads(slack_body(post("t", "R&D <draft> " * 400)))
    sections = [block["text"]["text"] for block in slack["blocks"] if block["type"] == "section"]
    assert sections and all(len(text) <= 3000 for text in sections)
    assert all(not re.search(r"&[a-z]*…$", text) for text in sections)  # not cut inside an entity


def test_a_teams_card_in_a_wide_script_stays_under_what_teams_takes() -> None:
    # Characters were counted, not bytes: 11,000 Chinese characters, a line each, made a 60 KB card.
    paragraphs = "\n\n".join("第十五届会议的文件草案已经修改" * 20 for _ in range(40))  # 12,000 characters
    card = teams_body(post("标题", paragraphs))
    assert len(card) < 28_000
    blocks = json.loads(card)["attachments"][0]["content"]["body"]
    assert blocks[-1]["text"] == "…"  # the lines left out are said to be


def test_a_retry_after_of_many_digits_waits_the_longest_not_none() -> None:
    assert retry_after("99999999999999", NOW) == timedelta(hours=1)
