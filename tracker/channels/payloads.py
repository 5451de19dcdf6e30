"""What a channel is posted: a message's `Post` as webhook JSON, a Teams Adaptive Card or Slack Block Kit.

Pure. Texts come from timeline files and are treated as hostile: control characters are dropped,
every text is bounded, Slack's mrkdwn characters (&, <, >) are escaped and its auto-linking turned
off, and the Markdown an Adaptive Card's TextBlock reads is backslash-escaped, so a title cannot
make a link, a mention or a heading.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "tracker.channel-message/1"  # the webhook body's version (docs/channels.md)
TITLE = 150  # characters: Slack's header block holds no more
PARAGRAPH = 2900  # characters: a Slack section holds 3000
SECTION = 3000  # characters of a Slack section's text, escaped
CARD_BYTES = 24_000  # a Teams card's JSON at most: Teams refuses a message over about 28 KB
PARAGRAPHS = 40  # a message's paragraphs kept (Slack allows 50 blocks)
TEXT = 12_000  # characters of a message's whole text: Teams refuses cards over about 28 KB
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_MARKDOWN = re.compile(r"([\\`*_\[\]<>])")  # emphasis, code, links, HTML (mentions): anywhere
_LINE_START = re.compile(r"^(\s*)([#+-]|\d+(?=\.))", re.MULTILINE)  # headings, lists: at a line's start


@dataclass(frozen=True)
class Post:
    """One message for a channel, in its language: what the renderer wrote, and the facts as data."""

    delivery: int  # the outbox row's id
    key: str  # the outbox row's unique key: the same for every attempt (an idempotency key)
    kind: str
    channel: str
    language: str
    title: str
    text: str  # plain text, paragraphs apart by a blank line
    link: str  # the timeline's page ('' if none)
    link_label: str  # the words of the link's button, in the channel's language
    sent_at: str  # ISO 8601, UTC
    facts: Mapping[str, Any] = field(default_factory=dict)  # the webhook's data: timeline, milestone, changes…


def clean(text: str, longest: int) -> str:
    """One bounded text with no control characters but line breaks."""
    text = _CONTROLS.sub("", text).strip()
    return text if len(text) <= longest else text[: longest - 1].rstrip() + "…"


def paragraphs(text: str) -> list[str]:
    """The text's paragraphs, each and all bounded."""
    found = [clean(part, PARAGRAPH) for part in re.split(r"\n\s*\n", clean(text, TEXT))]
    found = [part for part in found if part]
    return found[:PARAGRAPHS]


def webhook_body(post: Post) -> bytes:
    """The webhook's JSON, UTF-8, keys in a fixed order (docs/channels.md, the schema)."""
    body = {
        "schema": SCHEMA,
        "id": post.key,
        "delivery": post.delivery,
        "kind": post.kind,
        "channel": post.channel,
        "language": post.language,
        "sent_at": post.sent_at,
        "title": clean(post.title, 1000),
        "text": clean(post.text, TEXT),
        "link": post.link or None,
        **post.facts,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def slack_escape(text: str) -> str:
    """Slack's mrkdwn control characters as entities: no link, mention (<!channel>) or user can be made."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_section(text: str) -> str:
    """A paragraph escaped, then bounded to a section's SECTION characters (escaping lengthens it), not
    cut inside an entity: Slack refuses a longer section, and the row would fail."""
    escaped = slack_escape(text)
    if len(escaped) <= SECTION:
        return escaped
    cut = escaped[: SECTION - 1]
    entity = cut.rfind("&")
    if entity != -1 and ";" not in cut[entity:]:
        cut = cut[:entity]
    return cut.rstrip() + "…"


def slack_body(post: Post) -> bytes:
    """A Slack incoming webhook's message: the title as a header, a section per paragraph, a link button."""
    title = clean(post.title, TITLE)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title}}]
    for part in paragraphs(post.text):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": slack_section(part), "verbatim": True}})
    if post.link:
        button = {"type": "button", "text": {"type": "plain_text", "text": clean(post.link_label, 75)},
                  "url": post.link[:3000]}  # fmt: skip
        blocks.append({"type": "actions", "elements": [button]})
    body = {"text": slack_escape(title), "blocks": blocks}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def markdown_escape(text: str) -> str:
    """Text an Adaptive Card's TextBlock shows as written: the characters that start Markdown escaped.

    Only those: Teams' clients differ in how they show an escape that was not needed (a backslash
    before a full stop stays visible on some), so a date or a URL is left as it is.
    """
    text = _MARKDOWN.sub(r"\\\1", text)
    # '- ' and '# ' escaped before; '12. ' after its number (a backslash before a digit would show).
    return _LINE_START.sub(lambda found: escape_start(found.group(1), found.group(2)), text)


def escape_start(space: str, mark: str) -> str:
    return f"{space}{mark}\\" if mark[0].isdigit() else f"{space}\\{mark}"


def teams_body(post: Post) -> bytes:
    """A Teams Workflows (or incoming webhook) message: one Adaptive Card 1.4."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": markdown_escape(clean(post.title, TITLE)), "weight": "Bolder",
         "size": "Medium", "wrap": True},
    ]  # fmt: skip
    # A TextBlock breaks lines only at a blank line (it is Markdown): a block per line, a paragraph's close together.
    size = len(json.dumps(body, ensure_ascii=False).encode()) + len(post.link.encode()) + 600  # and the envelope
    for part in paragraphs(post.text):
        for number, line in enumerate(part.splitlines()):
            block = {"type": "TextBlock", "text": markdown_escape(line), "wrap": True}
            block = block if number == 0 else {**block, "spacing": "None"}
            size += len(json.dumps(block, ensure_ascii=False).encode()) + 1
            if size > CARD_BYTES:  # the lines that fit, and a mark that more follow (the link shows them all)
                body.append({"type": "TextBlock", "text": "…", "wrap": True})
                break
            body.append(block)
        if size > CARD_BYTES:
            break
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "lang": post.language,
        "body": body,
    }
    if post.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": clean(post.link_label, 75), "url": post.link}]
    message = {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card},
    ]}  # fmt: skip
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


BODIES = {"webhook": webhook_body, "teams": teams_body, "slack": slack_body}


def body_of(kind: str, post: Post) -> bytes:
    """The bytes a channel of *kind* is posted."""
    return BODIES[kind](post)
