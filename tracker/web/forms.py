"""The parts of the subscription pages: their language, CSRF tokens, the bodies posted to them, what their
boxes offer, and the answer around a template.

No store, no routes: `subscriptions` calls these. The pages themselves are the templates
templates/pages/{subscribe,preferences,confirmed,unsubscribe,unsubscribed,message}.html.j2.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse

from tracker.i18n.languages import N_, Language, choose_language
from tracker.i18n.wording import audience_text
from tracker.store.models import Subscriber
from tracker.subscribers.registry import DEFAULT_AUDIENCES, Known, Raw, SubscriberError
from tracker.timelines.dates import suggest
from tracker.timelines.zones import aliases_of, canonical_zone, links
from tracker.web.layout import NAMES, PageLanguage, choose, html, languages, render
from tracker.web.zone_choices import ZoneGroup, ZoneOption, zone_groups

FORM_TOKEN_AGE = timedelta(hours=2)
CSRF_FIELD = "csrf_token"
CSRF_COOKIE = "tracker_csrf"
SUBSCRIBE_FIELDS = ("email", "name", "language", "timezone", "audiences", "timelines", "digest", "reminders")
LIST_FIELDS = ("audiences", "timelines")
# What a problem names the field at fault with; the problem itself stays in English (tracker/subscribers/registry.py).
FIELD_LABELS = {
    "email": N_("Email"),
    "name": N_("Name"),
    "language": N_("Language"),
    "timezone": N_("Time zone"),
    "audiences": N_("Audiences"),
    "timelines": N_("Timelines"),
    "digest": N_("Weekly digest"),
    "reminders": N_("Reminders before each deadline"),
}
# What a form says about a SubscriberError's *reason* in its reader's language; a reason not here (or none)
# shows the English message. `{value}` is what was sent, shortened.
PROBLEMS = {
    "line-break": N_("An email address is one line: remove the line break."),
    "not-email": N_("This is not an email address: check what you typed."),
    "not-ascii": N_("Tracker cannot send to an address with letters other than ASCII before the @: "
                    "use another address."),
    "unreadable": N_("This field could not be read: choose again in the form."),
    "name-character": N_("Character {position} of the name cannot be used: write the name on one line, "
                         "in letters, spaces and punctuation."),
    "name-long": N_("A name has at most {num} characters."),
    "language": N_("“{value}” is not one of the languages offered."),
    "digest": N_("“{value}” is not a choice for the weekly digest."),
    "zone": N_("“{value}” is not a time zone: choose a place in the list."),
    "reminders": N_("Write the reminders as offsets such as 14d, 7d, 1d or 4h, from 1h to 366d."),
    "reminders-many": N_("At most {num} reminders before each deadline."),
    "unknown-audience": N_("There is no audience “{value}”."),
    "unknown-timeline": N_("There is no timeline “{value}”."),
}  # fmt: skip
HINT = N_("Did you mean “{name}”?")
SHOWN_VALUE = 40  # characters of a sent value a message repeats: a hostile value does not fill the page
GONE = N_("This link is not valid any more: it may be mistyped, or a newer email replaced it.")
# Pages with secret links or form tokens: never cached, and their address never sent on as a Referer
# (the templates say so too, in <meta name="referrer">).
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True)
class Asked:
    """What a request says about its page: the language it names and the browser's, where it is."""

    lang: str | None
    accept_language: str | None
    path: str
    query: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, request: Request) -> Asked:
        query = dict(request.query_params)
        return cls(query.get("lang"), request.headers.get("accept-language"), request.url.path, query)

    def language(self, subscriber: Subscriber | None = None) -> PageLanguage:
        """`?lang=` when it names one of the six; else the subscriber's language; else the browser's."""
        chosen = choose(self.lang, self.accept_language)
        if chosen.explicit or subscriber is None:
            return chosen
        return PageLanguage(languages()[choose_language(subscriber.language)], explicit=False)


