"""What time alone brings into the plan is found without planning every milestone twice (issue 18).

A quiet pass asks which milestones' probe plans gained a message since the last pass (ahead.py).
It plans only the milestones whose send times can have passed into the horizon meanwhile; these
tests check, hour by hour over months of a varied set of timelines (deadlines, windows waiting for
a step, a meeting, weekly and yearly repeats, hour offsets, escalations), and over a jump of days
(downtime), that what it finds is what planning every milestone at both times finds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.delivery import at, subscribe, sync
from tests.support.timelines import HLPF, MEETING, WriteTimeline
from tracker.delivery import ahead
from tracker.delivery.ahead import coming_in, probe_reader
from tracker.delivery.planning import Escalation
from tracker.store.engine import transaction
from tracker.timelines.stored import load_views
from tracker.timelines.views import MilestoneView

REPEATS = """
    id: repeats
    title: Repeats
    timezone: America/New_York
    audiences: [membership]
    reminders: [3d, 2h]
    overdue: [1d, 2w]
    milestones:
      - id: weekly
        title: Weekly report
        owner: membership
        due: 2017-02-06 10:00
        repeat: FREQ=WEEKLY
      - id: yearly
        title: Yearly dues
        owner: membership
        due: 2017-03-15
        repeat: FREQ=YEARLY
      - id: window
        title: Comment window
        owner: membership
        starts: 2017-03-20
        ends: 2017-03-31
        opens_after: weekly
"""
HORIZON = timedelta(days=35)


@pytest.fixture
def views(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> list[MilestoneView]:
    for name, text in (("hlpf", HLPF), ("cwg-32", MEETING), ("repeats", REPEATS)):
        write_timeline(name, text)
    sync(engine, schedules, at("2017-01-10 09:00"))
    subscribe(engine, "ana@example.org", at("2017-01-10 09:00"), audiences=("membership", "secretariat"))
    with transaction(engine) as session:
        return load_views(session)


def everything(views: list[MilestoneView], before: datetime, now: datetime) -> tuple[set[tuple[str, str]], ...]:
    """What planning every milestone at both times finds: the probe plans compared whole."""
    probe = probe_reader(views, [])
    found = []
    for what in ("reminders", "late"):
        then = ahead.plan_probe(views, probe, what, before, HORIZON, 9, Escalation())
        later = ahead.plan_probe(views, probe, what, now, HORIZON, 9, Escalation())
        found.append({(item.timeline_id, item.milestone_key) for item in later - then})
    return tuple(found)


@pytest.mark.parametrize(("start", "end", "step"), [
    (at("2017-02-10 09:00"), at("2017-04-20 09:00"), timedelta(hours=1)),  # the hourly pass
    (at("2017-01-10 09:00"), at("2018-02-15 09:00"), timedelta(days=3, hours=5)),  # passes after downtime
])  # fmt: skip
def test_a_quiet_pass_finds_what_planning_everything_finds(
    views: list[MilestoneView], start: datetime, end: datetime, step: timedelta
) -> None:
    probe = probe_reader(views, [])
    now, seen = start, set()
    while now < end:
        before, now = now, now + step
        found = coming_in(views, probe, before=before, now=now, horizon=HORIZON, reminder_hour=9,
                          escalation=Escalation())  # fmt: skip
        assert found == everything(views, before, now), (before, now)
        seen |= found[0] | found[1]
    assert {key for _, key in seen} >= {"final-draft", "weekly", "window"}  # something came in, at every kind
