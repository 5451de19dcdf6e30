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

from babel.dates import format_date, format_time
from babel.lists import format_list

from tracker.i18n.languages import N_, Language, untranslated
from tracker.i18n.wording import state_text
from tracker.timelines.dates import Absolute, DateError, get_zone, parse_expr
from tracker.timelines.states import Process, Standing
from tracker.timelines.views import MilestoneView, Occurrence, expand, timeline_title_in, title_in

WIDTH = 400  # viewBox units: at 360 px on a phone 13-unit text still reads at about 11 px
LEFT, RIGHT = 12.0, WIDTH - 12.0
AXIS = 52  # height of the month axis above the first row
ROW = 60
TITLE_CHARS = 40
LINK_CHARS = 66  # 11-unit italic text across the 376-unit track
YEAR = timedelta(days=365)
NO_MARKS = N_("none in range")
# Where a relative date counts from, by its anchor.
PLACES = {
    "": N_("“%(what)s”"),
    "start": N_("the start of “%(what)s”"),
    "end": N_("the end of “%(what)s”"),
    "done": N_("the completion of “%(what)s”"),
}
# Colours pass WCAG AA (4.5:1) on white; states are also written out, never colour alone.
STYLE = (
    ".tl-label{font-size:13px;fill:#1a1a1a}.tl-state{font-size:11px;font-weight:600}"
    ".tl-wording{font-size:11px;fill:#444;font-style:italic}.tl-axis text{font-size:11px;fill:#333}"
    ".tl-axis line,.tl-track{stroke:#bbb;stroke-width:1}.tl-today{stroke:#b34700;stroke-width:2;stroke-opacity:.75}"
    ".tl-today-label{font-size:11px;fill:#8a3700;font-weight:600}"
    ".tl-link{stroke:#555;stroke-width:1.2;stroke-dasharray:4 3;fill:none}"
    ".tl-upcoming{fill:#0b4f8a}.tl-done{fill:#1b6e20}.tl-late{fill:#b00020}.tl-cancelled{fill:#595959}"
    ".tl-due_today{fill:#8a3700}.tl-open{fill:#0b5e5e}.tl-waiting{fill:#6b4e00}.tl-missed{fill:#6d1a36}"
    ".tl-mark.tl-cancelled .tl-shape{fill:#fff;stroke:#595959;stroke-width:2}"
    ".tl-cancelled-title{text-decoration:line-through}"
)


@dataclass(frozen=True)
class Link:
    """A due date counted from another milestone, as drawn and worded."""

    target: str  # milestone key in the same timeline; '' when it is in another timeline
    anchor: str | None  # start | end | done | None
    minutes: int  # signed: before (< 0) or after the anchor
    milestone: str  # the key counted from
    timeline: str  # the other timeline's id, '' when in the same one
    workdays: int = 0  # signed working days ('meeting - 10wd'), counted before the minutes


@dataclass(frozen=True)
class Mark:
    item: Occurrence
    standing: Standing

    @property
    def state(self) -> str:
        return self.standing.state


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


def plan_picture(views: Sequence[MilestoneView], *, now: datetime, process: Process | None = None) -> Picture:
    """Decide what is drawn: the rows, the marks and their states (from *process*, which may know
    the steps of other timelines these wait for), the scale."""
    process = process or Process(views, now=now)
    shown = [view for view in views if view.status != "removed"]
    scale = visible_range(shown, now)
    rows = []
    for view in shown:
        if view.repeat is None:
            items = [Occurrence(view, "", view.due_at, view.starts_at, view.ends_at)]
        else:
            items = expand(view, scale.start_at, scale.end_at)
        marks = tuple(Mark(item, process.standing(item)) for item in items)
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
    other = "" if local else (expr.timeline or "")
    workdays = sum(o.workdays for o in expr.offsets)
    return Link(expr.milestone if local else "", expr.anchor, minutes, expr.milestone, other, workdays)


def link_words(link: Link, language: Language, titles: dict[str, str] | None = None) -> str:
    """'30 days before “Meeting”' in *language*; the milestone by its title when it is drawn, else its id."""
    what = (titles or {}).get(link.milestone) or link.milestone.replace("-", " ")
    gettext = language.translations.gettext
    place = gettext(PLACES[link.anchor or ""]) % {"what": what}
    if link.timeline:
        place = gettext(N_("%(place)s in %(timeline)s")) % {"place": place, "timeline": link.timeline}
    if link.minutes == 0 and link.workdays == 0:
        return gettext(N_("at %(place)s")) % {"place": place}
    amount = amount_words(abs(link.minutes), language, abs(link.workdays))
    before = (link.workdays or link.minutes) < 0  # working days lead: 'meeting - 10wd + 1d' is before the meeting
    wording = N_("%(amount)s before %(place)s") if before else N_("%(amount)s after %(place)s")
    return gettext(wording) % {"amount": amount, "place": place}


