"""Notification emails: a request in, a complete RFC 5322 message out (no network, no store).

`requests` says what a message is asked to say; `render` builds it around one Jinja environment
that compiles every template once; `inlining` puts the layout's CSS into the HTML templates as
they load, so a message only fills in values; the words and dates in the recipient's language
and zone come from `tracker.i18n`. For volume, `Renderer.render_bytes`
writes the same message as bytes: `content` renders each text once for all its recipients,
`headers` and `mime` write headers and parts without the email package's cost. On both paths
`fields` writes every header value from plain text (cleaned, quoted or RFC 2047-encoded and
folded by us): nothing from a name, a title or a setting is ever parsed as a header.

The names below are loaded from their modules on first use, not when the package is imported:
`tracker.emails.requests` (what the command line needs to word its help) then costs no Jinja,
Babel or icalendar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracker.lazy import loader
from tracker.text import LANGUAGES

if TYPE_CHECKING:
    from tracker.emails.content import LRU
    from tracker.emails.headers import message_id
    from tracker.emails.inlining import inline_css, inline_template
    from tracker.emails.render import Renderer
    from tracker.emails.requests import KINDS, ChangeLine, EmailRequest, Kind, Recipient, Sender

_HOMES = {
    "LRU": "content",
    "message_id": "headers",
    "inline_css": "inlining",
    "inline_template": "inlining",
    "Renderer": "render",
    **dict.fromkeys(("KINDS", "ChangeLine", "EmailRequest", "Kind", "Recipient", "Sender"), "requests"),
}

__all__ = [
    "KINDS",
    "LANGUAGES",
    "LRU",
    "ChangeLine",
    "EmailRequest",
    "Kind",
    "Recipient",
    "Renderer",
    "Sender",
    "inline_css",
    "inline_template",
    "message_id",
]


__getattr__ = loader(__name__, _HOMES)
