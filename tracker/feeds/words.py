"""A feed's words around its titles in a reader's language: personal feeds and calendar attachments."""

from __future__ import annotations

from tracker.feeds import ItemWords
from tracker.feeds.builder import LINES
from tracker.i18n.languages import N_, Language
from tracker.i18n.wording import AUDIENCES


def item_words(language: Language) -> ItemWords:
    """Return what a feed item's SUMMARY says around its titles and its DESCRIPTION's lines and dates, in *language*."""
    gettext = language.translations.gettext
    return ItemWords(
        language=language.code,
        acting=gettext(N_("%(who)s: %(title)s")),
        cancelled=gettext(N_("Cancelled: %(title)s")),
        audiences=tuple((audience, gettext(msgid)) for audience, msgid in AUDIENCES.items()),
        locale=str(language.locale),
        lines=tuple((line, gettext(line)) for line in LINES),
    )
