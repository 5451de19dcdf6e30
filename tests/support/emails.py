"""Email requests as the scheduler makes them for the seed's drafting timeline, and how a reader decodes a header."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from typing import Any

from tests.support import factories
from tests.support.factories import REPO
from tracker.emails import ChangeLine, EmailRequest, Kind, Recipient, Sender
from tracker.subscribers.links import Links
from tracker.timelines.views import CompletionView, MilestoneView, Occurrence, list_upcoming

TEMPLATES = REPO / "templates" / "emails"
LOCALES = REPO / "locale"
SNAPSHOTS = REPO / "tests" / "snapshots" / "emails"
BASE = "https://tracker.example.org"
SENDER = Sender("WSIS deadlines <tracker@tracker.example.org>", BASE, "<deadlines.tracker.example.org>")
NOW = datetime(2017, 3, 3, 8, 0, tzinfo=UTC)  # 09:00 in Geneva, 7 days before the comments are due
HLPF = "ITU Council contribution to HLPF-17"
# The seed's chair and vice-chairs, each in a language and zone of their own.
PEOPLE = {
    "en": ("janet.umutesi@example.org", "Ms Janet Umutesi", "Africa/Kigali"),
    "fr": ("ghislain.de-salins@example.org", "M. Ghislain de Salins", "Europe/Paris"),
    "ar": ("mansour.alqurashi@example.org", "السيد منصور القرشي", "Asia/Riyadh"),
    "zh": ("cai.guolei@example.org", "蔡国磊先生", "Asia/Shanghai"),
    "ru": ("vladimir.minkin@example.org", "Профессор Владимир Минкин", "Europe/Moscow"),
    "es": ("clarisa.estol@example.org", "Sra. Clarisa Estol", "America/Argentina/Buenos_Aires"),
}
SHOWN = ("en", "fr", "ar", "zh")  # the languages whose messages are checked part by part


def make_view(**overrides: Any) -> MilestoneView:
    defaults = {
        "timeline_id": "hlpf-2017",
        "timeline_title": HLPF,
        "reminders": ("14d", "7d", "1d"),
        "summary": "Comments on the revised draft, for the secretariat to consolidate into the final text.",
        "url": "https://www.itu.int/en/council/cwg-wsis",
        "revision": 2,
        "updated_at": datetime(2017, 2, 23, 15, 0, tzinfo=UTC),
        "timeline_kind": "drafting",
        "opens_after": "revised-draft",
    }
    return factories.make_view(**{**defaults, **overrides})


DRAFT = make_view(
    key="revised-draft",
    title="Revised draft posted",
    owner="secretariat",
    due_at=datetime(2017, 2, 24, 22, 59, 59, tzinfo=UTC),
    summary="",
    url="",
    opens_after=None,
    completions={
        "": CompletionView(
            datetime(2017, 2, 23, 14, 30, tzinfo=UTC),
            "Posted as document WG-WSIS-30/5.",
            "https://www.itu.int/md/S17-CWGWSIS30-C-0005",
        )
    },
)
SUBMISSION = make_view(
    key="submission",
    title="Final text submitted to the UN",
    owner="secretariat",
    all_day=False,
    due_at=datetime(2017, 4, 28, 10, 0, tzinfo=UTC),  # 12:00 in Geneva
    summary="",
    opens_after=None,
)
SIDE_EVENT = make_view(
    timeline_id="hlpf-side-events",
    timeline_title="Side events at HLPF 2017",
    key="itu-side-event",
    title="ITU side event: ICTs for the SDGs",
    kind="span",
    owner=None,
    all_day=False,
    zone="America/New_York",
    due_at=None,
    starts_at=datetime(2017, 7, 12, 17, 15, tzinfo=UTC),  # 13:15 in New York
    ends_at=datetime(2017, 7, 12, 18, 30, tzinfo=UTC),
    audiences=("member-states", "sector-members"),
    location="United Nations Headquarters, Conference Room 6",
    status="cancelled",
    summary="",
    url="",
    opens_after=None,
)
MEETING = make_view(
    timeline_id="cwg-wsis-32",
    timeline_title="32nd meeting of the Council Working Group on WSIS",
    key="meeting",
    title="CWG-WSIS-32, Geneva",
    kind="span",
    owner=None,
    due_at=None,
    starts_at=datetime(2018, 1, 23, 23, 0, tzinfo=UTC),
    ends_at=datetime(2018, 1, 25, 22, 59, 59, tzinfo=UTC),
    audiences=(),
    location="Geneva",
    summary="",
    url="",
    opens_after=None,
)


def changed_lines() -> tuple[ChangeLine, ...]:
    """The lines of a changed message: two milestones of one timeline moved a week later, in date order."""
    week = timedelta(days=7)
    comments = make_view()
    return (
        ChangeLine(comments, "moved", comments.main_at - week, comments.main_at),
        ChangeLine(SUBMISSION, "moved", SUBMISSION.main_at - week, SUBMISSION.main_at),
    )


def links(token: str = "tok") -> Links:
    return Links(
        unsubscribe=f"{BASE}/unsubscribe/{token}",
        unsubscribe_mailto=f"mailto:unsubscribe@tracker.example.org?subject=unsubscribe%20{token}",
        preferences=f"{BASE}/preferences/{token}",
        feed=f"{BASE}/feeds/me/{token}.ics",
        confirm=f"{BASE}/confirm/{token}",
    )


def recipient(language: str) -> Recipient:
    address, name, zone = PEOPLE.get(language, PEOPLE["en"])
    return Recipient(address, name, language, zone)


def digest_items() -> list[Occurrence]:
    views = [DRAFT, make_view(), SUBMISSION, MEETING]
    return list_upcoming(views, now=datetime(2017, 2, 20, 8, 0, tzinfo=UTC), window=timedelta(weeks=10))


def make_request(kind: Kind, language: str = "en", **overrides: Any) -> EmailRequest:
    """A request of each kind as the scheduler would make it for the seed's drafting timeline."""
    values: dict[str, Any] = {
        "kind": kind,
        "recipient": recipient(language),
        "links": links(),
        "key": f"{kind}:42:hlpf-2017/member-comments:{language}",
        "now": NOW,
    }
    if kind == "confirm":
        values["subscribed_to"] = (HLPF, "32nd meeting of the Council Working Group on WSIS")
    elif kind == "digest":
        values["digest"] = digest_items()
    elif kind == "sign-in":
        values["links"] = replace(links(), confirm=f"{BASE}/console/sign-in/tok")
        values["offset"] = "15"
    elif kind == "cancelled":
        values["view"] = SIDE_EVENT
    else:
        values["view"] = make_view()
    if kind == "reminder":
        values["offset"] = "7d"
    elif kind == "changed":
        values["view"] = None  # a change set: the comments and the submission both moved a week later
        values["changes"] = changed_lines()
    elif kind == "opened":
        values["predecessor"] = DRAFT
    elif kind == "overdue":  # the revised draft, due 24 February, still not posted a week later
        values["view"] = replace(DRAFT, completions={})
        values["due_at"] = DRAFT.due_at
    elif kind == "delayed":
        values["predecessor"] = replace(DRAFT, completions={})
    elif kind == "correction":
        values["predecessor"] = DRAFT
        values["note"] = "Recorded by mistake: the revised draft is still with the editors."
    values.update(overrides)
    return EmailRequest(**values)


def decoded(raw: str) -> str:
    """Read an unstructured value as RFC 2047 says: encoded words decoded, the space between two dropped."""
    return str(make_header(decode_header(raw)))


def display_name(raw_to: str) -> str:
    """Return the display name of a raw To value: a quoted string, atoms, or encoded words."""
    if not raw_to.endswith(">"):
        return ""
    phrase = raw_to[: raw_to.rindex(" <")]
    if phrase.startswith('"'):
        return re.sub(r"\\(.)", r"\1", phrase[1:-1])
    return decoded(phrase)
