"""Render notification emails: a request in, a complete RFC 5322 message out (no network, no store).

One Jinja environment compiles every template once, when the renderer is built. HTML templates
have the layout's CSS inlined into their elements as they load (see `inline_template`), so a
message only fills in values. Words come from the Babel catalogs in `locale/`, read from the
`.po` files at start-up; dates are formatted by Babel in the recipient's language and zone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage, Message, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from gettext import GNUTranslations
from io import BytesIO
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import css_inline
from babel import Locale
from babel.dates import format_date, format_interval, format_time, get_timezone_location
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateError, select_autoescape

from tracker.dates import DateError, Offset, get_zone, parse_offset
from tracker.feeds import CalendarInfo, build_item_calendar, timeline_page
from tracker.planning import MilestoneView, Occurrence, span_length

Kind = Literal["confirm", "reminder", "opened", "changed", "cancelled", "digest"]
KINDS: tuple[Kind, ...] = get_args(Kind)
LANGUAGES = ("ar", "zh", "en", "fr", "ru", "es")
LAYOUT = "layout.html.j2"
# Babel locales: British English, as the UN writes it; Simplified Chinese.
_LOCALES = {"en": "en_GB", "zh": "zh_Hans_CN"}
_TAGS = {"zh": "zh-Hans"}  # BCP 47 tags for lang= and Content-Language
# 7bit: non-ASCII bodies go out quoted-printable or base64, never raw 8-bit (a relay without 8BITMIME).
POLICY = SMTP.clone(cte_type="7bit")


def N_(message: str) -> str:  # noqa: N802 (the gettext convention Babel's extractor looks for)
    """Mark *message* for the catalog; it is translated where it is used."""
    return message


# Audience names that have words in the catalog; other audiences show their id, capitalised.
_AUDIENCES = {
    "membership": N_("Membership"),
    "secretariat": N_("Secretariat"),
    "member-states": N_("Member States"),
    "sector-members": N_("Sector Members"),
    "chair": N_("Chair"),
}


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str
    language: str
    timezone: str


@dataclass(frozen=True)
class Links:
    unsubscribe: str
    unsubscribe_mailto: str
    preferences: str
    feed: str
    confirm: str | None = None


@dataclass(frozen=True)
class EmailRequest:
    """One message to render: its kind, for whom, about what."""

    kind: Kind
    recipient: Recipient
    links: Links
    key: str  # the delivery's unique key, e.g. "reminder:42:hlpf/revised-draft:2017-02-24:7d" → Message-ID
    now: datetime  # aware; the Date header
    view: MilestoneView | None = None  # all kinds except confirm/digest
    due_at: datetime | None = None  # this occurrence's instant (repeating milestones)
    old_at: datetime | None = None  # "changed": the previous instant
    offset: str | None = None  # "reminder": "7d", "4h"
    digest: Sequence[Occurrence] = ()  # "digest": what is due in the coming weeks
    predecessor: MilestoneView | None = None  # "opened": the milestone whose completion opened this one
    subscribed_to: Sequence[str] = ()  # "confirm": titles of the timelines followed (empty: all)


@dataclass(frozen=True)
class Sender:
    from_address: str  # "Tracker <tracker@localhost>"
    base_url: str  # "http://127.0.0.1:8000": links and calendar UIDs
    list_id: str  # "<deadlines.tracker.localhost>"
    reminder_hour: int = 9  # TRACKER_REMINDER_HOUR, for the alarms of the attached calendar item


# --- what templates see -------------------------------------------------------------------


@dataclass(frozen=True)
class ItemText:
    """One occurrence as a message shows it, every value already in the reader's words."""

    title: str
    timeline: str
    when: str
    acts: str  # who must act, when the milestone has an owner
    audience: str  # whom it concerns, when it has none
    location: str
    summary: str
    url: str
    page: str
    span: bool
    done: bool
    removed: bool


@dataclass(frozen=True)
class PreviousText:
    title: str
    done_on: str
    note: str
    link: str


@dataclass(frozen=True)
class WeekText:
    heading: str
    entries: tuple[ItemText, ...]


# --- the renderer -------------------------------------------------------------------------