def amount_words(minutes: int, language: Language, workdays: int = 0) -> str:
    """'30 days', '1 day and 4 hours', '90 minutes', '10 working days'."""
    days, rest = divmod(minutes, 1440)
    ngettext = language.translations.ngettext
    parts = [ngettext("%(num)d working day", "%(num)d working days", workdays) % {"num": workdays}] if workdays else []
    parts += [ngettext("%(num)d day", "%(num)d days", days) % {"num": days}] if days else []
    if rest % 60 == 0 and rest:
        parts.append(ngettext("%(num)d hour", "%(num)d hours", rest // 60) % {"num": rest // 60})
    elif rest:
        parts.append(ngettext("%(num)d minute", "%(num)d minutes", rest) % {"num": rest})
    return format_list(parts, locale=language.locale)


def format_day(at: datetime, zone: str, all_day: bool, language: Language) -> str:
    """'24 Feb 2017', or '28 Apr 2017, 12:00 CEST', in *language*'s words and CLDR order whatever the host's locale."""
    local = at.astimezone(get_zone(zone))
    day = format_date(local.date(), "medium", locale=language.locale)
    if all_day:
        return day
    clock = format_time(local, "short", locale=language.locale)
    return f"{language.locale.datetime_formats['medium'].format(clock, day)} {local.tzname()}"


def describe(mark: Mark, language: Language) -> str:
    """The dates and state of a mark in words, for its tooltip and the picture's description."""
    item, view = mark.item, mark.item.milestone
    gettext = language.translations.gettext
    if item.due_at is not None:
        when = gettext(N_("due %(day)s")) % {"day": format_day(item.due_at, view.zone, view.all_day, language)}
    else:
        assert item.starts_at is not None and item.ends_at is not None
        start, end = (format_day(at, view.zone, view.all_day, language) for at in (item.starts_at, item.ends_at))
        when = gettext(N_("%(start)s to %(end)s")) % {"start": start, "end": end}
    return f"{when}, {state_text(mark.state, language)}"


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def draw_timeline(views: Sequence[MilestoneView], *, now: datetime, language: Language | None = None) -> str:
    """Return the SVG of one timeline's milestones as of *now*, in *language* (English words by default)."""
    return render_svg(plan_picture(views, now=now), language=language or untranslated())


def titles_of(picture: Picture, language: Language) -> dict[str, str]:
    return {row.view.key: title_in(row.view, language.code) for row in picture.rows}


def render_svg(picture: Picture, *, language: Language) -> str:
    """Return the SVG text of a planned picture; every text in it is escaped."""
    rows = picture.rows
    height = AXIS + ROW * len(rows) + 8
    parts = [
        *open_svg(picture, height, language),
        *draw_axis(picture.scale, height, language),
        *draw_today(picture, height, language),
        *draw_links(picture, language),
    ]
    titles = titles_of(picture, language)
    for index, row in enumerate(rows):
        parts += draw_row(row, AXIS + index * ROW, picture.scale, language, titles)
    parts.append("</svg>")
    return "\n".join(parts)


def open_svg(picture: Picture, height: int, language: Language) -> list[str]:
    """The root element, its accessible name and description, and the styles."""
    first = picture.rows[0].view if picture.rows else None
    name = f"tl-{escape(first.timeline_id)}" if first else "tl-empty"
    gettext = language.translations.gettext
    shown = timeline_title_in(first, language.code) if first else gettext(N_("no milestones"))
    heading = gettext(N_("Timeline: %(title)s")) % {"title": shown}
    # Time runs left to right in every language: an Arabic page's inherited rtl direction would
    # otherwise turn each text-anchor around and push labels off the left edge.
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" direction="ltr"'
        f' role="img" aria-labelledby="{name}-title {name}-desc" class="tl-svg" font-family="system-ui, sans-serif">',
        f'<title id="{name}-title">{escape(heading)}</title>',
        f'<desc id="{name}-desc">{escape(summary_text(picture, language))}</desc>',
        f"<style>{STYLE}</style>",
    ]


def month_words(at: datetime, language: Language, year: bool = True) -> str:
    return format_date(at.date(), "MMM y" if year else "LLL", locale=language.locale)


def summary_text(picture: Picture, language: Language) -> str:
    start, end = picture.scale.start_at, picture.scale.end_at - timedelta(days=1)
    span = {"start": month_words(start, language), "end": month_words(end, language)}
    lines = [language.translations.gettext(N_("From %(start)s to %(end)s.")) % span]
    titles = titles_of(picture, language)
    for row in picture.rows:
        title = titles[row.view.key]
        link = f" ({link_words(row.link, language, titles)})" if row.link else ""
        lines += [f"{title}{link}: {describe(mark, language)}." for mark in row.marks]
    return " ".join(lines)


def draw_axis(scale: Scale, height: int, language: Language) -> list[str]:
    """Month ticks, labelled often enough to read, never so often that labels collide."""
    months = []
    at = scale.start_at
    while at <= scale.end_at:
        months.append(at)
        at = month_start(at, 1)
    width = (RIGHT - LEFT) / max(1, len(months) - 1)
    # "Nov 2026" or "ديسمبر 2017" take about 60 units at 11 px: labels are spaced at least that far apart.
    step = next(k for k in (1, 2, 3, 4, 6, 12, 24, 60, 120, 10**6) if width * k >= 64)
    parts = ['<g class="tl-axis" aria-hidden="true">', f'<line x1="{LEFT}" x2="{RIGHT}" y1="40" y2="40"/>']
    for index, month in enumerate(months):
        x = scale.x(month)
        parts.append(f'<line x1="{x}" x2="{x}" y1="34" y2="{height - 4}" stroke-opacity="0.35"/>')
        if index % step == 0 and x < RIGHT - 20:
            label = month_words(month, language, year=index == 0 or month.month == 1)
            parts.append(f'<text x="{x + 3}" y="32">{escape(label)}</text>')
    parts.append("</g>")
    return parts


def draw_today(picture: Picture, height: int, language: Language) -> list[str]:
    scale, now = picture.scale, picture.now
    if not scale.start_at <= now <= scale.end_at:
        return []
    x = scale.x(now)
    today = language.translations.gettext(N_("today"))
    anchor = "end" if x > WIDTH / 2 else "start"
    shift = -3 if anchor == "end" else 3
    return [
        f'<line class="tl-today" data-at="{now.isoformat()}" x1="{x}" x2="{x}" y1="6" y2="{height - 4}"/>',
        f'<text class="tl-today-label" x="{x + shift}" y="14" text-anchor="{anchor}">{escape(today)}</text>',
    ]


def draw_row(row: Row, top: int, scale: Scale, language: Language, titles: dict[str, str]) -> list[str]:
    view = row.view
    title = titles[view.key]
    states = sorted({mark.state for mark in row.marks})
    state = ", ".join(state_text(one, language) for one in states)
    struck = " tl-cancelled-title" if view.status == "cancelled" else ""
    parts = [
        f'<text class="tl-label{struck}" x="{LEFT}" y="{top + 16}"><title>{escape(title)}</title>'
        f"{escape(shorten(title, TITLE_CHARS))}</text>",
        f'<text class="tl-state tl-{escape(states[0]) if states else "upcoming"}" x="{RIGHT}" y="{top + 16}"'
        f' text-anchor="end">{escape(state or language.translations.gettext(NO_MARKS))}</text>',
        f'<line class="tl-track" x1="{LEFT}" x2="{RIGHT}" y1="{top + 34}" y2="{top + 34}"/>',
    ]
    parts += [draw_mark(mark, title, top + 34, scale, language) for mark in row.marks]
    if row.link is not None:
        wording = "↳ " + link_words(row.link, language, titles)
        parts.append(
            f'<text class="tl-wording" x="{LEFT}" y="{top + 54}">{escape(shorten(wording, LINK_CHARS))}</text>'
        )
    return parts


def draw_mark(mark: Mark, title: str, y: int, scale: Scale, language: Language) -> str:
    item = mark.item
    head = (
        f'<g class="tl-mark tl-{mark.state}" data-mark="{escape(item.milestone.key)}"'
        f' data-occurrence="{escape(item.occurrence)}" data-state="{mark.state}">'
        f"<title>{escape(title)}: {escape(describe(mark, language))}</title>"
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


def draw_links(picture: Picture, language: Language) -> list[str]:
    """Connectors from the milestone a date counts from to the milestone that counts; single dates only."""
    places = {row.view.key: index for index, row in enumerate(picture.rows) if row.view.repeat is None}
    parts = []
    titles = titles_of(picture, language)
    for index, row in enumerate(picture.rows):
        link = row.link
        if link is None or link.target not in places or row.view.repeat is not None or not row.marks:
            continue
        source = picture.rows[places[link.target]]
        x1, y1 = picture.scale.x(link_point(source, link.anchor)), AXIS + places[link.target] * ROW + 34
        x2, y2 = picture.scale.x(row.marks[0].item.at), AXIS + index * ROW + 34
        bend = (y1 + y2) / 2
        wording = escape(link_words(link, language, titles))
        parts.append(
            f'<path class="tl-link" data-from="{escape(link.target)}" data-to="{escape(row.view.key)}"'
            f' d="M{x1},{y1} C{x1},{bend} {x2},{bend} {x2},{y2}"><title>{wording}</title></path>'
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
