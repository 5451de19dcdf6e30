"""Draw one timeline as an SVG picture: pure, `now` passed in, the same text for the same input.

Rows top to bottom, one per milestone, under a month axis: a deadline is a diamond, a span a
bar, a repeating milestone shows its occurrences in the visible range. A relative date is a
dashed connector from the milestone it counts from, worded ("30 days before the meeting").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

from tracker.dates import Absolute, DateError, get_zone, parse_expr
from tracker.planning import MilestoneView, Occurrence, expand, timeline_title_in, title_in

WIDTH = 400  # viewBox units: at 360 px on a phone 13-unit text still reads at about 11 px
LEFT, RIGHT = 12.0, WIDTH - 12.0
AXIS = 52  # height of the month axis above the first row
ROW = 60
TITLE_CHARS = 40
LINK_CHARS = 58
YEAR = timedelta(days=365)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Colours pass WCAG AA (4.5:1) on white; states are also written out, never colour alone.
STYLE = (
    ".tl-label{font-size:13px;fill:#1a1a1a}.tl-state{font-size:11px;font-weight:600}"
    ".tl-wording{font-size:11px;fill:#444;font-style:italic}.tl-axis text{font-size:11px;fill:#333}"
    ".tl-axis line,.tl-track{stroke:#bbb;stroke-width:1}.tl-today{stroke:#b34700;stroke-width:2}"
    ".tl-today-label{font-size:11px;fill:#8a3700;font-weight:600}"
    ".tl-link{stroke:#555;stroke-width:1.2;stroke-dasharray:4 3;fill:none}"
    ".tl-upcoming{fill:#0b4f8a}.tl-done{fill:#1b6e20}.tl-late{fill:#b00020}.tl-cancelled{fill:#595959}"
    ".tl-mark.tl-cancelled .tl-shape{fill:#fff;stroke:#595959;stroke-width:2}"
    ".tl-cancelled-title{text-decoration:line-through}"
)


@dataclass(frozen=True)
class Link:
    """A due date counted from another milestone, as drawn and worded."""

    target: str  # milestone key in the same timeline; '' when it is in another timeline
    anchor: str | None  # start | end | done | None
    wording: str


@dataclass(frozen=True)
class Mark:
    item: Occurrence
    state: str  # done | late | cancelled | upcoming


@dataclass(frozen=True)
class Row:
    view: MilestoneView
    marks: tuple[Mark, ...]
    link: Link | None


@dataclass(frozen=True)
class Scale:
    """Map instants of [start_at, end_at] onto the drawing's x axis."""

    start_at: datetime
    end_at: datetime

    def x(self, at: datetime) -> float:
        share = (at - self.start_at) / (self.end_at - self.start_at)
        return round(LEFT + share * (RIGHT - LEFT), 1)


@dataclass(frozen=True)
class Picture:
    rows: tuple[Row, ...]
    scale: Scale
    now: datetime


def state_of(item: Occurrence, now: datetime) -> str:
    """done, late, cancelled or upcoming; a span that is over took place, so it counts as done."""
    if item.milestone.status == "cancelled":
        return "cancelled"
    if item.done_at is not None:
        return "done"
    if item.due_at is not None:
        return "late" if item.due_at < now else "upcoming"
    assert item.ends_at is not None
    return "done" if item.ends_at < now else "upcoming"


def month_start(at: datetime, months_later: int = 0) -> datetime:
    at = at.astimezone(UTC)
    index = at.year * 12 + at.month - 1 + months_later
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def visible_range(views: Sequence[MilestoneView], now: datetime) -> Scale:
    """Whole months around every single date; a repeating milestone adds a year either side of now."""
    points = []
    for view in views:
        if view.repeat is None:
            points += [at for at in (view.due_at, view.starts_at, view.ends_at) if at is not None]
        else:
            points += [max(view.main_at, now - YEAR), max(view.main_at, now) + YEAR]
    points = points or [now]
    return Scale(month_start(min(points)), month_start(max(points), 1))


def plan_picture(views: Sequence[MilestoneView], *, now: datetime) -> Picture:
    """Decide what is drawn: the rows, the marks and their states, the scale."""
    shown = [view for view in views if view.status != "removed"]
    scale = visible_range(shown, now)
    rows = []
    for view in shown:
        if view.repeat is None:
            items = [Occurrence(view, "", view.due_at, view.starts_at, view.ends_at)]
        else:
            items = expand(view, scale.start_at, scale.end_at)
        marks = tuple(Mark(item, state_of(item, now)) for item in items)
        rows.append(Row(view, marks, read_link(view)))
    return Picture(tuple(rows), scale, now)