class Renderer:
    """Turn requests into messages; build one per process and share it (templates and catalogs load once)."""

    def __init__(self, templates: Path, locales: Path, sender: Sender) -> None:
        self.sender = sender
        self.environment = make_environment(templates)
        names = self.environment.list_templates(filter_func=lambda name: name.endswith(".j2"))
        self.templates = {name: self.environment.get_template(name) for name in names}
        self.languages = {code: load_language(locales, code) for code in LANGUAGES}
        self.calendars: dict[tuple[str, str], tuple[tuple[object, ...], bytes]] = {}

    def render(self, request: EmailRequest) -> EmailMessage:
        """Return the complete message for *request*, in the recipient's language and zone."""
        check_request(request)
        language = self.languages[choose_language(request.recipient.language)]
        context = self.context(request, language)
        text_template = self.templates[f"{request.kind}.txt.j2"]
        subject = one_line(render_block(text_template, "subject", context))
        text = tidy_text(text_template.render(context))
        html = self.templates[f"{request.kind}.html.j2"].render(context, subject=subject)
        message = make_message(request, self.sender, subject, language.tag)
        body = [text_part(text, "plain"), text_part(html, "html")]
        attachments = [self.calendar_part(request)] if request.kind == "reminder" else []
        set_body(message, body, attachments, boundary_of(request.key))
        return message

    def context(self, request: EmailRequest, language: Language) -> dict[str, Any]:
        """Return what the templates see: common values, the kind's own, and the gettext functions."""
        translations = language.translations
        values: dict[str, Any] = {
            "lang": language.tag,
            "dir": language.direction,
            "links": request.links,
            "brand": parseaddr(self.sender.from_address)[0] or "Tracker",
            "gettext": translations.gettext,
            "ngettext": translations.ngettext,
        }
        values.update(kind_values(request, language, reader_zone(request), self.sender.base_url))
        return values

    def calendar_part(self, request: EmailRequest) -> MIMEPart:
        assert request.view is not None
        return calendar_part(self.calendar(request, request.view), f"{request.view.key}.ics")

    def calendar(self, request: EmailRequest, view: MilestoneView) -> bytes:
        """Return the milestone's calendar item, built once for all who get a reminder of it."""
        # The whole view is compared, as FeedCache does: a completion changes the item, not the revision.
        state = (view, request.due_at, request.now if view.updated_at is None else None)
        cached = self.calendars.get((view.timeline_id, view.key))
        if cached is not None and cached[0] == state:
            return cached[1]
        base_url = self.sender.base_url
        info = CalendarInfo(
            name=view.timeline_title,
            description=view.timeline_summary,
            url=timeline_page(view, base_url),
            base_url=base_url,
            reminder_hour=self.sender.reminder_hour,
        )
        data = build_item_calendar(view, occurrence_of(view, request.due_at), info, now=request.now)
        self.calendars[view.timeline_id, view.key] = (state, data)
        return data


def check_request(request: EmailRequest) -> None:
    """Refuse a request that lacks what its kind needs, before anything is rendered."""
    if request.now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if request.kind == "confirm" and request.links.confirm is None:
        raise ValueError("a confirm email needs links.confirm")
    if request.kind not in ("confirm", "digest") and request.view is None:
        raise ValueError(f"a {request.kind} email needs a view")
    if request.kind == "changed" and request.old_at is None:
        raise ValueError("a changed email needs old_at")
    if request.kind == "reminder" and request.offset is None:
        raise ValueError("a reminder email needs its offset")


def kind_values(request: EmailRequest, language: Language, reader: str, base_url: str) -> dict[str, Any]:
    """Return the values one kind of message needs."""
    if request.kind == "confirm":
        return {"topics": list(request.subscribed_to)}
    if request.kind == "digest":
        return {"weeks": group_weeks(request.digest, language, reader, base_url)}
    assert request.view is not None
    view = request.view
    values: dict[str, Any] = {"item": describe_item(occurrence_of(view, request.due_at), language, reader, base_url)}
    if request.kind == "reminder" and request.offset is not None:
        values["due"] = due_text(view, parse_offset(request.offset), language)
    elif request.kind == "changed":
        values["old_when"] = when_text(occurrence_of(view, request.old_at), language, reader)
    elif request.kind == "opened":
        values["previous"] = describe_previous(request.predecessor, language)
    return values


def render_block(template: Template, name: str, context: dict[str, Any]) -> str:
    return "".join(template.blocks[name](template.new_context(context)))


def tidy_text(text: str) -> str:
    """Collapse the blank lines that optional sections leave behind."""
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


# --- the message --------------------------------------------------------------------------


