"""The channels file (TRACKER_CHANNELS_FILE, `channels.toml`) read and checked, each problem at its FILE:LINE.

One table per channel, `[channels.NAME]`. A channel that does not read is left out with its
problems, and the others are kept: one typo never silences every channel. tomllib gives no line
numbers, so each table's and each field's line is found in the text (TOML allows a table header
and a `key =` line to be found by their first characters).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tracker.text import LANGUAGES, describe_text, find_refused
from tracker.timelines.dates import DateError, get_zone, parse_reminder
from tracker.timelines.files import FileProblem

KINDS = ("webhook", "teams", "slack")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,59}")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,99}")
FIELDS = frozenset({"kind", "url", "url_env", "secret", "secret_env", "language", "timezone", "audiences",
                    "timelines", "reminders"})  # fmt: skip
MIN_SECRET = 16  # characters: a webhook secret shorter than this could be guessed
MAX_URL = 2000
MAX_FILE = 1_000_000  # bytes: a channels file is a few tables
MAX_NAMES = 200


@dataclass(frozen=True)
class ChannelSpec:
    """One channel as the file gives it, checked."""

    name: str
    kind: str
    language: str = "en"
    timezone: str = ""  # the clock its dates are also shown on; '': each timeline's own
    audiences: tuple[str, ...] = ()
    timelines: tuple[str, ...] | None = None  # None: every timeline
    reminders: tuple[str, ...] | None = None  # None: the milestones' own offsets
    target: Mapping[str, str] = field(default_factory=dict)  # url | url_env, secret | secret_env
    source: str = ""  # FILE:LINE of its table


@dataclass
class ChannelsFile:
    """What a channels file holds: the channels that read, those that do not (by name), and every problem."""

    channels: list[ChannelSpec] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)  # name → FILE:LINE: the first problem
    problems: list[FileProblem] = field(default_factory=list)
    readable: bool = True  # False: the file could not be read at all; the store's channels stay as they are


def read_channels(path: Path, environ: Mapping[str, str] | None = None) -> ChannelsFile:
    """Read and check the channels file at *path*; an absent file is no channels.

    *environ*: where `url_env` and `secret_env` are looked up (os.environ); given EVERYWHERE
    (`tracker validate`, in CI, where the secrets are not), any variable counts as set.
    """
    environ = os.environ if environ is None else environ
    if not path.exists():
        return ChannelsFile()
    try:
        data = path.read_bytes()[: MAX_FILE + 1]
        if len(data) > MAX_FILE:
            raise ValueError(f"larger than {MAX_FILE} bytes; a channels file lists a few channels")
        text = data.decode("utf-8")
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = int(found.group(1)) if (found := re.search(r"line (\d+)", str(exc))) else 1
        problem = FileProblem(str(path), line, f"not valid TOML: {describe_text(str(exc))}; fix the syntax there")
        return ChannelsFile(problems=[problem], readable=False)
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        return ChannelsFile(problems=[FileProblem(str(path), 1, f"cannot read: {describe_text(str(exc))}")],
                            readable=False)  # fmt: skip
    return check_document(path, text, document, environ)


def check_document(path: Path, text: str, document: dict[str, Any], environ: Mapping[str, str]) -> ChannelsFile:
    lines = Lines(str(path), text)
    found = ChannelsFile()
    # A file whose top level is wrong ([channel.x] for [channels.x]) says nothing sure about any channel:
    # read as one that could not be read, so that a typo does not remove every channel stored.
    for key in document:
        if key != "channels":
            found.problems.append(lines.problem(None, key, f"unknown key {key!r}: a channels file has "
                                                           "only [channels.NAME] tables"))  # fmt: skip
            found.readable = False
    tables = document.get("channels", {})
    if not isinstance(tables, dict):
        found.problems.append(lines.problem(None, "channels", "'channels' must be tables: [channels.NAME]"))
        found.readable = False
        return found
    for name, table in tables.items():
        spec, problems = check_channel(name, table, lines, environ)
        problems.sort(key=lambda problem: problem.line)
        found.problems += problems
        if spec is not None:
            found.channels.append(spec)
        elif NAME.fullmatch(name):
            found.bad[name] = str(problems[0])
    found.problems.sort(key=lambda problem: problem.line)
    return found


class Lines:
    """Where a table and its fields are in the file's text."""

    def __init__(self, path: str, text: str) -> None:
        self.path, self.lines = path, text.splitlines()

    def table(self, name: str) -> int:
        pattern = re.compile(rf"""\s*\[\s*channels\s*\.\s*(["']?){re.escape(name)}\1\s*\]""")
        return next((i for i, line in enumerate(self.lines, 1) if pattern.match(line)), 1)

    def field(self, name: str | None, key: str) -> int:
        start = self.table(name) if name is not None else 1
        pattern = re.compile(rf"""\s*(["']?){re.escape(key)}\1\s*=""")
        for number in range(start, len(self.lines) + 1):
            line = self.lines[number - 1]
            if number > start and name is not None and line.lstrip().startswith("["):
                break  # the next table
            if pattern.match(line) or (name is None and line.lstrip().startswith(f"[{key}")):
                return number
        return start

    def problem(self, name: str | None, key: str | None, message: str) -> FileProblem:
        line = self.table(name or "") if key is None else self.field(name, key)
        return FileProblem(self.path, line, message)


