"""Pages in the six UN languages: which language a request gets, the shared layout, one Jinja environment.

The words come from the same Babel catalogs as the emails (locale/*/LC_MESSAGES/messages.po).
Templates and catalogs are the process's (TRACKER_TEMPLATES, TRACKER_LOCALES), read once: the
server's pages and `tracker publish`'s files are the same.
A language named in the URL (`?lang=ar`) wins over the browser's `Accept-Language`, and the
links of a page carry it on, so a reader who picked a language keeps it from page to page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tracker.config import get_settings
from tracker.feeds.calendars import load_languages
from tracker.i18n.languages import Language, untranslated
from tracker.text import LANGUAGES

# Each language names itself in the switcher, in the UN's order.
NAMES = {"ar": "العربية", "zh": "中文", "en": "English", "fr": "Français", "ru": "Русский", "es": "Español"}


@dataclass(frozen=True)
class Switch:
    """One entry of the language switcher."""

    code: str
    tag: str
    name: str
    href: str
    current: bool


@dataclass(frozen=True)
class Static:
    """Addresses in a folder written by `tracker publish`: public pages are files there, one folder per
    language but English; every other address (subscribe, preferences) is on the live server."""

    base_url: str
    depth: int  # folders between the page's file and the site's root

    def file(self, path: str, code: str) -> str | None:
        """Where the page of *path* in *code* is, from the site's root; None for no static page."""
        folder = "" if code == "en" else f"{code}/"
        if path == "/":
            return f"{folder}index.html"
        if path.startswith("/timelines/") and path.count("/") == 2:
            return f"{folder}timelines/{path.removeprefix('/timelines/')}.html"
        return None

    def up(self) -> str:
        return "../" * self.depth


@dataclass(frozen=True)
class PageLanguage:
    """The language a page is written in, how it was chosen, and whether it is a static file."""

    language: Language
    explicit: bool  # named in the URL: every link of the page carries it on
    static: Static | None = None

    @property
    def code(self) -> str:
        return self.language.code

    def link(self, path: str, **query: str | None) -> str:
        """*path* with *query* (None values left out) and, when the reader chose a language, `lang`."""
        values = {name: value for name, value in query.items() if value is not None}
        if self.static is not None:
            found = None if values else self.static.file(path, self.code)
            if found is not None:
                return self.static.up() + found
            path = self.static.base_url.rstrip("/") + path
        if self.explicit:
            values["lang"] = self.code
        return f"{path}?{urlencode(values)}" if values else path

    def switcher(self, path: str, query: Mapping[str, str]) -> list[Switch]:
        """Links to the same page in every language, the other parameters kept."""
        others = {name: value for name, value in query.items() if name != "lang"}
        switches = []
        for code in LANGUAGES:
            found = self.static.file(path, code) if self.static is not None else None
            if found is not None and self.static is not None:
                href = self.static.up() + found
            else:
                href = f"{path}?{urlencode({**others, 'lang': code})}"
            switches.append(Switch(code, languages()[code].tag, NAMES[code], href, code == self.code))
        return switches


@lru_cache(maxsize=1)
def languages() -> dict[str, Language]:
    """Every catalog, read once; English words only when the server has no catalog folder."""
    found = load_languages(get_settings().locales)
    return {code: found.get(code) or untranslated(code) for code in LANGUAGES}


def accepted(header: str) -> list[str]:
    """The language codes of an Accept-Language header, most wanted first ('q=0' means 'not this')."""
    ranked = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag.strip().lower().replace("_", "-").split("-")[0]))
    return [code for _, _, code in sorted(ranked)]


def choose(asked: str | None, accept_language: str | None) -> PageLanguage:
    """`?lang=` if it names one of the six; else the browser's first of them; else English."""
    table = languages()
    if asked is not None and asked.strip().lower() in table:
        return PageLanguage(table[asked.strip().lower()], explicit=True)
    for code in accepted(accept_language or ""):
        if code in table:
            return PageLanguage(table[code], explicit=False)
    return PageLanguage(table["en"], explicit=False)


@lru_cache(maxsize=1)
def environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(get_settings().template_folders("pages")),  # overrides first
        autoescape=select_autoescape(enabled_extensions=("j2", "html"), default_for_string=True),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # As babel.cfg extracts them: a msgid never depends on how the template is indented.
    environment.policies["ext.i18n.trimmed"] = True
    return environment


def render(name: str, chosen: PageLanguage, where: tuple[str, Mapping[str, str]], **context: Any) -> str:
    """Render the page template *name* in *chosen*'s language; *where* is (path, query) for the switcher."""
    language = chosen.language
    page = {
        "lang": language.tag,
        "dir": language.direction,
        "switcher": chosen.switcher(*where),
        "link": chosen.link,
        "code": language.code,
        "root": chosen.static.up() if chosen.static else "/",  # where /feeds/… files are
    }
    translations = language.translations
    return (
        environment()
        .get_template(name)
        .render(page=page, gettext=translations.gettext, ngettext=translations.ngettext, **context)
    )


def html(body: str, chosen: PageLanguage, status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """An HTML answer that says its language, and that it depends on the browser's when the URL names none."""
    extra = {"Content-Language": chosen.language.tag, **(headers or {})}
    if not chosen.explicit:
        extra["Vary"] = "Accept-Language"
    return HTMLResponse(body, status_code=status, headers=extra)
