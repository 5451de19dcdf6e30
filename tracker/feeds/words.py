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
        repeats=partial(repeats_text, language),
    )


def alarm_text(language: Language, view: MilestoneView, offset: Offset) -> str:
    """Return what an alarm adds to the SUMMARY, as the reminder email's first line says it: 'Due in 7 days'."""
    return due_text(view, offset, language)


def repeats_text(language: Language, freq: str, interval: int) -> str:
    """Return 'Repeats every 2 weeks' for an RRULE's FREQ (YEARLY, MONTHLY, WEEKLY or DAILY) and INTERVAL."""
    if freq == "YEARLY":
        if interval == 1:
            return language.gettext("Repeats every year")
        return language.ngettext("Repeats every {num} year", "Repeats every {num} years", interval)
    if freq == "MONTHLY":
        if interval == 1:
            return language.gettext("Repeats every month")
        return language.ngettext("Repeats every {num} month", "Repeats every {num} months", interval)
    if freq == "WEEKLY":
        if interval == 1:
            return language.gettext("Repeats every week")
        return language.ngettext("Repeats every {num} week", "Repeats every {num} weeks", interval)
    if interval == 1:
        return language.gettext("Repeats every day")
    return language.ngettext("Repeats every {num} day", "Repeats every {num} days", interval)
