"""Tables of the store. The store is the truth; everything else derives from it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, String, UniqueConstraint, text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike.

    On SQLite the value is the text SQLAlchemy's own DATETIME writes there
    ('2017-02-24 22:59:59.000000', UTC), made in one step: a large sync binds
    tens of thousands of them, and two layers of conversion were a large part of its writing.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; every datetime must be aware")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    def process_result_value(self, value: datetime | str | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _at(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json() -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=True))


class Timeline(SQLModel, table=True):
    __tablename__ = "timelines"

    id: str = Field(primary_key=True, max_length=100)
    title: str
    titles: dict[str, str] | None = _json()  # translations by language code; `title` is the English one
    summary: str = ""
    timezone: str = Field(max_length=64)
    kind: str = Field(max_length=20)
    source: str = ""
    url: str = ""
    audiences: list[str] | None = _json()
    reminders: list[str] | None = _json()
    calendar: dict[str, Any] | None = _json()  # weekend and holidays (workdays.WorkCalendar); None: Saturday-Sunday
    path: str = ""
    removed_at: datetime | None = _at()
    updated_at: datetime | None = _at()


class Milestone(SQLModel, table=True):
    __tablename__ = "milestones"
    __table_args__ = (UniqueConstraint("timeline_id", "key", name="uq_milestone_key"),)

    id: int | None = Field(default=None, primary_key=True)
    timeline_id: str = Field(foreign_key="timelines.id", max_length=100, index=True)
    key: str = Field(max_length=100)
    position: int = 0
    line: int = 0
    title: str
    titles: dict[str, str] | None = _json()  # translations by language code; `title` is the English one
    summary: str = ""
    owner: str | None = Field(default=None, max_length=100)
    url: str = ""
    location: str = ""
    kind: str = Field(max_length=10)  # deadline | span
    all_day: bool = True
    zone: str = Field(max_length=64)
    due_expr: str | None = None
    starts_expr: str | None = None
    ends_expr: str | None = None
    due_at: datetime | None = _at(index=True)
    starts_at: datetime | None = _at()
    ends_at: datetime | None = _at()
    repeat: str | None = None
    status: str = Field(default="active", max_length=10)  # active | cancelled | removed
    opens_after: str | None = None
    reminders: list[str] | None = _json()  # effective offsets, e.g. ["14d", "7d", "1d"]
    overdue: list[str] | None = _json()  # escalation offsets of a late step, e.g. ["3d", "1d"]; None: TRACKER_OVERDUE
    roll: str | None = Field(default=None, max_length=10)  # previous | next: off a day off to a working day
    rolled_from: date | None = None  # the main date as written, when roll moved it (shown with the milestone)
    revision: int = 0
    updated_at: datetime | None = _at()


class CompletionRecord(SQLModel, table=True):
    __tablename__ = "completions"
    __table_args__ = (UniqueConstraint("timeline_id", "milestone_key", "occurrence", name="uq_completion"),)

    id: int | None = Field(default=None, primary_key=True)
    timeline_id: str = Field(max_length=100)
    milestone_key: str = Field(max_length=100)
    occurrence: str = Field(default="", max_length=40)  # '' or the occurrence's local date
    done_at: datetime = _at(nullable=False)
    done_day: date | None = None  # set when recorded as a plain date (all-day)
    note: str = ""
    link: str = ""
    source: str = Field(default="cli", max_length=10)  # file | cli | api
    recorded_at: datetime = _at(nullable=False)


class Event(SQLModel, table=True):
    """Append-only log of every state change; notices and feed rebuilds read it."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_milestone", "timeline_id", "milestone_key"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _at(nullable=False)
    kind: str = Field(max_length=40)
    timeline_id: str = Field(default="", max_length=100)  # '' for subscriber events
    milestone_key: str | None = Field(default=None, max_length=100)
    revision: int | None = None
    old_at: datetime | None = _at()
    new_at: datetime | None = _at()
    detail: dict[str, Any] | None = _json()
    subscriber_id: int | None = Field(default=None, index=True)  # subscriber events only
    # What one sync, one `done`/`reopen` or one API call changed together: members get one message for it.
    change_set: str | None = Field(default=None, max_length=32)
    # Who: 'cli:USER', 'console:EMAIL', 'api', 'sync', 'mailer', 'subscriber' (docs/console.md, audit log).
    actor: str = Field(default="", max_length=120, index=True)


class SyncState(SQLModel, table=True):
    """What the last successful sync was made of: unchanged inputs need no second look."""

    __tablename__ = "sync_state"

    id: int = Field(default=1, primary_key=True)
    digest: str = Field(max_length=64)
    event_id: int | None = None  # the newest event after that sync; any later change raises it
    timelines: int = 0
    milestones: int = 0
    synced_at: datetime = _at(nullable=False)


