"""Subscribers: checked input (one by one or from CSV), saved idempotently, with events."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import bindparam
from sqlalchemy import update as update_rows
from sqlmodel import Session, col, select

from tracker.store.bulk import insert_rows
from tracker.store.models import Event, Subscriber
from tracker.subscribers.tokens import Purpose, read_token
from tracker.text import LANGUAGES, find_refused
from tracker.timelines.dates import DateError, format_offset, get_zone, parse_reminder, suggest
from tracker.timelines.zones import canonical_zone

DIGESTS = ("off", "weekly")
CHOICES = ("name", "language", "timezone", "audiences", "timelines", "digest", "reminders")  # what a subscriber picks
DEFAULT_AUDIENCES = ("membership",)
OPTIONAL = frozenset({"digest", "reminders"})  # CSV rows and the CLI do not carry these
MAX_NAME = 200
MAX_OFFSETS = 5  # a handful of reminders before each deadline; more is noise, and each costs a row per deadline
MAX_OFFSET_TEXT = 12  # characters: '366d', '8784h', '527040m' and their spaces
Outcome = Literal["added", "updated", "unchanged"]
Raw = Mapping[str, object]  # field → text, a list of texts (JSON, forms) or None


class SubscriberError(ValueError):
    """Input that cannot become a subscriber; the message says why, *field* names the input at fault.

    The message is English, for the terminal and the JSON API; *reason* and *values* let a form say the
    same in its reader's language (tracker/web/forms.py, PROBLEMS). *hint* is the nearest known name, if any.
    """

    def __init__(self, message: str, field: str = "", reason: str = "", hint: str = "", **values: object) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason
        self.hint = hint
        self.values = values


def nearest(word: str, choices: Iterable[str]) -> str:
    """Return the known name closest to *word* (as `suggest` picks it), or ''."""
    import difflib

    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else ""


@dataclass(frozen=True)
class SubscriberInput:
    email: str
    key: str  # lower-cased address: one subscription per mailbox
    name: str = ""
    language: str = "en"
    timezone: str = "Europe/Zurich"
    audiences: tuple[str, ...] = DEFAULT_AUDIENCES
    timelines: tuple[str, ...] | None = None  # None: every timeline
    digest: str = "off"
    reminders: tuple[str, ...] | None = None  # None: the milestones' own offsets; (): none
    keep: frozenset[str] = OPTIONAL  # fields the input does not carry: saving leaves them as stored


@dataclass(frozen=True)
class Known:
    """What exists in the store, to catch typos in audiences and timelines."""

    timelines: frozenset[str]
    audiences: frozenset[str]


def normalise_email(text: str) -> tuple[str, str]:
    """Return the address as mail is sent to it (domain in IDNA) and its lower-cased key, or raise SubscriberError.

    The key keeps the Unicode domain, so 'bücher.example' and 'xn--bcher-kva.example' are one
    mailbox. A local part that is not ASCII can only be delivered with SMTPUTF8, which we do not
    send: such an address is refused here rather than accepted and never mailed.
    """
    if "\r" in text or "\n" in text:
        raise SubscriberError("an email address cannot contain a line break", "email", "line-break")
    quick = plain_address(text.strip())
    if quick is not None:
        return quick
    # Here, not at the top: every command imports this module, few of them read an address.
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(text.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"this is not an email address: {exc}", "email", "not-email") from None  # not echoed back
    if valid.ascii_email is None:
        raise SubscriberError(
            "the part of the address before the @ is not ASCII, so this address needs SMTPUTF8, which Tracker"
            " does not send; use an ASCII address",
            "email",
            "not-ascii",
        )
    return valid.ascii_email, valid.normalized.lower()


# RFC 5322 dot-atom in ASCII: what email-validator takes as it is (its DOT_ATOM_TEXT), nothing to normalise.
PLAIN_LOCAL = re.compile(r"[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+(?:\.[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+)*")
MAX_ADDRESS = 254  # octets (RFC 5321 4.5.3.1.3 as email-validator reads it); the local part at most 64


def plain_address(address: str) -> tuple[str, str] | None:
    """The common case of `normalise_email` without email-validator's per-character work; None: ask it.

    An import of 100,000 addresses spent two thirds of its time validating the same few
    domains again. An ASCII dot-atom local part is taken as it is, and the domain's verdict is
    the one email-validator gave that domain (cached); anything else, and every limit close to
    being reached, goes to email-validator itself, so the answer is always the one it gives.
    """
    local, at, domain = address.rpartition("@")
    if not at or len(local) > 64 or not PLAIN_LOCAL.fullmatch(local):
        return None
    checked = checked_domain(domain)
    if checked is None:
        return None
    ascii_domain, normalized = checked
    ascii_email, key = f"{local}@{ascii_domain}", f"{local}@{normalized}"
    if max(len(address.encode()), len(ascii_email), len(key.encode())) > MAX_ADDRESS:
        return None
    return ascii_email, key.lower()


@lru_cache(maxsize=4096)
def checked_domain(domain: str) -> tuple[str, str] | None:
    """The domain as email-validator writes it (IDNA, and as normalised), or None when it refuses it."""
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    return valid.ascii_domain, valid.domain


def split_list(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(";") if part.strip())


def check_input(raw: Raw, *, zone: str, known: Known) -> SubscriberInput:
    """Check one subscriber's fields (CSV row, options, form or JSON); raise SubscriberError naming the field.

    A missing digest or reminders field means "leave it as stored": CSV rows and options have neither.
    """
    email, key = normalise_email(text_field(raw, "email"))
    language, timezone = check_language(text_field(raw, "language")), check_zone(text_field(raw, "timezone"), zone)
    audiences = list_field(raw, "audiences") or DEFAULT_AUDIENCES
    timelines = list_field(raw, "timelines") or None
    check_names("audience", audiences, known.audiences)
    check_names("timeline", timelines or (), known.timelines)
    name, digest = check_name(text_field(raw, "name")), check_digest(text_field(raw, "digest"))
    return SubscriberInput(email, key, name, language, timezone, audiences, timelines, digest, check_reminders(raw),
                           OPTIONAL - raw.keys())  # fmt: skip


def text_field(raw: Raw, field: str) -> str:
    value = raw.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SubscriberError(f"{field} must be text", field, "unreadable")
    return value


def list_field(raw: Raw, field: str) -> tuple[str, ...]:
    """A list from JSON or a form, or ;-separated text from CSV and options."""
    value = raw.get(field)
    if value is None or isinstance(value, str):
        return split_list(value)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SubscriberError(f"{field} must be a list of names", field, "unreadable")
    return tuple(dict.fromkeys(v.strip() for v in value if v.strip()))


def check_name(text: str) -> str:
    """A display name on one line: spaces and tabs collapsed, control characters refused, at most MAX_NAME long.

    A name goes into email headers, pages and the secretariat's terminal: a line break, NUL, a
    lone surrogate or a bidirectional override there changes what others see, so it is refused
    with its position rather than quietly changed.
    """
    refused = find_refused(text, allowed="\t")
    if refused is not None:
        position, what = refused
        raise SubscriberError(
            f"name: character {position} is {what}: write the name on one line, in letters, spaces and punctuation",
            "name",
            "name-character",
            position=position,
        )
    name = " ".join(text.split())
    if len(name) > MAX_NAME:
        raise SubscriberError(f"name is longer than {MAX_NAME} characters", "name", "name-long", num=MAX_NAME)
    return name


def check_language(text: str) -> str:
    language = text.strip().lower() or "en"
    if language not in LANGUAGES:
        raise SubscriberError(
            f"language {language!r} is not one of {', '.join(LANGUAGES)}{suggest(language, LANGUAGES)}",
            "language",
            "language",
            nearest(language, LANGUAGES),
            value=language,
        )
    return language


def check_digest(text: str) -> str:
    digest = text.strip().lower() or "off"
    if digest not in DIGESTS:
        raise SubscriberError(
            f"digest {digest!r} is not one of {', '.join(DIGESTS)}{suggest(digest, DIGESTS)}",
            "digest",
            "digest",
            nearest(digest, DIGESTS),
            value=digest,
        )
    return digest


def check_zone(text: str, default: str) -> str:
    timezone = text.strip() or default
    try:
        get_zone(timezone)
    except DateError as exc:
        raise SubscriberError(str(exc), "timezone", "zone", value=timezone) from None
    return canonical_zone(timezone)  # 'US/Eastern' is kept as 'America/New_York', the name the forms list


def check_reminders(raw: Raw) -> tuple[str, ...] | None:
    """Offsets such as 7d or 4h, latest-first; None (empty text or null): the milestones' own; "none" or []: none."""
    value = raw.get("reminders")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        value = [] if value.strip().lower() == "none" else re.split(r"[\s,;]+", value.strip())
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SubscriberError("reminders must be a list of offsets such as 7d or 4h", "reminders", "reminders")
    texts = {v.strip() for v in value if v.strip()}
    if len(texts) > MAX_OFFSETS:  # before reading any: a long list is refused as cheaply as a short one
        raise SubscriberError(f"reminders: at most {MAX_OFFSETS} offsets", "reminders", "reminders-many",
                              num=MAX_OFFSETS)  # fmt: skip
    for text in texts:
        if len(text) > MAX_OFFSET_TEXT:
            raise SubscriberError(f"reminders: {text[:MAX_OFFSET_TEXT]!r}… is not an offset such as 7d or 4h",
                                  "reminders", "reminders")  # fmt: skip
    try:
        # Bounded, so that every stored offset reads back (format_offset ∘ parse_reminder) and can be planned.
        offsets = {parse_reminder(text) for text in texts}
    except DateError as exc:
        raise SubscriberError(f"reminders: {exc}", "reminders", "reminders") from None
    return tuple(format_offset(o) for o in sorted(offsets, key=lambda o: o.exact(), reverse=True))


