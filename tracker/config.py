"""Settings from `TRACKER_*` environment variables and an optional `tracker.toml`."""

from __future__ import annotations

import logging
import re
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from tracker.text import CONTROLS
from tracker.timelines.dates import DateError, get_zone, parse_reminder
from tracker.timelines.workdays import (
    WorkCalendar,
    WorkdayError,
    read_calendar,
    read_closures,
    read_holidays,
    read_weekend,
)
from tracker.timelines.zones import zone_warning

if TYPE_CHECKING:
    from tracker.mail.signing import Signer

MAX_DEFAULT_REMINDERS = 10  # offsets in TRACKER_REMINDERS, as in a timeline file


def shipped(name: str) -> Path:
    """The templates/ or locale/ folder Tracker comes with, wherever it runs from.

    An installed wheel carries it inside the package (setup.py copies it to tracker/_data/); an
    editable install or a checkout has it at the top of the repository, beside the package.
    """
    package = Path(__file__).resolve().parent
    installed = package / "_data" / name
    return installed if installed.is_dir() else package.parent / name


HOST_NAME = re.compile(r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")


class Settings(BaseSettings):
    """Every knob of Tracker; read by the entry points, and by the pages for their templates (see get_settings)."""

    model_config = SettingsConfigDict(env_prefix="TRACKER_", toml_file="tracker.toml", extra="ignore")

    database_url: str = "sqlite:///var/tracker.db"
    schedules: Path = Path("schedules")
    # Webhooks, Teams and Slack channels (docs/channels.md); None: channels.toml beside the schedules folder.
    channels_file: Path | None = None
    smtp_url: str = ""
    outbox_dir: Path = Path("var/outbox")
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # `from` is a Python keyword: the variable is TRACKER_FROM, the tracker.toml key `from`.
    from_address: str = Field(
        default="Tracker <tracker@localhost>", validation_alias=AliasChoices("TRACKER_FROM", "from")
    )
    timezone: str = "Europe/Zurich"
    # The working days of every timeline that does not declare its own (docs/timelines.md, "Working days").
    weekend: str = "sat,sun"
    holidays: str = ""  # public holidays of a place known to the `holidays` package: CH, or CH-GE for Geneva
    closures: str = ""  # the organisation's own closed days: 2026-12-24,2026-12-31
    reminder_hour: int = Field(default=9, ge=0, le=23)
    reminders: str = "14d,7d,1d"
    # A step past due and not done is late; after this many days (or once a later step of its
    # timeline is done or past) it is missed: no more escalation, shown apart (docs/architecture.md §6).
    late_days: int = Field(default=30, ge=1, le=366)
    # A late step's owner gets an `overdue` notice at the first reminder hour after it, then after each of
    # these; empty: no overdue notices.
    overdue: str = "1d,3d"
    admin_token: str = ""  # deprecated: personal tokens (`tracker users token add`) replace it; one more release
    metrics_token: str = ""  # bearer token for /metrics; empty: /metrics answers 404
    # Seconds a client may take to send a request's head, and again its body: a client that
    # trickles a byte at a time holds a connection no longer than this.
    request_timeout: float = Field(default=20.0, gt=0, le=600)
    secret_key: str = ""  # signs link tokens; empty: generated into secret_key_file on first use
    secret_key_file: Path = Path("var/secret_key")
    # Templates of the operator's own, laid out as the shipped ones (emails/KIND.txt.j2, pages/NAME.html.j2):
    # one found there wins, every other is the shipped one. None: the shipped templates only.
    templates: Path | None = None
    locales: Path = Field(default_factory=lambda: shipped("locale"))  # LANG/LC_MESSAGES/messages.po
    smtp_connections: int = Field(default=4, ge=1)
    smtp_rate: float | None = None
    # A pass with more rows due renders ahead in a helper process, on another core; 0: never.
    # Below about this many rows, starting a process costs more than it saves.
    render_helper_after: int = Field(default=2000, ge=0)
    cancelled_grace_days: int = Field(default=30, ge=0)  # how long feeds keep cancelled items
    # POST /subscribe per client (IP address, or IPv6 /64) in any subscribe_window seconds; per address,
    # confirmation emails have their own limit in the outbox.
    subscribe_limit: int = Field(default=20, ge=1)
    subscribe_window: int = Field(default=600, ge=1)
    # The console (docs/console.md): a sign-in link works once for this many minutes; a session ends after
    # this long without a request, and this many hours after signing in, whatever happens.
    console_link_minutes: int = Field(default=15, ge=1, le=60)
    console_idle_minutes: int = Field(default=120, ge=1, le=24 * 60)
    console_session_hours: int = Field(default=12, ge=1, le=24 * 7)
    # Sign-in requests in any console_sign_in_window seconds: per address (whoever asks), and per client.
    console_address_limit: int = Field(default=3, ge=1)
    console_client_limit: int = Field(default=10, ge=1)
    console_sign_in_window: int = Field(default=900, ge=1)
    # Single sign-on through OpenID Connect (docs/console.md, "Single sign-on"); no issuer: links only.
    oidc_issuer: str = ""  # https://login.example.org/realms/un: discovery at ISSUER/.well-known/openid-configuration
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_name: str = ""  # the button says "Sign in with NAME"; empty: the issuer's host
    # A claim listing the person's groups or roles, and which of them give which console role:
    # 'tracker-admins:admin,tracker-viewers:viewer'. No claim: the email must be a user's (`tracker users add`).
    oidc_role_claim: str = ""
    oidc_roles: str = ""
    # Refused API tokens per client (IP address, or IPv6 /64) in any api_token_window seconds; then 429.
    api_token_failures: int = Field(default=10, ge=1)
    api_token_window: int = Field(default=900, ge=1)
    # DKIM (README, "Signing mail (DKIM)"): a key file and a selector sign every message; empty: none signed.
    dkim_key_file: Path | None = None  # PEM RSA private key, unencrypted
    dkim_selector: str = ""  # the key's DNS record is SELECTOR._domainkey.DOMAIN
    dkim_domain: str = ""  # empty: the From address's domain
    # Bounces (README, "Bounces"): each message's envelope sender is this address tagged with its signed delivery id.
    bounce_address: str = ""  # bounces@example.org; empty: the From address, untagged
    bounce_suspend: str = "1 hard or 5 soft in 30 days"  # see tracker/bounces/policy.py
    bounce_listen_host: str = "127.0.0.1"  # `tracker bounces listen`
    bounce_listen_port: int = Field(default=2525, ge=1, le=65535)
    # The name the listener greets with: never the host's own, which Postfix on the same host refuses as a loop.
    bounce_listen_name: str = "tracker-bounces.invalid"
    bounce_max_size: int = Field(default=1_000_000, ge=10_000, le=50_000_000)  # bytes a bounce may have
    bounce_imap_url: str = Field(default="", repr=False)  # `tracker bounces poll`: imaps://USER:PASS@HOST/FOLDER
    # The delivery engine (docs/architecture.md §3–4).
    retry_base: float = Field(default=60.0, gt=0)  # seconds before the first retry; doubles each time
    retry_max: float = Field(default=3600.0, gt=0)  # the longest wait between two attempts
    lease: float = Field(default=30.0, gt=0)  # seconds a claimed row is held before another instance may take it
    sweep: float = Field(default=2.0, gt=0)  # seconds between looks for work other instances planned
    # Reminders are planned this far ahead, then re-planned; a year at most (offsets are at most 366 days).
    horizon_days: int = Field(default=35, ge=1, le=366)
    suspend_after: int = Field(default=3, ge=1)  # consecutive rejections that suspend an address
    # Sent, failed, skipped and cancelled outbox rows older than this many days are deleted; 0: kept forever.
    delivery_log_days: int = Field(default=365, ge=0, le=36500)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            get_zone(value)
        except DateError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("weekend", "holidays", "closures")
    @classmethod
    def _calendar(cls, value: str, info: ValidationInfo) -> str:
        # Each read apart, so that an error is told under its own setting's name, not all under 'closures'.
        read = {"weekend": read_weekend, "holidays": read_holidays, "closures": read_closures}[str(info.field_name)]
        try:
            read(value)
        except WorkdayError as exc:
            raise ValueError(str(exc)) from None
        return value

    def work_calendar(self) -> WorkCalendar:
        return read_calendar(self.weekend, self.holidays, self.closures)

    @field_validator("templates", "dkim_key_file", "channels_file", mode="before")
    @classmethod
    def _unset(cls, value: object) -> object:
        return None if value == "" else value  # TRACKER_TEMPLATES= (empty): no overrides

    @field_validator("templates")
    @classmethod
    def _overrides(cls, value: Path | None) -> Path | None:
        # Refused rather than ignored: a template the operator believes in use must be the one sent.
        if value is None:
            return value
        if not value.is_dir():
            raise ValueError(f"{value} is not a folder (it holds emails/ and pages/ with the templates to override)")
        loose = sorted(path.name for path in value.glob("*.j2"))
        if loose:
            raise ValueError(
                f"{', '.join(loose)} directly in {value}: email templates go in {value / 'emails'}, "
                f"page templates in {value / 'pages'}, named as the shipped ones"
            )
        return value

    @field_validator("from_address", "base_url")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # Both reach headers (From; List-Id and List-Unsubscribe): refused here, not cleaned there unnoticed.
        if CONTROLS.search(value):
            raise ValueError("must be one line of plain text: no line break, tab or other control character")
        return value

    @field_validator("from_address")
    @classmethod
    def _mailbox(cls, value: str) -> str:
        address = parseaddr(value)[1]
        local, at, domain = address.rpartition("@")
        if not (local and at and domain and local.isascii()) or "=?" in value:
            raise ValueError(
                "must be a name and an ASCII address in plain text, e.g. 'WSIS deadlines <tracker@example.org>' "
                "(Tracker encodes the name itself)"
            )
        return value

    @field_validator("bounce_address")
    @classmethod
    def _bounce_address(cls, value: str) -> str:
        from tracker.mail.verp import check_bounce_address

        return check_bounce_address(value) if value.strip() else ""

    @field_validator("bounce_listen_name")
    @classmethod
    def _bounce_listen_name(cls, value: str) -> str:
        name = value.strip().lower()
        if not HOST_NAME.fullmatch(name):
            raise ValueError(
                f"TRACKER_BOUNCE_LISTEN_NAME must be a host name such as tracker-bounces.invalid "
                f"(letters, digits, '-', '.'; at most 253), not {value[:100]!r}"
            )
        return name

    @field_validator("bounce_imap_url")
    @classmethod
    def _bounce_imap_url(cls, value: str) -> str:
        from tracker.bounces.mailbox import parse_imap_url

        if value.strip():
            parse_imap_url(value)
        return value.strip()

    @field_validator("bounce_suspend")
    @classmethod
    def _bounce_suspend(cls, value: str) -> str:
        from tracker.bounces.policy import parse_suspend_policy

        parse_suspend_policy(value)
        return value.strip()

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        if not value.strip():
            return value  # no relay: mail is written to TRACKER_OUTBOX_DIR
        # Here, not at the top: the mailer imports aiosmtplib, which most commands never need.
        from tracker.mail.smtp import parse_smtp_url

        try:
            parse_smtp_url(value.strip())
        except ValueError as exc:
            # The message may quote the URL: its password is not for the screen or a log.
            reason = str(exc).replace(repr(value.strip()), repr(without_password(value.strip())))
            raise ValueError(f"{reason}; write smtp://user:pass@host:port[?starttls=true] or smtps://…") from None
        return value

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        from tracker.accounts.oidc import check_issuer  # here: only the console reads it

        return check_issuer(value.strip())

    @field_validator("oidc_roles")
    @classmethod
    def _role_map(cls, value: str) -> str:
        from tracker.accounts.oidc import parse_role_map

        parse_role_map(value)
        return value

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.oidc_issuer and not self.oidc_client_id.strip():
            raise ValueError("TRACKER_OIDC_ISSUER is set but TRACKER_OIDC_CLIENT_ID is empty: set both, or neither")
        if bool(self.oidc_role_claim.strip()) != bool(self.oidc_roles.strip()):
            raise ValueError("set TRACKER_OIDC_ROLE_CLAIM and TRACKER_OIDC_ROLES together (the claim, and its mapping)")
        return self

    @model_validator(mode="after")
    def _dkim(self) -> Settings:
        # Checked at the start, key read and tried: a key that cannot sign must stop it, not every message.
        if self.dkim_key_file is None and not self.dkim_selector.strip() and not self.dkim_domain.strip():
            return self
        if self.dkim_key_file is None or not self.dkim_selector.strip():
            raise ValueError(
                "DKIM: set TRACKER_DKIM_KEY_FILE and TRACKER_DKIM_SELECTOR together (and TRACKER_DKIM_DOMAIN if "
                "it is not the From address's domain), or none of them to send unsigned"
            )
        self.dkim_signer()
        return self

    def dkim_signer(self) -> Signer | None:
        """Return the DKIM signer of these settings, or None when mail goes unsigned; raise ValueError if unusable."""
        if self.dkim_key_file is None:
            return None
        from tracker.mail.signing import SigningError, aligned, load_signer  # dkimpy: imported only to sign

        from_domain = parseaddr(self.from_address)[1].rpartition("@")[2]
        domain = self.dkim_domain.strip().lower().rstrip(".") or from_domain.lower()
        if not aligned(domain, from_domain):
            raise SigningError(
                f"TRACKER_DKIM_DOMAIN {domain!r} does not align with the From address's domain {from_domain!r}: "
                "receivers would not count the signature for it (DMARC); set it to that domain or a parent of it, "
                "or leave it empty"
            )
        return load_signer(self.dkim_key_file, self.dkim_selector.strip(), domain)

    @field_validator("reminders", "overdue")
    @classmethod
    def _offsets(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if len(parts) > MAX_DEFAULT_REMINDERS:
            raise ValueError(f"at most {MAX_DEFAULT_REMINDERS} offsets, as in a timeline file")
        for part in parts:
            try:
                parse_reminder(part)  # what a timeline file may say, and a subscriber
            except DateError as exc:
                raise ValueError(str(exc)) from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def default_reminders(self) -> list[str]:
        return [p.strip() for p in self.reminders.split(",") if p.strip()]

    @property
    def overdue_offsets(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.overdue.split(",") if p.strip())

    @property
    def channels_path(self) -> Path:
        """The channels file: TRACKER_CHANNELS_FILE, else channels.toml beside the schedules folder (absent: none)."""
        return self.channels_file or self.schedules.parent / "channels.toml"

    def template_folders(self, kind: Literal["emails", "pages"]) -> list[Path]:
        """Where *kind*'s templates are looked for, the first found winning: the overrides, then the shipped."""
        own = [self.templates / kind] if self.templates is not None else []
        return [*own, shipped("templates") / kind]


def without_password(url: str) -> str:
    """*url* with any password in it replaced by ***."""
    scheme, found, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not (found and at and ":" in userinfo):
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    settings = Settings()
    zone = zone_warning(settings.timezone)
    if zone is not None:  # it works, but its clock is not the one people there read in summer
        logging.getLogger(__name__).warning("TRACKER_TIMEZONE: %s", zone)
    ignored = ignored_templates(settings, Path.cwd())
    if ignored is not None:  # earlier versions used it: say so rather than drop an organisation's wording unseen
        logging.getLogger(__name__).warning(
            "%s is not used: Tracker uses its own templates unless TRACKER_TEMPLATES names a folder of overrides "
            "(set TRACKER_TEMPLATES=%s to use it)",
            ignored,
            ignored,
        )
    return settings


def ignored_templates(settings: Settings, folder: Path) -> Path | None:
    """*folder*/templates if it holds templates this process will not use (no TRACKER_TEMPLATES), else None."""
    found = folder / "templates"
    if settings.templates is not None or not found.is_dir() or not any(found.glob("*/*.j2")):
        return None
    return None if found.resolve() == shipped("templates").resolve() else found