class Subscriber(SQLModel, table=True):
    """A member who receives reminders; tokens are signed from the id and a version, never stored."""

    __tablename__ = "subscribers"
    # An erased subscriber's number stays in the delivery log and the audit: never given to someone else.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320)  # as normalised by email-validator (domain lower-cased)
    email_key: str = Field(max_length=320, unique=True)  # lower-cased: one subscription per mailbox
    name: str = ""
    language: str = Field(default="en", max_length=5)
    timezone: str = Field(default="Europe/Zurich", max_length=64)
    audiences: list[str] | None = _json()
    timelines: list[str] | None = _json()  # None: every timeline
    reminders: list[str] | None = _json()  # None: the milestones' own offsets
    digest: str = Field(default="off", max_length=10)  # off | weekly
    state: str = Field(default="pending", max_length=12)  # pending | confirmed | unsubscribed | suspended
    manage_version: int = 0  # raising a version revokes every token of that purpose
    feed_version: int = 0
    confirm_version: int = 0
    created_at: datetime = _at(nullable=False)
    confirmed_at: datetime | None = _at()
    changed_at: datetime | None = _at()


class Channel(SQLModel, table=True):
    """A named recipient that is not a person: a webhook, a Teams or a Slack channel (docs/channels.md).

    Synced from TRACKER_CHANNELS_FILE on each delivery pass. Its outbox rows name it as a subscriber
    id below every other (channels.recipient_of): planning reads it as one more reader, and the
    outbox's unique key, claims and retries serve it as they are. No personal data: a channel is
    configuration, kept out of every subscriber surface.
    """

    __tablename__ = "channels"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=60, unique=True)
    kind: str = Field(max_length=10)  # webhook | teams | slack
    language: str = Field(default="en", max_length=5)
    timezone: str = Field(default="", max_length=64)  # '': each timeline's own
    audiences: list[str] | None = _json()
    timelines: list[str] | None = _json()  # None: every timeline
    reminders: list[str] | None = _json()  # None: the milestones' own offsets
    # Where it goes: {"url" | "url_env", "secret" | "secret_env"}; an *_env names a variable read when sending.
    target: dict[str, str] | None = _json()
    state: str = Field(default="active", max_length=12)  # active | quarantined | removed
    reason: str = ""  # why it is quarantined: FILE:LINE, the field and the fix
    source: str = ""  # FILE:LINE of its table
    updated_at: datetime = _at(nullable=False)


