"""The six UN languages: catalogs read from `locale/*.po` and Babel locales."""

from __future__ import annotations

from dataclasses import dataclass
from gettext import GNUTranslations
from io import BytesIO
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from tracker.text import LANGUAGES

# Babel locales: British English, as the UN writes it; Simplified Chinese.
_LOCALES = {"en": "en_GB", "zh": "zh_Hans_CN"}


_TAGS = {"zh": "zh-Hans"}  # BCP 47 tags for lang= and Content-Language


def N_(message: str) -> str:  # noqa: N802 (the gettext convention Babel's extractor looks for)
    """Mark *message* for the catalog; it is translated where it is used."""
    return message


@dataclass(frozen=True)
class Language:
    """One UN language: its catalog and its Babel locale."""

    code: str
    locale: Locale
    translations: GNUTranslations

    @property
    def tag(self) -> str:
        return _TAGS.get(self.code, self.code)

    @property
    def direction(self) -> str:
        return "rtl" if self.locale.text_direction == "rtl" else "ltr"

    def gettext(self, message: str, **values: object) -> str:
        return self.translations.gettext(message).format(**values)

    def ngettext(self, singular: str, plural: str, num: int, **values: object) -> str:
        return self.translations.ngettext(singular, plural, num).format(num=num, **values)


def choose_language(code: str) -> str:
    """Return the LANGUAGES entry for *code* ('fr-CH' gives 'fr'), English for any other."""
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return base if base in LANGUAGES else "en"


def untranslated(code: str = "en") -> Language:
    """*code* without a catalog: the messages' own English words, with *code*'s dates and direction."""
    empty = BytesIO()
    write_mo(empty, Catalog(locale="en"))
    empty.seek(0)
    return Language(code, Locale.parse(_LOCALES.get(code, code)), GNUTranslations(empty))


def load_language(locales: Path, code: str) -> Language:
    """Read LANG/LC_MESSAGES/messages.po and compile it in memory (fuzzy entries left out).

    Reading the .po itself leaves no compiled file to build, ship, or let go stale.
    """
    with (locales / code / "LC_MESSAGES" / "messages.po").open("rb") as file:
        catalog = read_po(file, locale=code)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Language(code, Locale.parse(_LOCALES.get(code, code)), GNUTranslations(compiled))
