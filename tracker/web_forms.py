"""The plain HTML of the subscription pages, their CSRF tokens and the bodies posted to them.

No store, no routes: web_subscriptions.py calls these. Templates are autoescaped, so what
a subscriber typed can never become markup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from jinja2 import DictLoader, Environment, StrictUndefined
from markupsafe import Markup

from tracker.dates import suggest
from tracker.models import Subscriber
from tracker.subscribers import Known, Raw, SubscriberError

FORM_TOKEN_AGE = timedelta(hours=2)
CSRF_FIELD = "csrf_token"
CSRF_COOKIE = "tracker_csrf"
MAX_BODY = 16 * 1024
SUBSCRIBE_FIELDS = ("email", "name", "language", "timezone", "audiences", "timelines", "digest", "reminders")
LIST_FIELDS = ("audiences", "timelines")
LANGUAGE_NAMES = {"ar": "العربية", "zh": "中文", "en": "English", "fr": "Français", "ru": "Русский", "es": "Español"}

_TEMPLATES = {
    "layout": """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{{ title }}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem;
 line-height: 1.5">
<h1>{{ title }}</h1>{% block body %}{{ body }}{% endblock %}</body></html>
""",
    "fields": """{% macro choices(v, known) -%}
<p><label>Name <input name="name" maxlength="200" value="{{ v.name }}"></label></p>
<p><label>Language <select name="language">{% for code, label in languages %}
<option value="{{ code }}" lang="{{ code }}"{% if v.language == code %} selected{% endif %}>{{ label }}</option>
{%- endfor %}
</select></label></p>
<p><label>Time zone <input name="timezone" value="{{ v.timezone }}" placeholder="Europe/Zurich"></label></p>
<fieldset><legend>Audiences (none ticked: membership)</legend>{% for name in known.audiences %}
<label><input type="checkbox" name="audiences" value="{{ name }}"{% if name in v.audiences %} checked{% endif %}>
 {{ name }}</label><br>{% endfor %}</fieldset>
<fieldset><legend>Timelines (none ticked: all of them)</legend>{% for name in known.timelines %}
<label><input type="checkbox" name="timelines" value="{{ name }}"{% if name in v.timelines %} checked{% endif %}>
 {{ name }}</label><br>{% endfor %}</fieldset>
<p><label>Weekly digest <select name="digest">
<option value="off"{% if v.digest != "weekly" %} selected{% endif %}>off</option>
<option value="weekly"{% if v.digest == "weekly" %} selected{% endif %}>weekly</option></select></label></p>
{%- endmacro %}
{% macro problem(error) %}{% if error %}<p role="alert" style="color: #a00">
<strong>{{ error.field or "form" }}</strong>: {{ error.message }}</p>{% endif %}{% endmacro %}""",
    "subscribe": """{% extends "layout" %}{% from "fields" import choices, problem %}{% block body %}
<p>Reminders by email before each deadline you follow. We send a confirmation email first:
nothing else arrives until you open the link in it.</p>{{ problem(error) }}
<form method="post"><input type="hidden" name="csrf_token" value="{{ csrf }}">
<p><label>Email <input type="email" name="email" required maxlength="320" value="{{ v.email }}"></label></p>
{{ choices(v, known) }}
<p><button type="submit">Subscribe</button></p></form>{% endblock %}""",
    "preferences": """{% extends "layout" %}{% from "fields" import choices, problem %}{% block body %}
<p>Settings of <strong>{{ email }}</strong> ({{ state }}).</p>
{% if notice %}<p role="status"><strong>{{ notice }}</strong></p>{% endif %}{{ problem(error) }}
<form method="post"><input type="hidden" name="csrf_token" value="{{ csrf }}">
{{ choices(v, known) }}
<p><label>Reminder offsets <input name="reminders" value="{{ v.reminders }}" placeholder="14d, 7d, 1d"></label><br>
<small>e.g. 7d, 1d or 4h before each deadline; empty: each deadline's own; none: no reminders.</small></p>
<p><button type="submit" name="action" value="save">Save</button></p></form>
<h2>Your calendar feed</h2>{% if feed %}
<p><a href="{{ feed }}">{{ feed }}</a></p>
<form method="post"><input type="hidden" name="csrf_token" value="{{ csrf }}">
<button type="submit" name="action" value="rotate-feed">Rotate my feed link</button></form>
<p><small>Rotating gives you a new link; the old one stops working at once.</small></p>
{% else %}<p>Your personal feed works once your subscription is confirmed.</p>{% endif %}
<p><a href="{{ unsubscribe }}">Unsubscribe</a></p>{% endblock %}""",
}
_ENV = Environment(loader=DictLoader(_TEMPLATES), autoescape=True, undefined=StrictUndefined)
_ENV.globals["languages"] = list(LANGUAGE_NAMES.items())  # imported macros see globals, not the render context


class FormError(Exception):
    """A request the pages refuse before looking at its fields (status and plain message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def render(name: str, **context: Any) -> str:
    return _ENV.get_template(name).render(**context)


def render_page(title: str, body: str) -> str:
    """A page around *body*, HTML its caller has already escaped."""
    return render("layout", title=title, body=Markup(body))  # trusted: callers escape what they insert


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
        raise FormError(400, "The form could not be read.") from None
    return {k: v if k in LIST_FIELDS else v[0] for k, v in pairs.items()}


def json_fields(body: bytes) -> Raw:
    """The fields of a JSON subscription request; raise SubscriberError naming an unknown one."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise SubscriberError(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SubscriberError("the body must be a JSON object")
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