def message_id(key: str, domain: str) -> str:
    """Return the Message-ID of a delivery: the same key always gives the same id, so clients fold a resend."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def one_line(text: str) -> str:
    """Collapse all whitespace, CR and LF included: no value can start a header of its own."""
    return " ".join(text.split())


def make_message(request: EmailRequest, sender: Sender, subject: str, tag: str) -> EmailMessage:
    """Return a message with every header set and no body yet."""
    message = EmailMessage(policy=POLICY)
    recipient, links = request.recipient, request.links
    domain = parseaddr(sender.from_address)[1].rpartition("@")[2] or "localhost"
    message["From"] = one_line(sender.from_address)
    message["To"] = Address(display_name=one_line(recipient.name), addr_spec=one_line(recipient.email))
    message["Subject"] = subject
    message["Date"] = format_datetime(request.now)
    message["Message-ID"] = message_id(request.key, domain)
    message["List-Id"] = one_line(sender.list_id)
    message["List-Unsubscribe"] = f"<{one_line(links.unsubscribe)}>, <{one_line(links.unsubscribe_mailto)}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message["Precedence"] = "bulk"
    message["X-Auto-Response-Suppress"] = "All"  # no out-of-office replies from Exchange
    message["Content-Language"] = tag
    message["MIME-Version"] = "1.0"
    return message


def boundary_of(key: str) -> str:
    """Return the start of the boundaries of a delivery: the same request gives the same bytes.

    '=_' cannot occur in quoted-printable or base64 text, so a boundary cannot occur in a part.
    """
    return f"=_{hashlib.sha256(f'boundary:{key}'.encode()).hexdigest()[:24]}_"


def text_part(text: str, subtype: str) -> MIMEPart:
    part = MIMEPart(policy=POLICY)
    part.set_content(text, subtype=subtype, charset="utf-8")
    return part


def calendar_part(calendar: bytes, filename: str) -> MIMEPart:
    part = MIMEPart(policy=POLICY)
    params = {"method": "PUBLISH", "charset": "utf-8"}
    part.set_content(calendar, maintype="text", subtype="calendar", filename=filename, params=params)
    return part


def set_body(message: EmailMessage, body: list[MIMEPart], attachments: list[MIMEPart], boundary: str) -> None:
    """Make *message* multipart/alternative, or multipart/mixed with the alternative first."""
    if not attachments:
        set_multipart(message, "alternative", body, boundary + "1")
        return
    alternative = MIMEPart(policy=POLICY)
    set_multipart(alternative, "alternative", body, boundary + "1")
    set_multipart(message, "mixed", [alternative, *attachments], boundary + "0")


def set_multipart(message: MIMEPart, subtype: str, parts: list[MIMEPart], boundary: str) -> None:
    # Built as a tree rather than with add_alternative/add_attachment, which move headers
    # from part to part and repeat MIME-Version in every part.
    message["Content-Type"] = f'multipart/{subtype}; boundary="{boundary}"'
    payload: list[Message | str] = list(parts)
    message.set_payload(payload)


# --- languages ----------------------------------------------------------------------------


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


# --- words --------------------------------------------------------------------------------


def reader_zone(request: EmailRequest) -> str:
    """Return the recipient's zone; the milestone's (or UTC) if theirs is unknown."""
    try:
        return get_zone(request.recipient.timezone).key
    except DateError:
        return request.view.zone if request.view is not None else "UTC"


def occurrence_of(view: MilestoneView, at: datetime | None) -> Occurrence:
    """Return the occurrence of *view* at *at* (its first when None); spans keep their local length."""
    at = at or view.main_at
    zone = get_zone(view.zone)
    key = at.astimezone(zone).date().isoformat() if view.repeat else ""
    if view.due_at is not None:
        return Occurrence(view, key, at, None, None)
    end = (at.astimezone(zone).replace(tzinfo=None) + span_length(view)).replace(tzinfo=zone)
    return Occurrence(view, key, None, at, end.astimezone(UTC))


def describe_item(item: Occurrence, language: Language, reader: str, base_url: str) -> ItemText:
    view = item.milestone
    return ItemText(
        title=view.title,
        timeline=view.timeline_title,
        when=when_text(item, language, reader),
        acts=audience_text(view.owner, language) if view.owner else "",
        audience=audiences_text(view.audiences, language),
        location=view.location,
        summary=view.summary,
        url=safe_link(view.url),
        page=timeline_page(view, base_url),
        span=item.due_at is None,
        done=item.done_at is not None,
        removed=view.status == "removed",
    )


def describe_previous(view: MilestoneView | None, language: Language) -> PreviousText | None:
    """Return the step whose completion opened this one, with its latest completion's note and link."""
    if view is None:
        return None
    done = max(view.completions.values(), key=lambda c: c.done_at, default=None)
    if done is None:
        return PreviousText(view.title, "", "", "")
    return PreviousText(view.title, day_text(done.done_at, view.zone, language), done.note, safe_link(done.link))