def answer(name: str, chosen: PageLanguage, asked: Asked, status: int = 200, **context: Any) -> HTMLResponse:
    """Render the page template *name*; never cached, never a Referer."""
    body = render(name, chosen, (asked.path, asked.query), **context)
    return html(body, chosen, status, PRIVATE)


def message(chosen: PageLanguage, asked: Asked, title: str, text: str, status: int) -> HTMLResponse:
    """A one-paragraph page; *title* is a catalog entry, *text* already in the reader's words."""
    return answer("message.html.j2", chosen, asked, status, title=chosen.language.gettext(title), text=text)


def gone(asked: Asked) -> HTMLResponse:
    """404 for a wrong, forged or replaced link, in the browser's language: the link names nobody."""
    chosen = asked.language()
    return message(chosen, asked, N_("Link not valid"), chosen.language.gettext(GONE), 404)


class FormError(Exception):
    """A request the pages refuse before looking at its fields: a status, and a message in English (JSON)
    and in the reader's words (*message* is a catalog entry; `{name}` placeholders come from *values*)."""

    def __init__(self, status: int, message: str, **values: object) -> None:
        super().__init__(message.format(**values))
        self.status = status
        self.message = message
        self.values = values

    def text(self, language: Language) -> str:
        return language.gettext(self.message, **self.values)


class TooManyRequestsError(FormError):
    """429: the client asked too often; *seconds* until it may ask again (plural forms differ by language)."""

    def __init__(self, seconds: int) -> None:
        super().__init__(429, "Too many requests: try again in {num} seconds.", num=seconds)
        self.seconds = seconds

    def text(self, language: Language) -> str:
        return language.ngettext("Too many requests: try again in {num} second.",
                                 "Too many requests: try again in {num} seconds.", self.seconds)  # fmt: skip


@dataclass(frozen=True)
class Choice:
    """One option of a select or one checkbox: the value posted and the words shown."""

    value: str
    label: str
    tag: str = ""  # the language the label is written in, when not the page's


@dataclass(frozen=True)
class Choices:
    """What the form's selects and boxes offer, labelled in the page's language."""

    languages: list[Choice]
    zones: list[ZoneOption]  # outside any group: UTC, and a zone sent that no group has
    zone_groups: list[ZoneGroup]
    zone: str  # the zone to select: the one chosen, under its place's name ('US/Eastern' → 'America/New_York')
    zone_aliases: Mapping[str, str]  # what a browser may call a listed zone → the zone listed
    audiences: list[Choice]
    timelines: list[Choice]
    default_audience: str


@dataclass(frozen=True)
class FieldProblem:
    """A SubscriberError as a page shows it: the field (its id and label) and the message in the page's language
    (*english* when there are no words for it in the catalog: the page marks it lang="en")."""

    field: str
    label: str
    message: str
    english: bool = False


def _sign(secret: bytes, binding: str, stamp: str) -> str:
    digest = hmac.new(secret, f"form:{binding}:{stamp}".encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def form_token(secret: bytes, binding: str, now: datetime) -> str:
    """A hidden-field token, bound to the browser's cookie (or the page's secret link), valid for a while."""
    stamp = str(int(now.timestamp()))
    return f"{stamp}.{_sign(secret, binding, stamp)}"


def check_form_token(secret: bytes, binding: str, token: str, now: datetime) -> bool:
    stamp, _, signature = token.partition(".")
    if not binding or not stamp.isdigit() or not hmac.compare_digest(signature, _sign(secret, binding, stamp)):
        return False
    age = now.timestamp() - int(stamp)
    return -60 <= age <= FORM_TOKEN_AGE.total_seconds()  # a minute of clock skew between instances


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def form_fields(body: bytes) -> dict[str, object]:
    """The fields of an application/x-www-form-urlencoded body; lists where a form repeats a name."""
    try:
        pairs = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, N_("The form could not be read.")) from None
    if any("\x00" in text for name, values in pairs.items() for text in (name, *values)):
        raise FormError(400, N_("The form could not be read."))  # %00: no field of ours holds one
    return {k: v if k in LIST_FIELDS else v[0] for k, v in pairs.items()}