class Delivery(SQLModel, table=True):
    """The outbox: one row per message that should exist, planned before it is sent (docs/architecture.md §3).

    The unique key makes planning idempotent: the same reminder can never be planned twice.
    `slot` tells apart the messages of one kind about one occurrence: the offset of a
    reminder ('7d'), the change set of a `changed` message (about no one milestone: its
    `lines` list them), the week of a digest. A reminder planned again for a deadline that
    moved after its first was sent names that deadline ('7d@20170224T120000Z'): one reminder
    per offset per deadline (docs/architecture.md §3).
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint(
            "subscriber_id", "timeline_id", "milestone_key", "occurrence", "kind", "slot", name="uq_delivery"
        ),
        Index("ix_deliveries_claim", "state", "attempt_at"),
        Index("ix_deliveries_milestone", "timeline_id", "milestone_key", "subscriber_id"),
        Index("ix_deliveries_done", "state", "updated_at"),  # the retention pass finds old rows through it
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(index=True)
    timeline_id: str = Field(default="", max_length=100)  # '' for confirm and digest
    milestone_key: str = Field(default="", max_length=100)
    occurrence: str = Field(default="", max_length=40)
    kind: str = Field(max_length=12)  # confirm reminder opened changed cancelled correction overdue delayed digest
    slot: str = Field(default="", max_length=40)
    state: str = Field(default="planned", max_length=12)  # planned held claimed sent failed skipped cancelled …
    send_at: datetime = _at(nullable=False)  # when it is meant to go
    attempt_at: datetime = _at(nullable=False)  # when it may next be claimed (later after a failure)
    deadline_at: datetime | None = _at()  # after this, sending is pointless: no more retries
    attempts: int = 0
    lease_until: datetime | None = _at()
    claimed_by: str | None = Field(default=None, max_length=64)
    old_at: datetime | None = _at()  # changed: the date before the first move of this notice
    new_at: datetime | None = _at()  # changed: the date after the last move
    event_id: int | None = None  # the event a notice answers (a change set's first)
    # changed: one line per milestone of the change set that concerns the subscriber, each
    # [timeline, milestone, "moved" | "cancelled" | "removed" | "restored", old_at, new_at, revision]
    # (instants as ISO text, UTC). Lists, not objects: a change set of 50 lines goes to thousands of rows.
    lines: list[list[Any]] | None = _json()
    revision: int | None = None  # reminders: the milestone's revision they were planned for (None: not checked)
    last_error: str = ""
    reply: str = ""  # the server's answer to the accepted message
    reason: str = ""  # why it was skipped or cancelled
    sent_at: datetime | None = _at()
    created_at: datetime = _at(nullable=False)
    updated_at: datetime = _at(nullable=False)


class BounceReport(SQLModel, table=True):
    """A bounce that came to the bounce address: hard, soft, or forged (a tag whose signature is wrong).

    `fingerprint` is unique: the same report processed twice is stored, and counted, once. The
    subscriber's hard and soft rows within TRACKER_BOUNCE_SUSPEND's window decide a suspension.
    """

    __tablename__ = "bounce_reports"
    __table_args__ = (
        Index("ix_bounce_reports_subscriber", "subscriber_id", "received_at"),
        Index("ix_bounce_reports_received", "received_at"),  # the delivery log's retention prunes by it
    )

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(max_length=64, unique=True)
    kind: str = Field(max_length=8)  # hard | soft | forged
    delivery_id: int | None = None
    subscriber_id: int | None = None
    status: str = Field(default="", max_length=16)  # the enhanced status code, 5.1.1
    diagnostic: str = Field(default="", max_length=300)
    received_at: datetime = _at(nullable=False)


class Erasure(SQLModel, table=True):
    """A subscriber erased on request: their number, as the delivery log and audit keep it, and a one-way reference.

    The reference is an HMAC of the normalised address with the secret key (subscribers/personal.py):
    a later request about the same address finds these rows; the address itself is not kept anywhere.
    """

    __tablename__ = "erasures"

    subscriber_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    ref: str = Field(max_length=32, index=True)
    erased_at: datetime = _at(nullable=False)


class Quarantine(SQLModel, table=True):
    """A stored subscriber or milestone that does not read: set aside with the reason while everyone else is served.

    Kept by the planner, which sees every one of them on each pass: an entry appears once (and is
    logged once) and leaves when the value reads again.
    """

    __tablename__ = "quarantine"

    what: str = Field(primary_key=True, max_length=12)  # subscriber | milestone
    key: str = Field(primary_key=True, max_length=210)  # the subscriber's id, or timeline/milestone
    reason: str = ""
    since: datetime = _at(nullable=False)


class Cursor(SQLModel, table=True):
    """How far a handler has read the events table: each event is handled once."""

    __tablename__ = "cursors"

    name: str = Field(primary_key=True, max_length=40)
    event_id: int = 0
    updated_at: datetime | None = _at()
    # The settings the work was done under ('planning': horizon, hour, escalation): others, do it all again.
    basis: str = Field(default="", max_length=200)


class User(SQLModel, table=True):
    """Someone of the secretariat who signs in to the console; there is no password to leak (docs/console.md)."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320)
    email_key: str = Field(max_length=320, unique=True)  # lower-cased: one account per mailbox
    role: str = Field(max_length=12)  # viewer | secretary | admin
    language: str = Field(default="en", max_length=5)  # of the sign-in email
    created_at: datetime = _at(nullable=False)


class SignInLink(SQLModel, table=True):
    """A one-time sign-in link: only hashes are stored, of the token and of the browser that asked for it."""

    __tablename__ = "sign_in_links"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(index=True)
    token_hash: str = Field(max_length=64, unique=True)
    salt: str = Field(max_length=64)  # with the secret key, makes the token when the email is composed
    browser_hash: str = Field(max_length=64)
    created_at: datetime = _at(nullable=False)
    expires_at: datetime = _at(nullable=False)
    used_at: datetime | None = _at()


class ConsoleSession(SQLModel, table=True):
    """A signed-in browser: the cookie carries a random id, the store its hash (revoked by a row update)."""

    __tablename__ = "console_sessions"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(index=True)
    id_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _at(nullable=False)
    seen_at: datetime = _at(nullable=False)  # idle expiry counts from here
    expires_at: datetime = _at(nullable=False)  # absolute expiry
    revoked_at: datetime | None = _at()


class ApiToken(SQLModel, table=True):
    """A personal API token: a public id to find it, the hash of the whole token; never the token (docs/console.md)."""

    __tablename__ = "api_tokens"
    # A name names one live token (revoke NAME); a revoked token's name may be given again.
    __table_args__ = (
        Index("ux_api_tokens_live_name", "name", unique=True, sqlite_where=text("revoked_at IS NULL"),
              postgresql_where=text("revoked_at IS NULL")),
    )  # fmt: skip

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(index=True)  # the owner: the token never has more than their role
    name: str = Field(max_length=60)
    public_id: str = Field(max_length=16, unique=True)  # the token's visible part, for lookup
    secret_hash: str = Field(max_length=64)  # SHA-256 of the whole token
    role: str = Field(max_length=12)
    created_at: datetime = _at(nullable=False)
    expires_at: datetime | None = _at()
    last_used_at: datetime | None = _at()  # written at most once a minute
    revoked_at: datetime | None = _at()