def read_link(view: MilestoneView) -> Link | None:
    """The relative date behind the due date, if it was written as one."""
    try:
        expr = parse_expr(view.due_expr) if view.due_expr else None
    except DateError:  # stored by an older version: draw no link rather than fail the page
        return None
    if expr is None or isinstance(expr, Absolute):
        return None
    local = expr.timeline in (None, view.timeline_id)
    minutes = sum(o.days * 1440 + o.minutes for o in expr.offsets)
    what = expr.milestone.replace("-", " ")
    where = {"start": f"the start of the {what}", "end": f"the end of the {what}", "done": f"the {what} is done"}
    place = where.get(expr.anchor or "", f"the {what}") + ("" if local else f" ({expr.timeline})")
    if minutes == 0:
        wording = f"{'when' if expr.anchor == 'done' else 'at'} {place}"
    else:
        wording = f"{amount_words(abs(minutes))} {'before' if minutes < 0 else 'after'} {place}"
    return Link(expr.milestone if local else "", expr.anchor, wording)


def amount_words(minutes: int) -> str:
    """'30 days', '1 day 4 hours', '90 minutes'."""
    days, rest = divmod(minutes, 1440)
    parts = [plural(days, "day")] if days else []
    if rest:
        parts.append(plural(rest // 60, "hour") if rest % 60 == 0 else plural(rest, "minute"))
    return " ".join(parts)


def plural(amount: int, unit: str) -> str:
    return f"{amount} {unit}{'' if amount == 1 else 's'}"


def format_day(at: datetime, zone: str, all_day: bool) -> str:
    """'24 Feb 2017', or '28 Apr 2017 12:00 CEST': English month names, whatever the host's locale."""
    local = at.astimezone(get_zone(zone))
    day = f"{local.day} {MONTHS[local.month - 1]} {local.year}"
    return day if all_day else f"{day} {local:%H:%M} {local.tzname()}"


def describe(mark: Mark) -> str:
    """The dates and state of a mark in words, for its tooltip and the picture's description."""
    item, view = mark.item, mark.item.milestone
    if item.due_at is not None:
        when = f"due {format_day(item.due_at, view.zone, view.all_day)}"
    else:
        assert item.starts_at is not None and item.ends_at is not None
        start, end = (format_day(at, view.zone, view.all_day) for at in (item.starts_at, item.ends_at))
        when = f"{start} to {end}"
    return f"{when}, {mark.state}"


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def draw_timeline(views: Sequence[MilestoneView], *, now: datetime, language: str = "en") -> str:
    """Return the SVG of one timeline's milestones as of *now*, titles in *language*."""
    return render_svg(plan_picture(views, now=now), language=language)


def render_svg(picture: Picture, *, language: str = "en") -> str:
    """Return the SVG text of a planned picture; every text in it is escaped."""
    rows = picture.rows
    height = AXIS + ROW * len(rows) + 8
    parts = [
        *open_svg(picture, height, language),
        *draw_axis(picture.scale, height),
        *draw_today(picture, height),
        *draw_links(picture),
    ]
    for index, row in enumerate(rows):
        parts += draw_row(row, AXIS + index * ROW, picture.scale, language)
    parts.append("</svg>")
    return "\n".join(parts)


def open_svg(picture: Picture, height: int, language: str) -> list[str]:
    """The root element, its accessible name and description, and the styles."""
    first = picture.rows[0].view if picture.rows else None
    name = f"tl-{escape(first.timeline_id)}" if first else "tl-empty"
    heading = f"Timeline: {timeline_title_in(first, language) if first else 'no milestones'}"
    # Time runs left to right in every language: an Arabic page's inherited rtl direction would
    # otherwise turn each text-anchor around and push labels off the left edge.
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" direction="ltr"'
        f' role="img" aria-labelledby="{name}-title {name}-desc" class="tl-svg" font-family="system-ui, sans-serif">',
        f'<title id="{name}-title">{escape(heading)}</title>',
        f'<desc id="{name}-desc">{escape(summary_text(picture, language))}</desc>',
        f"<style>{STYLE}</style>",
    ]


def summary_text(picture: Picture, language: str) -> str:
    start, end = picture.scale.start_at, picture.scale.end_at - timedelta(days=1)
    lines = [f"From {MONTHS[start.month - 1]} {start.year} to {MONTHS[end.month - 1]} {end.year}."]
    for row in picture.rows:
        title = title_in(row.view, language)
        link = f" ({row.link.wording})" if row.link else ""
        lines += [f"{title}{link}: {describe(mark)}." for mark in row.marks]
    return " ".join(lines)


def draw_axis(scale: Scale, height: int) -> list[str]:
    """Month ticks, labelled often enough to read, never so often that labels collide."""
    months = []
    at = scale.start_at
    while at <= scale.end_at:
        months.append(at)
        at = month_start(at, 1)
    width = (RIGHT - LEFT) / max(1, len(months) - 1)
    step = next(k for k in (1, 2, 3, 4, 6, 12, 24, 60, 120, 10**6) if width * k >= 46)
    parts = ['<g class="tl-axis" aria-hidden="true">', f'<line x1="{LEFT}" x2="{RIGHT}" y1="40" y2="40"/>']
    for index, month in enumerate(months):
        x = scale.x(month)
        parts.append(f'<line x1="{x}" x2="{x}" y1="34" y2="{height - 4}" stroke-opacity="0.35"/>')
        if index % step == 0 and x < RIGHT - 20:
            label = MONTHS[month.month - 1] + (f" {month.year}" if index == 0 or month.month == 1 else "")
            parts.append(f'<text x="{x + 3}" y="32">{label}</text>')
    parts.append("</g>")
    return parts


def draw_today(picture: Picture, height: int) -> list[str]:
    scale, now = picture.scale, picture.now
    if not scale.start_at <= now <= scale.end_at:
        return []
    x = scale.x(now)
    anchor = "end" if x > WIDTH / 2 else "start"
    shift = -3 if anchor == "end" else 3
    return [
        f'<line class="tl-today" data-at="{now.isoformat()}" x1="{x}" x2="{x}" y1="6" y2="{height - 4}"/>',
        f'<text class="tl-today-label" x="{x + shift}" y="14" text-anchor="{anchor}">today</text>',
    ]


def draw_row(row: Row, top: int, scale: Scale, language: str) -> list[str]:
    view = row.view
    title = title_in(view, language)
    states = sorted({mark.state for mark in row.marks})
    state = ", ".join(states)
    struck = " tl-cancelled-title" if view.status == "cancelled" else ""
    parts = [
        f'<text class="tl-label{struck}" x="{LEFT}" y="{top + 16}"><title>{escape(title)}</title>'
        f"{escape(shorten(title, TITLE_CHARS))}</text>",
        f'<text class="tl-state tl-{escape(states[0]) if states else "upcoming"}" x="{RIGHT}" y="{top + 16}"'
        f' text-anchor="end">{escape(state or "none in range")}</text>',
        f'<line class="tl-track" x1="{LEFT}" x2="{RIGHT}" y1="{top + 34}" y2="{top + 34}"/>',
    ]
    parts += [draw_mark(mark, title, top + 34, scale) for mark in row.marks]
    if row.link is not None:
        wording = "↳ " + row.link.wording
        parts.append(
            f'<text class="tl-wording" x="{LEFT}" y="{top + 54}">{escape(shorten(wording, LINK_CHARS))}</text>'
        )
    return parts


def draw_mark(mark: Mark, title: str, y: int, scale: Scale) -> str:
    item = mark.item
    head = (
        f'<g class="tl-mark tl-{mark.state}" data-mark="{escape(item.milestone.key)}"'
        f' data-occurrence="{escape(item.occurrence)}" data-state="{mark.state}">'
        f"<title>{escape(title)}: {escape(describe(mark))}</title>"
    )
    if item.due_at is not None:
        x = scale.x(item.due_at)
        shape = f'<polygon class="tl-shape" points="{x},{y - 7} {x + 7},{y} {x},{y + 7} {x - 7},{y}"/>'
    else:
        assert item.starts_at is not None and item.ends_at is not None
        x, end = scale.x(item.starts_at), scale.x(item.ends_at)
        width = round(max(end - x, 2.0), 1)  # a one-hour span still shows
        shape = f'<rect class="tl-shape tl-bar" x="{x}" y="{y - 6}" width="{width}" height="12" rx="2"/>'
    return head + shape + "</g>"


def draw_links(picture: Picture) -> list[str]:
    """Connectors from the milestone a date counts from to the milestone that counts; single dates only."""
    places = {row.view.key: index for index, row in enumerate(picture.rows) if row.view.repeat is None}
    parts = []
    for index, row in enumerate(picture.rows):
        link = row.link
        if link is None or link.target not in places or row.view.repeat is not None or not row.marks:
            continue
        source = picture.rows[places[link.target]]
        x1, y1 = picture.scale.x(link_point(source, link.anchor)), AXIS + places[link.target] * ROW + 34
        x2, y2 = picture.scale.x(row.marks[0].item.at), AXIS + index * ROW + 34
        bend = (y1 + y2) / 2
        parts.append(
            f'<path class="tl-link" data-from="{escape(link.target)}" data-to="{escape(row.view.key)}"'
            f' d="M{x1},{y1} C{x1},{bend} {x2},{bend} {x2},{y2}"><title>{escape(link.wording)}</title></path>'
        )
    return parts


def link_point(source: Row, anchor: str | None) -> datetime:
    """Where on the source milestone the counting starts: its end, its completion, else its start."""
    view = source.view
    if anchor == "end" and view.ends_at is not None:
        return view.ends_at
    done = view.completions.get("")
    if anchor == "done" and done is not None:
        return done.done_at
    return view.main_at