class BodyError(ValueError):
    """A JSON body that cannot be read as an object of text; *field* names the part at fault ('' for all of it)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def json_object(body: bytes) -> dict[str, object]:
    """A JSON object whose every key and text can be stored and sent; raise BodyError naming the field at fault."""
    try:
        data = json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError and overlong integers too
        raise BodyError(f"the body is not JSON: {exc}") from None
    except RecursionError:  # a thousand nested [ fit in a small body: the parser gives up, and so do we
        raise BodyError("the body nests lists or objects too deep: send one object of fields") from None
    if not isinstance(data, dict):
        raise BodyError("the body must be a JSON object")
    for key, value in data.items():
        if unstorable(key):
            raise BodyError(f"unknown field {printable(key)}", printable(key))
        texts = value if isinstance(value, list) else [value]
        for text in texts:
            reason = unstorable(text) if isinstance(text, str) else None
            if reason:
                raise BodyError(f"{key} {reason}", key)
    return data


def unstorable(text: str) -> str | None:
    """Why *text* cannot be stored (PostgreSQL refuses NUL; a lone surrogate is not UTF-8), or None."""
    if "\x00" in text:
        return "holds a NUL character (\\u0000): remove it"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape without its pair): it is not text"
    return None


def printable(text: str) -> str:
    """*text* with what cannot be written escaped, for a message."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def json_fields(body: bytes) -> Raw:
    """The fields of a JSON subscription request; raise SubscriberError naming an unknown one."""
    try:
        data = json_object(body)
    except BodyError as exc:
        raise SubscriberError(str(exc), exc.field) from None
    for key in data:
        if key not in SUBSCRIBE_FIELDS:
            raise SubscriberError(f"unknown field {key!r}{suggest(key, SUBSCRIBE_FIELDS)}", key)
    return data


def form_values(raw: Mapping[str, object]) -> dict[str, object]:
    """What a form shows again: the posted fields, lists as sets for ticking boxes."""
    values: dict[str, object] = {k: raw.get(k) or "" for k in SUBSCRIBE_FIELDS if k not in LIST_FIELDS}
    for name in LIST_FIELDS:
        found = raw.get(name)
        values[name] = set(found) if isinstance(found, list | tuple) else set()
    return values


def subscriber_values(subscriber: Subscriber) -> dict[str, object]:
    reminders = subscriber.reminders
    text = "" if reminders is None else ", ".join(reminders) or "none"
    return form_values({"name": subscriber.name, "language": subscriber.language, "timezone": subscriber.timezone,
                        "audiences": subscriber.audiences or [], "timelines": subscriber.timelines or [],
                        "digest": subscriber.digest, "reminders": text})  # fmt: skip


def choosable(known: Known, values: Mapping[str, object]) -> dict[str, list[str]]:
    """The boxes to show: what exists, plus what is already chosen (a timeline may have been removed since)."""
    shown: dict[str, list[str]] = {}
    for name, names in (("audiences", known.audiences), ("timelines", known.timelines)):
        chosen = values.get(name)
        shown[name] = sorted(names | (chosen if isinstance(chosen, set) else set()))
    return shown


@lru_cache(maxsize=1)
def browser_zones() -> dict[str, str]:
    """Old names a browser may report ('Asia/Calcutta') and the zone the form lists for each."""
    found = {alias: zone for zone, names in aliases_of().items() for alias in names}
    return found | {alias: "UTC" for alias, zone in links().items() if zone == "Etc/UTC"} | {"Etc/UTC": "UTC"}


def list_choices(
    known: Known, values: Mapping[str, object], titles: Mapping[str, str], language: Language, now: datetime
) -> Choices:
    """The options of the form in *language*: languages named in themselves, places' zones by region with their
    offset at *now* (and the chosen one even if unknown, so a form shows back what was sent), audiences and
    timelines (*titles* by id)."""
    shown = choosable(known, values)
    zone = values.get("timezone")
    chosen = zone if isinstance(zone, str) else ""
    loose, groups = zone_groups(language, chosen, now)
    return Choices(
        languages=[Choice(code, NAMES[code], languages()[code].tag) for code in NAMES],
        zones=loose,
        zone_groups=groups,
        zone=canonical_zone(chosen),
        zone_aliases=browser_zones(),
        audiences=labelled(shown["audiences"], lambda name: audience_text(name, language)),
        timelines=labelled(shown["timelines"], lambda name: titles.get(name) or name),
        default_audience=", ".join(audience_text(name, language) for name in DEFAULT_AUDIENCES),
    )