def safe_link(url: str) -> str:
    """Return *url* if it is a web or mail address: a javascript: or data: link is dropped, not escaped."""
    return url if urlsplit(url.strip()).scheme.lower() in ("http", "https", "mailto") else ""


def audience_text(audience: str, language: Language) -> str:
    msgid = _AUDIENCES.get(audience)
    return language.gettext(msgid) if msgid else audience.replace("-", " ").replace("_", " ").capitalize()


def audiences_text(audiences: Sequence[str], language: Language) -> str:
    if not audiences:
        return language.gettext("Everyone")
    return format_list([audience_text(a, language) for a in audiences], locale=language.locale)


def due_text(view: MilestoneView, offset: Offset, language: Language) -> str:
    """Return 'Due in 7 days', 'Starts tomorrow', 'Due in 4 hours'."""
    if view.kind == "span":
        return starts_text(offset, language)
    days, minutes = offset.days, offset.minutes
    if offset.is_calendar and days <= 1:
        return language.gettext("Due tomorrow") if days else language.gettext("Due today")
    if offset.is_calendar:
        return language.ngettext("Due in {num} day", "Due in {num} days", days)
    if minutes % 60 == 0:
        return language.ngettext("Due in {num} hour", "Due in {num} hours", minutes // 60)
    return language.ngettext("Due in {num} minute", "Due in {num} minutes", minutes)


def starts_text(offset: Offset, language: Language) -> str:
    days, minutes = offset.days, offset.minutes
    if offset.is_calendar and days <= 1:
        return language.gettext("Starts tomorrow") if days else language.gettext("Starts today")
    if offset.is_calendar:
        return language.ngettext("Starts in {num} day", "Starts in {num} days", days)
    if minutes % 60 == 0:
        return language.ngettext("Starts in {num} hour", "Starts in {num} hours", minutes // 60)
    return language.ngettext("Starts in {num} minute", "Starts in {num} minutes", minutes)


def group_weeks(items: Sequence[Occurrence], language: Language, reader: str, base_url: str) -> list[WeekText]:
    """Group occurrences by the week of their local date; weeks start on the locale's first day."""
    weeks: dict[date, list[ItemText]] = {}
    first = language.locale.first_week_day
    for item in sorted(items, key=lambda o: (o.at, o.milestone.timeline_id, o.milestone.key)):
        day = item.at.astimezone(get_zone(item.milestone.zone)).date()
        start = day - timedelta(days=(day.weekday() - first) % 7)
        weeks.setdefault(start, []).append(describe_item(item, language, reader, base_url))
    return [WeekText(week_text(start, language), tuple(entries)) for start, entries in weeks.items()]


def week_text(start: date, language: Language) -> str:
    return format_interval(start, start + timedelta(days=6), "yMMMd", locale=language.locale)


# --- dates --------------------------------------------------------------------------------


def when_text(item: Occurrence, language: Language, reader: str) -> str:
    """Return 'Friday, 10 March 2017, end of day, Zurich time (your time: …)' in *language*."""
    view = item.milestone
    if item.due_at is not None:
        return deadline_text(item.due_at, view, language, reader)
    assert item.starts_at is not None
    return span_text(item.starts_at, item.ends_at or item.starts_at, view, language, reader)


def deadline_text(at: datetime, view: MilestoneView, language: Language, reader: str) -> str:
    zone, city = view.zone, city_text(view.zone, language)
    if view.all_day:
        text = language.gettext("{day}, end of day, {city} time", day=day_text(at, zone, language), city=city)
    else:
        day, clock = day_text(at, zone, language), time_text(at, zone, language)
        text = language.gettext("{day}, {time}, {city} time", day=day, time=clock, city=city)
    if same_clock(at, zone, reader):
        return text
    day, clock = day_text(at, reader, language), time_text(at, reader, language)
    return language.gettext("{when} (your time: {day}, {time})", when=text, day=day, time=clock)


def span_text(start: datetime, end: datetime, view: MilestoneView, language: Language, reader: str) -> str:
    """Return the days of an all-day span (the same everywhere), or its times here and the reader's."""
    zone = view.zone
    if view.all_day:
        first, last = (at.astimezone(get_zone(zone)).date() for at in (start, end))
        return format_interval(first, last, "yMMMMEEEEd", locale=language.locale)
    local = clock_range(start, end, zone, language)
    text = language.gettext("{range}, {city} time", range=local, city=city_text(zone, language))
    if same_clock(start, zone, reader):
        return text
    theirs = clock_range(start, end, reader, language)
    return language.gettext("{when} (your time: {range})", when=text, range=theirs)


def clock_range(start: datetime, end: datetime, zone: str, language: Language) -> str:
    first, last = (day_text(at, zone, language) for at in (start, end))
    start_time, end_time = (time_text(at, zone, language) for at in (start, end))
    if first == last:
        return language.gettext("{day}, {start}–{end}", day=first, start=start_time, end=end_time)
    return language.gettext(
        "{first_day}, {first_time} – {last_day}, {last_time}",
        first_day=first,
        first_time=start_time,
        last_day=last,
        last_time=end_time,
    )


def day_text(at: datetime, zone: str, language: Language) -> str:
    return format_date(at.astimezone(get_zone(zone)).date(), "full", locale=language.locale)


def time_text(at: datetime, zone: str, language: Language) -> str:
    return format_time(at.astimezone(get_zone(zone)), "short", locale=language.locale)


def city_text(zone: str, language: Language) -> str:
    # CLDR lacks a few cities; Babel then spells the zone id ("Argentina/Buenos Aires").
    city = get_timezone_location(zone, locale=language.locale, return_city=True)
    return city.rsplit("/", 1)[-1]


def same_clock(at: datetime, zone: str, other: str) -> bool:
    """Whether the two zones read the same wall-clock time at *at* (Paris and Geneva do)."""
    return at.astimezone(get_zone(zone)).replace(tzinfo=None) == at.astimezone(get_zone(other)).replace(tzinfo=None)


# --- templates and CSS --------------------------------------------------------------------

# Whole trans blocks hide as one piece: their text is the msgid, and must reach Jinja as written.
_JINJA = re.compile(r"\{%[-+]?\s*trans\b.*?\{%[-+]?\s*endtrans\s*[-+]?%\}|\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
# The HTML parser keeps comments where they are (even between table rows); in text it may escape them.
_MARK = re.compile(r"(?:<|&lt;)!--jinja:(\d+)--(?:>|&gt;)")
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL)
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)


def make_environment(folder: Path) -> Environment:
    environment = Environment(
        loader=InliningLoader(folder),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    # As babel.cfg extracts them: a msgid never depends on how the template is indented.
    environment.policies["ext.i18n.trimmed"] = True
    return environment


class InliningLoader(FileSystemLoader):
    """Load templates from a folder; an HTML one comes with the layout's CSS inlined into its elements."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.css: str | None = None

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Any]:
        source, filename, uptodate = super().get_source(environment, template)
        if not template.endswith(".html.j2"):
            return source, filename, uptodate
        css = None if template == LAYOUT else self.layout_css(environment)
        return inline_template(source, css, template), filename, uptodate

    def layout_css(self, environment: Environment) -> str:
        if self.css is None:
            layout = super().get_source(environment, LAYOUT)[0]
            self.css = "\n".join(_STYLE.findall(layout))
        return self.css


def inline_template(source: str, css: str | None, name: str) -> str:
    """Return the template *source* with CSS inlined into its elements and its Jinja syntax as it was.

    Jinja syntax hides in HTML comments while css-inline parses and rewrites the page, then comes back.
    """
    hidden: list[str] = []

    def hide(match: re.Match[str]) -> str:
        hidden.append(match.group())
        return f"<!--jinja:{len(hidden) - 1}-->"

    html = inline_css(_JINJA.sub(hide, source), css)
    if [int(index) for index in _MARK.findall(html)] != list(range(len(hidden))):
        raise TemplateError(f"{name}: inlining CSS moved or dropped template syntax; keep tags where HTML allows text")
    return _MARK.sub(lambda match: hidden[int(match.group(1))], html)


def inline_css(html: str, css: str | None) -> str:
    """Inline a whole page's own <style> (css None), or *css* into a fragment."""
    if css is None:
        return _INLINER.inline(html)
    return _INLINER.inline_fragment(html, css)
