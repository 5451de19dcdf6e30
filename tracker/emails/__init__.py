"""Notification emails: a request in, a complete RFC 5322 message out (no network, no store).

`render` builds the message around one Jinja environment that compiles every template once;
`inlining` puts the layout's CSS into the HTML templates as they load, so a message only
fills in values; `words` holds the catalogs (Babel, read from `locale/*.po` at start-up)
and formats dates in the recipient's language and zone. For volume, `Renderer.render_bytes`
writes the same message as bytes: `content` renders each text once for all its recipients,
`headers` and `mime` write headers and parts without the email package's cost. On both paths
`fields` writes every header value from plain text (cleaned, quoted or RFC 2047-encoded and
folded by us): nothing from a name, a title or a setting is ever parsed as a header.
"""

from tracker.emails.content import LRU
from tracker.emails.headers import message_id
from tracker.emails.inlining import inline_css, inline_template
from tracker.emails.render import (
    KINDS,
    EmailRequest,
    Kind,
    Links,
    Recipient,
    Renderer,
    Sender,
)
from tracker.emails.words import LANGUAGES

__all__ = [
    "KINDS",
    "LANGUAGES",
    "LRU",
    "EmailRequest",
    "Kind",
    "Links",
    "Recipient",
    "Renderer",
    "Sender",
    "inline_css",
    "inline_template",
    "message_id",
]