def check_names(what: str, names: Iterable[str], known: frozenset[str]) -> None:
    for name in names:
        if known and name not in known:
            hint = suggest(name, known) or " (known: " + ", ".join(sorted(known)) + ")"
            raise SubscriberError(f"no {what} {name!r}{hint}", f"{what}s", f"unknown-{what}",
                                  nearest(name[:100], known), value=name)  # fmt: skip


def known_names(session: Session) -> Known:
    """The timelines there are and the audiences they name (plus the default one); empty when there is none yet."""
    from tracker.store.models import Milestone, Timeline

    live = Timeline.removed_at.is_(None)  # type: ignore[union-attr]
    timelines = frozenset(session.exec(select(Timeline.id).where(live)))
    audiences = {a for t in session.exec(select(Timeline.audiences).where(live)) for a in (t or ())}
    owners = (
        select(Milestone.owner)
        .join(Timeline, col(Timeline.id) == Milestone.timeline_id)
        .where(live, Milestone.status != "removed", col(Milestone.owner).is_not(None))
    )
    audiences |= {owner for owner in session.exec(owners) if owner}
    # The default audience is always a valid choice, even where no timeline names it.
    return Known(timelines, frozenset(audiences | set(DEFAULT_AUDIENCES)) if timelines else frozenset())