def check_channel(
    name: str, table: object, lines: Lines, environ: Mapping[str, str]
) -> tuple[ChannelSpec | None, list[FileProblem]]:
    """One channel's table checked: the spec, or None and why (each problem names the field and the fix)."""
    if not NAME.fullmatch(name):
        shown = describe_text(repr(name))[:80]
        return None, [lines.problem(name, None, f"channel name {shown}: use 1-60 lowercase letters, digits, "
                                                "'-' or '_', starting with a letter or digit")]  # fmt: skip
    if not isinstance(table, dict):
        return None, [lines.problem(name, None, f"channel {name!r} must be a table: [channels.{name}]")]
    check = Check(name, table, lines)
    for key in table:
        if key not in FIELDS:
            check.fail(key, f"unknown field {describe_text(repr(key))[:60]}; known: {', '.join(sorted(FIELDS))}")
    kind = check.choice("kind", KINDS, None)
    language = check.choice("language", LANGUAGES, "en")
    zone = check.zone()
    audiences = check.names("audiences", required=True)
    timelines = check.names("timelines", required=False)
    reminders = check.offsets()
    target = check.target(kind, environ)
    if check.problems or kind is None:
        return None, check.problems
    spec = ChannelSpec(name, kind, language or "en", zone, audiences or (), timelines, reminders, target,
                       f"{lines.path}:{lines.table(name)}")  # fmt: skip
    return spec, []


class Check:
    """The fields of one channel's table, each checked, problems collected."""

    def __init__(self, name: str, table: dict[str, Any], lines: Lines) -> None:
        self.name, self.table, self.lines = name, table, lines
        self.problems: list[FileProblem] = []

    def fail(self, key: str | None, message: str) -> None:
        self.problems.append(self.lines.problem(self.name, key, f"channel {self.name!r}: {message}"))

    def text(self, key: str, longest: int) -> str | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"{key} must be a non-empty string")
            return None
        if len(value) > longest or find_refused(value):
            self.fail(key, f"{key} must be one line of at most {longest} printable characters")
            return None
        return value.strip()

    def choice(self, key: str, allowed: tuple[str, ...], default: str | None) -> str | None:
        value = self.text(key, 20)
        if value is None:
            if default is None and key not in self.table:
                self.fail(None, f'{key} is missing: add {key} = "{allowed[0]}" (one of {", ".join(allowed)})')
            return default
        if value not in allowed:
            self.fail(key, f"{key} {describe_text(repr(value))} is not one of {', '.join(allowed)}")
            return default
        return value

    def zone(self) -> str:
        value = self.text("timezone", 64)
        if value is None:
            return ""  # each timeline's own: no second clock in the message
        try:
            get_zone(value)
        except DateError as exc:
            self.fail("timezone", f"timezone: {describe_text(str(exc))}; use an IANA name such as Europe/Zurich")
            return ""
        return value

    def names(self, key: str, *, required: bool) -> tuple[str, ...] | None:
        value = self.table.get(key)
        if value is None:
            if required:
                self.fail(None, f'{key} is missing: add {key} = ["..."], the {key} whose items it is told of')
            return None
        good = isinstance(value, list) and 0 < len(value) <= MAX_NAMES
        if not good or not all(isinstance(v, str) and v.strip() and len(v) <= 100 and not find_refused(v)
                               for v in value):  # fmt: skip
            self.fail(key, f'{key} must be a list of 1-{MAX_NAMES} names, such as ["member-states"]')
            return None
        return tuple(v.strip() for v in value)

    def offsets(self) -> tuple[str, ...] | None:
        value = self.table.get("reminders")
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 20:
            self.fail("reminders", 'reminders must be a list of offsets, such as ["7d", "1d"]')
            return None
        for offset in value:
            try:
                parse_reminder(offset)
            except DateError as exc:
                self.fail("reminders", f"reminders: {describe_text(str(exc))}")
                return None
        return tuple(value)

    def target(self, kind: str | None, environ: Mapping[str, str]) -> dict[str, str]:
        """Where it posts, and the webhook's secret: each given in the file or by an environment variable's name."""
        target: dict[str, str] = {}
        url = self.secret_or_env("url", environ, target, required=True)
        if url is not None:
            self.check_url(url, "url_env" if "url_env" in target else "url")
        secret = self.secret_or_env("secret", environ, target, required=kind == "webhook")
        if kind != "webhook" and ("secret" in target or "secret_env" in target):
            self.fail("secret" if "secret" in self.table else "secret_env",
                      f"a {kind} channel is not signed: remove the secret (only a webhook has one)")  # fmt: skip
        elif secret is not None and len(secret) < MIN_SECRET:
            self.fail("secret" if "secret" in self.table else "secret_env",
                      f"the secret is shorter than {MIN_SECRET} characters: use a long random one, "
                      "such as `python -c 'import secrets; print(secrets.token_hex(32))'`")  # fmt: skip
        return target

    def secret_or_env(
        self, key: str, environ: Mapping[str, str], target: dict[str, str], *, required: bool
    ) -> str | None:
        given, by_name = key in self.table, f"{key}_env" in self.table
        if given and by_name:
            self.fail(f"{key}_env", f"give {key} or {key}_env, not both")
            return None
        if by_name:
            variable = self.text(f"{key}_env", 100)
            if variable is None or not ENV_NAME.fullmatch(variable):
                if variable is not None:
                    example = f"TRACKER_HOOK_{key.upper()}"
                    self.fail(f"{key}_env", f"{key}_env must name an environment variable, such as {example}")
                return None
            target[f"{key}_env"] = variable
            if environ is EVERYWHERE:
                return None  # its value is not known here: only the name is checked
            value = environ.get(variable, "").strip()
            if not value:
                self.fail(f"{key}_env", f"the environment variable {variable} is not set: set it where Tracker runs")
                return None
            return value
        if given:
            text = self.text(key, MAX_URL)
            if text is not None:
                target[key] = text
            return text
        if required:
            self.fail(None, f'{key} is missing: add {key} = "..." or {key}_env = "NAME_OF_A_VARIABLE"')
        return None

    def check_url(self, url: str, key: str) -> None:
        problem = url_problem(url)
        if problem:
            self.fail(key, problem)