def labelled(names: Iterable[str], label: Callable[[str], str]) -> list[Choice]:
    """Boxes in the order of their words, as a reader scans them."""
    choices = [Choice(name, label(name)) for name in names]
    return sorted(choices, key=lambda choice: choice.label.casefold())


def problem(error: SubscriberError | None, language: Language) -> FieldProblem | None:
    """The error with its field's label in *language*; a field the form does not have keeps its name."""
    if error is None:
        return None
    msgid = FIELD_LABELS.get(error.field)
    label = language.gettext(msgid) if msgid else error.field
    words = PROBLEMS.get(error.reason)
    if words is None:
        return FieldProblem(error.field, label, str(error), english=True)
    values = {key: shown(value) for key, value in error.values.items()}
    said = language.gettext(words, **values)
    if error.hint:
        said = f"{said} {language.gettext(HINT, name=shown(error.hint))}"
    return FieldProblem(error.field, label, said)


def shown(value: object) -> str:
    """*value* as a message repeats it: on one line, at most SHOWN_VALUE characters (the page escapes it)."""
    text = " ".join(printable(str(value)).split())
    return text if len(text) <= SHOWN_VALUE else f"{text[: SHOWN_VALUE - 1]}…"


# --- the bodies in /openapi.json (the routes read them by hand, after their own checks) --------------

TEXT: dict[str, Any] = {"type": "string"}
TEXTS: dict[str, Any] = {"type": "array", "items": TEXT}
SUBSCRIBER_PROPERTIES: dict[str, Any] = {
    "email": {"type": "string", "description": "The address to subscribe (it gets the confirmation email)"},
    "name": {"type": "string", "maxLength": 200},
    "language": {"type": "string", "description": "ar, zh, en, fr, ru or es"},
    "timezone": {"type": "string", "description": "IANA name, e.g. Europe/Zurich"},
    "audiences": {**TEXTS, "description": "Default: membership"},
    "timelines": {**TEXTS, "description": "Default: every timeline"},
    "digest": {"type": "string", "description": "off or weekly"},
    "reminders": {**TEXTS, "description": "Offsets such as 7d or 4h, latest first"},
}
FORM_TYPE = "application/x-www-form-urlencoded"


def documented_body(required: bool, **schemas: dict[str, Any]) -> dict[str, Any]:
    """openapi_extra describing a body read by hand, one schema per media type."""
    content = {media: {"schema": schema} for media, schema in schemas.items()}
    return {"requestBody": {"required": required, "content": content}}


SUBSCRIBE_BODY = documented_body(True, **{
    "application/json": {"type": "object", "required": ["email"], "properties": SUBSCRIBER_PROPERTIES},
    FORM_TYPE: {"type": "object", "required": ["email"],
                "properties": {CSRF_FIELD: TEXT, **SUBSCRIBER_PROPERTIES}},
})  # fmt: skip
PREFERENCES_BODY = documented_body(True, **{FORM_TYPE: {"type": "object", "properties": {
    CSRF_FIELD: TEXT, "action": {"type": "string", "description": "save, or rotate-feed for a new feed link"},
    **{k: v for k, v in SUBSCRIBER_PROPERTIES.items() if k != "email"}}}})  # fmt: skip
ONE_CLICK = documented_body(False, **{FORM_TYPE: {"type": "object", "properties": {
    "List-Unsubscribe": {"type": "string", "description": "One-Click (RFC 8058)"}}}})  # fmt: skip
NO_FIELDS = documented_body(False, **{FORM_TYPE: {"type": "object", "properties": {}}})