def find(session: Session, email: str) -> Subscriber | None:
    _, key = normalise_email(email)
    return session.exec(select(Subscriber).where(Subscriber.email_key == key)).first()


def save(
    session: Session, data: SubscriberInput, *, confirmed: bool, now: datetime, actor: str = ""
) -> tuple[Subscriber, Outcome]:
    """Add or update one subscriber; saving the same data again changes nothing. *actor*: who, for the events."""
    subscriber = session.exec(select(Subscriber).where(Subscriber.email_key == data.key)).first()
    if subscriber is None:
        subscriber = Subscriber(email=data.email, email_key=data.key, created_at=now, changed_at=now)
        apply_input(subscriber, data)
        outcome: Outcome = "added"
    else:
        outcome = "updated" if apply_input(subscriber, data) else "unchanged"
        if outcome == "updated":
            subscriber.changed_at = now
    if confirmed and subscriber.state in ("pending", "unsubscribed"):
        subscriber.state, subscriber.confirmed_at = "confirmed", now
        outcome = "added" if outcome == "added" else "updated"
    session.add(subscriber)
    session.flush()
    if outcome != "unchanged":
        record(session, f"subscriber_{outcome}", subscriber, now, actor)
        if subscriber.confirmed_at == now:
            record(session, "subscriber_confirmed", subscriber, now, actor)
    return subscriber, outcome


