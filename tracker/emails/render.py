"""Build the message: headers, parts, the calendar attachment (no network, no store)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from email import quoprimime
from email.message import EmailMessage, Message, MIMEPart
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Template

from tracker.emails.bodies import base64_size, text_encoding
from tracker.emails.content import LRU, Content, Placeholders, content_key, line_facts, make_content, personal_values
from tracker.emails.headers import Letterhead, make_message, one_line
from tracker.emails.inlining import make_environment
from tracker.emails.mime import HEADERS_POLICY, POLICY
from tracker.emails.requests import EmailRequest, Sender
from tracker.feeds import CalendarInfo, build_items_calendar
from tracker.feeds.words import item_words
from tracker.i18n.languages import Language, choose_language, load_language
from tracker.i18n.wording import (
    ItemText,
    brief_when,
    city_text,
    describe_item,
    describe_previous,
    due_text,
    group_weeks,
    late_text,
    moved_text,
    when_text,
)
from tracker.links import timeline_page
from tracker.mail.wire import wire_ready_joined
from tracker.text import LANGUAGES
from tracker.timelines.dates import DateError, get_zone, parse_offset
from tracker.timelines.views import MilestoneView, occurrence_of, timeline_title_in, title_in

if TYPE_CHECKING:  # dkimpy and its DNS library take a tenth of a second to import: only when signing
    from tracker.mail.signing import Signer

# Kinds about a milestone: each carries its .ics, as the feed has it.
ATTACHED = frozenset({"reminder", "changed", "cancelled", "opened", "correction", "overdue", "delayed"})
BRIEF = 4  # a changed message listing more lines shows them as a table, a row each
CONTENTS = 1024  # texts kept for render_bytes: a batch's milestones × languages × reader zones
CALENDARS = 1024  # calendar items kept: a batch's milestones
CHANGES_NAME = "changes.ics"  # the one file of a changed message that lists several milestones
_SURROGATES = re.compile("[\ud800-\udfff]")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


# --- what templates see -------------------------------------------------------------------


class Renderer:
    """Turn requests into messages; build one per process and share it (templates and catalogs load once)."""

    def __init__(
        self,
        templates: Path | Sequence[Path],
        locales: Path,
        sender: Sender,
        *,
        contents: int = CONTENTS,
        signer: Signer | None = None,
    ) -> None:
        """*templates*: a folder of KIND.txt.j2 and KIND.html.j2, or folders searched in turn (overrides first).

        *signer*: DKIM-sign every message, on both paths (render and render_bytes).
        """
        self.sender = sender
        self.signer = signer
        self.environment = make_environment(templates)
        # All compiled now: a broken template must stop the start, not fail every message of its kind.
        names = self.environment.list_templates(filter_func=lambda name: name.endswith(".j2"))
        self.templates = {name: self.environment.get_template(name) for name in names}
        self.languages = {code: load_language(locales, code) for code in LANGUAGES}
        self.calendars: LRU[tuple[bytes, bytes]] = LRU(CALENDARS)  # an item, and its attachment part
        self.contents: LRU[Content] = LRU(contents)
        self.letterhead = Letterhead(sender)
        self.placeholders = Placeholders()

    def render(self, request: EmailRequest) -> EmailMessage:
        """Return the complete message for *request*, in the recipient's language and zone."""
        check_request(request)
        language = self.language_of(request)
        subject, text, html = self.compose(request, language)
        message = make_message(request, self.sender, subject, language.tag)
        body = [text_part(text, "plain"), text_part(html, "html")]
        attachments = [calendar_part(data, name) for name, (data, _) in self.calendar_files(request)]
        set_body(message, body, attachments, boundary_of(request.key))
        if self.signer is not None:
            self.signer.sign_message(message)
        return message

    def render_bytes(self, request: EmailRequest) -> bytes:
        """Return bytes(render(request)), built from a text rendered once for all who get the same words."""
        pieces = self.render_pieces(request)
        # Marked ready for the wire here, where the shared parts need no scan.
        return pieces[0] if len(pieces) == 1 else wire_ready_joined(pieces) or b"".join(pieces)

    def render_pieces(self, request: EmailRequest) -> list[bytes]:
        """Return render_bytes(request) in pieces not yet joined: the parts many messages share are the same objects.

        The render helper sends them back so: the bytes of a shared part once a batch, not once a message.
        """
        check_request(request)
        language = self.language_of(request)
        content = self.content(request, language)
        values = personal_values(request)
        if not content.fits(values):  # a link with a line break: only a whole render lays it out right
            return [bytes(self.render(request))]
        head = self.letterhead.write(request, content.subject_line, content.language_line)
        pieces = [head, *content.body(values, boundary_of(request.key))]
        if self.signer is None:
            return pieces
        # Per message: the body hash differs with each recipient's personal links.
        return [self.signer.sign(b"".join(pieces))]

    def language_of(self, request: EmailRequest) -> Language:
        return self.languages[choose_language(request.recipient.language)]

    def compose(self, request: EmailRequest, language: Language) -> tuple[str, str, str]:
        """Return the subject, the text and the HTML of *request*."""
        context = self.context(request, language)
        text_template = self.templates[f"{request.kind}.txt.j2"]
        subject = one_line(render_block(text_template, "subject", context))
        text = tidy_text(text_template.render(context))
        html = self.templates[f"{request.kind}.html.j2"].render(context, subject=subject)
        return subject, scrub(text), scrub(html)

    def content(self, request: EmailRequest, language: Language) -> Content:
        """Return what *request* says, for anyone: kept, or rendered now with placeholders."""
        slot, state = content_key(request, language.code, reader_zone(request))
        found = self.contents.get(slot, state)
        if found is None:
            subject, text, html = self.compose(self.placeholders.stand_in(request), language)
            attachments = tuple(part for _, (_, part) in self.calendar_files(request))
            found = make_content(subject, language.tag, text, html, attachments, self.placeholders)
            self.contents.put(slot, state, found)
        return found

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

    def calendar_files(self, request: EmailRequest) -> list[tuple[str, tuple[bytes, bytes]]]:
        """Return the .ics files *request*'s message carries, each as (name, (item, attachment part))."""
        views = attached(request)
        if len(views) > 1:  # a changed message listing several: one file, one import, shared zones once
            return [(CHANGES_NAME, self.calendar_of(request, views))]
        return [(attachment_name(view), self.calendar_of(request, [view])) for view in views]

    def calendar(self, request: EmailRequest, view: MilestoneView) -> bytes:
        """Return the milestone's calendar item, built once for all who get a reminder of it."""
        return self.calendar_of(request, [view])[0]

    def calendar_of(self, request: EmailRequest, views: Sequence[MilestoneView]) -> tuple[bytes, bytes]:
        # The whole view is compared, as FeedCache does: a completion changes the item, not the revision.
        # One item per language: the attachment reads like the message it comes with.
        language = self.language_of(request)
        undated = any(view.updated_at is None for view in views)
        state = (tuple(views), request.due_at, request.now if undated else None)
        key = (tuple((view.timeline_id, view.key) for view in views), language.code)
        found = self.calendars.get(key, state)
        if found is None:
            found = build_calendar(views, request, self.sender, language)
            self.calendars.put(key, state, found)
        return found


