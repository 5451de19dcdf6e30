"""Notification emails: a request in, a complete RFC 5322 message out (no network, no store).

`render` builds the message around one Jinja environment that compiles every template once;
`inlining` puts the layout's CSS into the HTML templates as they load, so a message only
fills in values; `words` holds the catalogs (Babel, read from `locale/*.po` at start-up)
and formats dates in the recipient's language and zone.
"""

from tracker.emails.inlining import inline_css, inline_template
from tracker.emails.render import (
    KINDS,
    EmailRequest,
    Kind,
    Links,
    Recipient,
    Renderer,
    Sender,
    message_id,
)
from tracker.emails.words import LANGUAGES

__all__ = [
    "KINDS",
    "LANGUAGES",
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