@dataclass(frozen=True)
class Saved:
    """One subscriber as `save_many` left it."""

    id: int
    state: str
    confirm_version: int
    outcome: Outcome


def save_many(
    session: Session, rows: Sequence[SubscriberInput], *, confirmed: bool, now: datetime, actor: str = ""
) -> list[Saved]:
    """Add or update many subscribers as `save` does each, in a handful of statements; results in input order.

    An import of 100,000 rows spent nearly all its time in the ORM's per-row work (a query, an
    object, a flush and an event each); here a chunk is one query, one insert, one update and
    one insert of events. The addresses of *rows* are distinct.
    """
    table = Subscriber.__table__  # type: ignore[attr-defined]
    found = session.execute(select(table).where(table.c.email_key.in_([data.key for data in rows])))
    stored = {row.email_key: row._asdict() for row in found}
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    outcomes: dict[str, tuple[Outcome, bool]] = {}  # key → outcome, confirmed now
    for data in rows:
        before = stored.get(data.key)
        after = merged(before, data, confirmed=confirmed, now=now)
        outcome: Outcome = "added" if before is None else "updated" if after != before else "unchanged"
        outcomes[data.key] = (outcome, after["confirmed_at"] == now and (before or {}).get("confirmed_at") != now)
        if before is None:
            new.append(after)
        elif outcome == "updated":
            changed.append({**after, "changed_at": now, "_id": after["id"]})
    insert_rows(session, table, new)
    if changed:
        names = [*CHOICES, "state", "confirmed_at", "changed_at"]
        statement = update_rows(table).where(table.c.id == bindparam("_id"))
        session.execute(statement.values({name: bindparam(name) for name in names}),
                        [{name: row[name] for name in ["_id", *names]} for row in changed])  # fmt: skip
    columns = (table.c.email_key, table.c.id, table.c.state, table.c.confirm_version)
    ids = {key: rest for key, *rest in session.execute(select(*columns).where(table.c.email_key.in_(list(outcomes))))}
    insert_rows(session, Event.__table__, events_of(rows, outcomes, ids, now, actor))  # type: ignore[attr-defined]
    return [Saved(ids[d.key][0], ids[d.key][1], ids[d.key][2], outcomes[d.key][0]) for d in rows]


def merged(before: dict[str, Any] | None, data: SubscriberInput, *, confirmed: bool, now: datetime) -> dict[str, Any]:
    """The subscriber's row after *data*: what the input carries replaces what was stored."""
    if before is None:
        row: dict[str, Any] = {"email": data.email, "email_key": data.key, **chosen(data), "state": "pending",
                               "manage_version": 0, "feed_version": 0, "confirm_version": 0, "created_at": now,
                               "confirmed_at": None, "changed_at": now}  # fmt: skip
    else:
        row = {**before, **{k: v for k, v in chosen(data).items() if k not in data.keep}}
    if confirmed and row["state"] == "pending":  # an address that left stays out: a re-import is no new consent
        row["state"], row["confirmed_at"] = "confirmed", now
    return row


def to_invite(saved: Sequence[Saved]) -> list[tuple[int, int]]:
    """The new pending addresses of a chunk (id, confirm version): a re-run of an import invites nobody twice."""
    return [(s.id, s.confirm_version) for s in saved if s.state == "pending" and s.outcome == "added"]


def chosen(data: SubscriberInput) -> dict[str, Any]:
    """The columns of what a subscriber picks, as stored (the address keeps the spelling it was first given)."""
    return {
        "name": data.name,
        "language": data.language,
        "timezone": data.timezone,
        "audiences": list(data.audiences),
        "timelines": None if data.timelines is None else list(data.timelines),
        "digest": data.digest,
        "reminders": None if data.reminders is None else list(data.reminders),
    }