def url_problem(url: str) -> str:
    """What is wrong with a channel's URL ('' if nothing): https, or http to this machine (a receiver beside
    Tracker, or a test); a host that reads; never credentials in it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # a port that does not read raises here
    except ValueError:
        return "the URL does not read: give an https:// URL"
    if parts.scheme not in ("https", "http") or not host:
        return "the URL must start with https:// and name a host"
    try:
        host.encode("idna")  # what the HTTP client will do: an empty label, or one too long, cannot be posted to
    except UnicodeError:
        return "the URL's host name does not read: check its spelling"
    if parts.scheme == "http" and not loopback(host):
        return "the URL must use https:// (plain http only to this machine, 127.0.0.1 or localhost)"
    if parts.username or parts.password:
        return "the URL carries a user or password: the webhook's secret signs instead"
    return ""


class _Everywhere(dict[str, str]):
    """Environment variables as `tracker validate` sees them: each one set, its value unknown."""


EVERYWHERE: Mapping[str, str] = _Everywhere()


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unset_variables(target: Mapping[str, str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The environment variables a target names that are not set (here)."""
    environ = os.environ if environ is None else environ
    names = (target.get(f"{key}_env") for key in ("url", "secret"))
    return [name for name in names if name is not None and not environ.get(name, "").strip()]


def resolve_target(target: Mapping[str, str], environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The URL and secret ('' for none) a stored target names; raise LookupError if a variable is unset or
    its value would not do (checked here, as `tracker validate` and the store know only the variable's name)."""
    environ = os.environ if environ is None else environ
    found = []
    for key in ("url", "secret"):
        variable = target.get(f"{key}_env")
        if variable is None:
            found.append(target.get(key, ""))
            continue
        value = environ.get(variable, "").strip()
        if not value:
            raise LookupError(f"the environment variable {variable} is not set where Tracker sends")
        problem = url_problem(value) if key == "url" else short_secret(value)
        if problem:
            raise LookupError(f"the environment variable {variable}: {problem}")
        found.append(value)
    return found[0], found[1]


def short_secret(secret: str) -> str:
    return f"the secret is shorter than {MIN_SECRET} characters" if len(secret) < MIN_SECRET else ""