def attached(request: EmailRequest) -> list[MilestoneView]:
    """The milestones whose .ics *request*'s message carries: its own, or each one a changed message lists."""
    if request.kind not in ATTACHED:
        return []
    if request.changes:
        return [line.view for line in request.changes]
    return [request.view] if request.view is not None else []


def build_calendar(
    views: Sequence[MilestoneView], request: EmailRequest, sender: Sender, language: Language
) -> tuple[bytes, bytes]:
    """Return the calendar item of the milestones *request* is about, and its attachment part as bytes."""
    name, address = parseaddr(sender.from_address)
    items = []
    for view in views:
        info = CalendarInfo(
            words=item_words(language),
            name=timeline_title_in(view, language.code),
            description=view.timeline_summary,
            url=timeline_page(view, sender.base_url),
            base_url=sender.base_url,
            reminder_hour=sender.reminder_hour,
            organizer=(name, address),
        )
        items.append((view, occurrence_of(view, request.due_at), info))
    # A file of several (a changed message's list) carries each item in brief: in a message
    # listing fifty moves, fifty full items were two fifths of its bytes.
    data = build_items_calendar(items, now=request.now, brief=len(items) > BRIEF)
    filename = attachment_name(views[0]) if len(views) == 1 else CHANGES_NAME
    return data, calendar_part(data, filename).as_bytes(policy=HEADERS_POLICY)


def attachment_name(view: MilestoneView) -> str:
    """Return the file name of a milestone's calendar item: its id, which is a slug, kept to [A-Za-z0-9._-]."""
    return _UNSAFE_NAME.sub("-", view.key)[:60] + ".ics"


def check_request(request: EmailRequest) -> None:
    """Refuse a request that lacks what its kind needs, before anything is rendered."""
    if request.now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if request.kind in ("confirm", "sign-in") and request.links.confirm is None:
        raise ValueError(f"a {request.kind} email needs links.confirm")
    if request.kind == "changed":
        if not request.changes or not line_facts(request.changes).dated:
            raise ValueError("a changed email needs its changes, each with its date")
    elif request.kind not in ("confirm", "digest", "sign-in") and request.view is None:
        raise ValueError(f"a {request.kind} email needs a view")
    if request.kind == "reminder" and request.offset is None:
        raise ValueError("a reminder email needs its offset")


def kind_values(request: EmailRequest, language: Language, reader: str, base_url: str) -> dict[str, Any]:
    """Return the values one kind of message needs."""
    if request.kind == "confirm":
        return {"topics": list(request.subscribed_to)}
    if request.kind == "sign-in":  # the link is links.confirm: a personal value, never in the shared text
        return {"minutes": int(request.offset or 15)}
    if request.kind == "digest":
        return {"weeks": group_weeks(request.digest, language, reader, base_url)}
    if request.kind == "changed":
        return changes_values(request, language, reader, base_url)
    assert request.view is not None
    view = request.view
    values: dict[str, Any] = {"item": describe_item(occurrence_of(view, request.due_at), language, reader, base_url)}
    if request.kind == "reminder" and request.offset is not None:
        values["due"] = due_text(view, parse_offset(request.offset), language)
    elif request.kind == "opened":
        values["previous"] = describe_previous(request.predecessor, language)
    elif request.kind == "overdue":
        values["late"] = late_text(view, request.due_at or view.main_at, request.now, language)
    elif request.kind == "delayed":
        step = request.predecessor
        values["step"] = describe_item(occurrence_of(step, None), language, reader, base_url) if step else None
    elif request.kind == "correction":
        values["reopened"] = title_in(request.predecessor, language.code) if request.predecessor else ""
        values["why"] = request.note
    return values