def events_of(rows: Sequence[SubscriberInput], outcomes: Mapping[str, tuple[Outcome, bool]],
              ids: Mapping[str, Sequence[Any]], now: datetime, actor: str = "") -> list[dict[str, Any]]:  # fmt: skip
    events = []
    for data in rows:
        outcome, confirmed_now = outcomes[data.key]
        kinds = [f"subscriber_{outcome}"] * (outcome != "unchanged") + ["subscriber_confirmed"] * confirmed_now
        events += [{"at": now, "kind": kind, "timeline_id": "", "subscriber_id": ids[data.key][0],
                    "detail": {"email": data.email}, "actor": actor} for kind in kinds]  # fmt: skip
    return events


def update(session: Session, subscriber: Subscriber, data: SubscriberInput, now: datetime, actor: str = "") -> bool:
    """Apply what a subscriber chose on their preferences page (not the address); return whether anything changed."""
    if not apply_input(subscriber, data):
        return False
    subscriber.changed_at = now
    session.add(subscriber)
    record(session, "subscriber_updated", subscriber, now, actor)
    return True


def request_subscription(session: Session, data: SubscriberInput, now: datetime, actor: str = "") -> Subscriber | None:
    """Start (or restart) the double opt-in for *data*; return the pending subscriber to invite, if any.

    A confirmed (or suspended) subscription is left exactly as it is, and so are the choices of a
    pending one: whoever asks is not necessarily the address's owner, who confirms what the first
    email showed and changes it through the preferences link in every email.
    """
    subscriber = session.exec(select(Subscriber).where(Subscriber.email_key == data.key)).first()
    if subscriber is not None and subscriber.state in ("confirmed", "suspended"):
        return None
    if subscriber is None or subscriber.state == "unsubscribed":
        subscriber, _ = save(session, data, confirmed=False, now=now, actor=actor)
    if subscriber.state == "unsubscribed":
        subscriber.state, subscriber.changed_at = "pending", now
        session.add(subscriber)
        record(session, "subscriber_resubscribing", subscriber, now, actor)
    return subscriber


def apply_input(subscriber: Subscriber, data: SubscriberInput) -> bool:
    """Copy *data* onto *subscriber*; return whether anything changed."""
    values = {k: v for k, v in chosen(data).items() if k not in data.keep}
    changed = any(getattr(subscriber, k) != v for k, v in values.items())
    for name, value in values.items():
        setattr(subscriber, name, value)
    return changed


def record(session: Session, kind: str, subscriber: Subscriber, now: datetime, actor: str = "") -> None:
    session.add(Event(at=now, kind=kind, subscriber_id=subscriber.id, detail={"email": subscriber.email}, actor=actor))


def unsubscribe(session: Session, subscriber: Subscriber, now: datetime, actor: str = "") -> bool:
    """Stop every message to *subscriber*; return False when already unsubscribed."""
    if subscriber.state == "unsubscribed":
        return False
    subscriber.state, subscriber.changed_at = "unsubscribed", now
    session.add(subscriber)
    record(session, "subscriber_unsubscribed", subscriber, now, actor)
    return True


def rotate(
    session: Session, subscriber: Subscriber, purposes: Iterable[Purpose], now: datetime, actor: str = ""
) -> None:
    """Revoke the subscriber's tokens of *purposes*; new links carry the next version."""
    for purpose in purposes:
        field = f"{purpose}_version"
        setattr(subscriber, field, getattr(subscriber, field) + 1)
    subscriber.changed_at = now
    session.add(subscriber)
    record(session, "subscriber_tokens_rotated", subscriber, now, actor)


def by_token(session: Session, secret: bytes, purpose: Purpose, token: str) -> Subscriber | None:
    """The subscriber a current token of *purpose* names; None for a wrong, forged or rotated one."""
    found = read_token(secret, purpose, token)
    if found is None:
        return None
    subscriber = session.get(Subscriber, found[0])
    if subscriber is None or getattr(subscriber, f"{purpose}_version") != found[1]:
        return None
    return subscriber


def confirm(session: Session, subscriber: Subscriber, now: datetime, actor: str = "") -> bool:
    """Confirm a pending subscription (double opt-in); return False when there was nothing to do."""
    if subscriber.state != "pending":
        return False
    subscriber.state, subscriber.confirmed_at, subscriber.changed_at = "confirmed", now, now
    subscriber.confirm_version += 1  # the link is spent: using it again changes nothing
    session.add(subscriber)
    record(session, "subscriber_confirmed", subscriber, now, actor)
    return True
