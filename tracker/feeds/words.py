"""A feed's words around its titles in a reader's language: personal feeds and calendar attachments."""

from __future__ import annotations

from functools import partial

from tracker.feeds import ItemWords
from tracker.feeds.builder import LINES
from tracker.i18n.languages import N_, Language
from tracker.i18n.wording import AUDIENCES, due_text
from tracker.timelines.dates import Offset
from tracker.timelines.views import MilestoneView


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
        alarm=partial(alarm_text, language),
    )


def alarm_text(language: Language, view: MilestoneView, offset: Offset) -> str:
    """Return what an alarm adds to the SUMMARY, as the reminder email's first line says it: 'Due in 7 days'."""
    return due_text(view, offset, language)