def changes_values(request: EmailRequest, language: Language, reader: str, base_url: str) -> dict[str, Any]:
    """Each line of a changed message: the milestone at its new date (or the one given up), and the old date.

    A long list (a meeting moved with its cascade, a whole timeline shifted) is a table: a row per
    milestone with its dates in brief, on the reader's clock, who acts said once when it is the same.
    """
    lines, items = [], []
    for line in request.changes:
        new = occurrence_of(line.view, line.at)
        item = describe_item(new, language, reader, base_url)
        items.append(item)
        moved = line.change in ("moved", "restored") and line.old_at is not None
        old = occurrence_of(line.view, line.old_at) if moved else None
        lines.append({
            "item": item, "change": line.change,
            "old_when": "" if old is None else when_text(old, language, reader),
            "brief": brief_when(new, language, reader),
            "old_brief": "" if old is None else brief_when(old, language, reader),
            # Why the new date is not the one its rule gives, as pages and feeds say it.
            "why": moved_text(line.view, language) if line.change in ("moved", "restored") else "",
        })  # fmt: skip
    ids = {line.view.timeline_id for line in request.changes}
    first = lines[0]["item"] if lines else None
    acts = {describe.acts for describe in items}
    return {
        "changes": lines,
        # All about one timeline (told by its id: a title may be blank): said once, in the subject.
        "timeline": first.timeline if len(ids) == 1 and isinstance(first, ItemText) else None,
        "moved": any(line.change in ("moved", "restored") for line in request.changes),
        "brief": len(lines) > BRIEF,
        "acts": acts.pop() if len(acts) == 1 else None,  # the same for every line: said once
        "clock": city_text(reader, language) if not all(line.view.all_day for line in request.changes) else "",
    }


def render_block(template: Template, name: str, context: dict[str, Any]) -> str:
    return "".join(template.blocks[name](template.new_context(context)))


def scrub(text: str) -> str:
    """Replace lone surrogates, which no encoding can write, by U+FFFD (headers drop them in `fields`)."""
    return _SURROGATES.sub("\ufffd", text)


def tidy_text(text: str) -> str:
    """Collapse the blank lines that optional sections leave behind."""
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


# --- the message --------------------------------------------------------------------------


def boundary_of(key: str) -> str:
    """Return the start of the boundaries of a delivery: the same request gives the same bytes.

    '=_' cannot occur in quoted-printable or base64 text, so a boundary cannot occur in a part.
    """
    return f"=_{hashlib.sha256(f'boundary:{key}'.encode()).hexdigest()[:24]}_"


def text_part(text: str, subtype: str) -> MIMEPart:
    """The text or HTML part: 7bit, or the shorter of quoted-printable and base64 for the whole text (bodies)."""
    part = MIMEPart(policy=POLICY)
    part.set_content(text, subtype=subtype, charset="utf-8", cte=text_encoding(text))
    return part


def calendar_part(calendar: bytes, filename: str) -> MIMEPart:
    """The .ics as a text part: 7bit when ASCII, else the shorter of quoted-printable and base64.

    As text, not bytes (always base64, a third larger): a changed message's file of 50 items
    is 30 KB, not 41 KB, and a reader without the calendar still sees what it says.
    """
    text = calendar.decode("utf-8")
    part = MIMEPart(policy=POLICY)
    params = {"method": "PUBLISH"}
    part.set_content(text, subtype="calendar", charset="utf-8", cte=shortest_encoding(text), filename=filename,
                     params=params)  # fmt: skip
    return part


def shortest_encoding(text: str) -> str:
    """7bit for ASCII; else quoted-printable or base64, whichever is shorter for this whole text.

    The email package guesses from the first ten lines, which in a calendar are ASCII whatever the
    language: Chinese or Arabic titles would go out quoted-printable at three times their size.
    """
    if text.isascii():
        return "7bit"
    data = text.encode("utf-8")
    # As the email package encodes it, with the CRLF line ends the part goes out with.
    quoted = quoprimime.body_encode(data.decode("latin-1"), POLICY.max_line_length or 76, "\r\n")
    return "quoted-printable" if len(quoted) <= base64_size(len(data)) else "base64"


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


def reader_zone(request: EmailRequest) -> str:
    """Return the recipient's zone; the milestone's (or UTC) if theirs is unknown."""
    try:
        return get_zone(request.recipient.timezone).key
    except DateError:
        view = request.view or (request.changes[0].view if request.changes else None)
        return view.zone if view is not None else "UTC"
