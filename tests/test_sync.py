"""Sync: files → store, one transaction, idempotent, with an event per change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func
from sqlmodel import select

from tests.support.timelines import HLPF, MEETING, NOW, WriteTimeline
from tracker.store.engine import transaction
from tracker.store.models import CompletionRecord, Event, Milestone, Timeline
from tracker.timelines import sync as sync_module
from tracker.timelines.completions import DoneRequest, record_done
from tracker.timelines.files import load_schedules
from tracker.timelines.pipeline import SyncOutcome, sync_folder
from tracker.timelines.stored import load_views

DEFAULTS = ["14d", "7d", "1d"]


def run_sync(engine: Engine, folder: Path, now: datetime = NOW, dry_run: bool = False) -> SyncOutcome:
    return sync_folder(engine, folder, zone="Europe/Zurich", reminders=DEFAULTS, now=now, dry_run=dry_run)


def milestone(engine: Engine, timeline: str, key: str) -> Milestone:
    with transaction(engine) as session:
        row = session.exec(select(Milestone).where(Milestone.timeline_id == timeline, Milestone.key == key)).one()
    return row


def events(engine: Engine) -> list[Event]:
    with transaction(engine) as session:
        return list(session.exec(select(Event).order_by(Event.id)))  # type: ignore[arg-type]


def counts(engine: Engine) -> tuple[int, int, int, int]:
    with transaction(engine) as session:
        return tuple(  # type: ignore[return-value]
            session.exec(select(func.count()).select_from(model)).one()
            for model in (Timeline, Milestone, Event, CompletionRecord)
        )


def done(engine: Engine, reference: str, at: datetime) -> list[str]:
    with transaction(engine, write=True) as session:
        views = {f"{v.timeline_id}/{v.key}": v for v in load_views(session)}
        changes = record_done(session, DoneRequest(reference, at), views.get(reference), now=at)
    return [f"{c.kind} {c.milestone_key}" for c in changes]


def test_it_stores_every_milestone_with_utc_instants_and_an_added_event(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    write_timeline("cwg-32", MEETING)

    outcome = run_sync(engine, schedules)

    assert outcome.ok
    assert counts(engine)[:3] == (2, 6, 6)
    assert {e.kind for e in events(engine)} == {"added"}
    revised = milestone(engine, "hlpf", "revised-draft")
    # 24 Feb 2017 ends at 23:59:59 in Geneva (UTC+1).
    assert revised.due_at == datetime(2017, 2, 24, 22, 59, 59, tzinfo=UTC)
    assert revised.zone == "Europe/Zurich" and revised.all_day
    assert revised.reminders == ["14d", "7d", "1d"]
    submission = milestone(engine, "hlpf", "submission")
    assert submission.due_at == datetime(2017, 4, 28, 10, 0, tzinfo=UTC)  # CEST, UTC+2
    assert not submission.all_day
    assert submission.reminders == ["7d", "2d", "4h"]


def test_a_meeting_rule_resolves_thirty_calendar_days_before_the_start(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("cwg-32", MEETING)
    run_sync(engine, schedules)

    documents = milestone(engine, "cwg-32", "documents")
    meeting = milestone(engine, "cwg-32", "meeting")

    assert documents.due_at == datetime(2017, 12, 25, 22, 59, 59, tzinfo=UTC)
    assert documents.due_expr == "meeting - 30d"
    assert meeting.starts_at == datetime(2018, 1, 23, 23, 0, tzinfo=UTC)
    assert meeting.ends_at == datetime(2018, 1, 25, 22, 59, 59, tzinfo=UTC)
    assert meeting.reminders == []  # spans are reminded only when they ask


def test_a_second_sync_reports_no_changes_and_writes_no_events(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    run_sync(engine, schedules)
    before = counts(engine)

    again = run_sync(engine, schedules)

    assert again.plan is not None and again.plan.changes == []
    assert counts(engine) == before


def test_a_moved_date_is_rescheduled_old_to_new_with_a_new_revision_and_its_dependents_follow(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    run_sync(engine, schedules)
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-02-27"))

    outcome = run_sync(engine, schedules)

    assert outcome.plan is not None
    moved = {c.milestone_key: (c.old_at, c.new_at) for c in outcome.plan.changes if c.kind == "rescheduled"}
    assert set(moved) == {"revised-draft", "member-comments", "final-draft"}
    old, new = moved["member-comments"]
    assert new is not None and old is not None and new - old == timedelta(days=3)
    assert milestone(engine, "hlpf", "revised-draft").revision == 1
    assert milestone(engine, "hlpf", "submission").revision == 0
    logged = [e for e in events(engine) if e.kind == "rescheduled"]
    assert {e.milestone_key for e in logged} == set(moved)
    assert all(e.old_at is not None and e.new_at is not None and e.revision == 1 for e in logged)


def test_a_cancellation_keeps_the_milestone_and_emits_cancelled_then_restored(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("cwg-32", MEETING)
    run_sync(engine, schedules)
    cancelled = MEETING.replace("        due: meeting - 30d", "        due: meeting - 30d\n        status: cancelled")
    write_timeline("cwg-32", cancelled)

    run_sync(engine, schedules)
    assert milestone(engine, "cwg-32", "documents").status == "cancelled"

    write_timeline("cwg-32", MEETING)
    run_sync(engine, schedules)

    assert [e.kind for e in events(engine)][-2:] == ["cancelled", "restored"]
    assert milestone(engine, "cwg-32", "documents").revision == 2


def test_a_removed_file_marks_its_milestones_removed_and_a_returning_file_restores_them(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    path = write_timeline("cwg-32", MEETING)
    write_timeline("hlpf", HLPF)
    run_sync(engine, schedules)
    path.unlink()

    outcome = run_sync(engine, schedules)

    assert outcome.plan is not None
    assert sorted(c.milestone_key or "" for c in outcome.plan.changes if c.kind == "removed") == [
        "documents",
        "meeting",
    ]
    assert milestone(engine, "cwg-32", "meeting").status == "removed"
    with transaction(engine) as session:
        assert session.get(Timeline, "cwg-32").removed_at == NOW  # type: ignore[union-attr]

    write_timeline("cwg-32", MEETING)
    run_sync(engine, schedules)
    assert milestone(engine, "cwg-32", "meeting").status == "active"
    assert [e.kind for e in events(engine)][-2:] == ["restored", "restored"]


def test_a_bad_file_among_good_ones_changes_nothing(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    run_sync(engine, schedules)
    before = counts(engine)
    write_timeline("hlpf", HLPF.replace("2017-02-24", "2017-03-03"))  # a good change…
    write_timeline("cwg-32", MEETING.replace("meeting - 30d", "meetin - 30d"))  # …next to a broken file

    outcome = run_sync(engine, schedules)

    assert not outcome.ok
    assert any("no milestone 'meetin'" in p.message for p in outcome.problems)
    assert counts(engine) == before
    assert milestone(engine, "hlpf", "revised-draft").due_at == datetime(2017, 2, 24, 22, 59, 59, tzinfo=UTC)


def test_a_failure_while_writing_rolls_the_whole_sync_back(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_timeline("hlpf", HLPF)

    def explode(*_args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(sync_module, "write_events", explode)
    with pytest.raises(RuntimeError):
        run_sync(engine, schedules)

    assert counts(engine) == (0, 0, 0, 0)


def test_plan_is_a_dry_run(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> None:
    write_timeline("hlpf", HLPF)

    outcome = run_sync(engine, schedules, dry_run=True)

    assert outcome.plan is not None and len(outcome.plan.changes) == 4
    assert counts(engine) == (0, 0, 0, 0)


def test_done_reschedules_dot_done_dependents_and_survives_the_next_sync(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    run_sync(engine, schedules)
    early = datetime(2017, 2, 20, 15, 30, tzinfo=UTC)

    changes = done(engine, "hlpf/revised-draft", early)

    # Comments count 14 days from the actual completion (20 Feb → 6 Mar), and the final draft follows.
    assert changes == ["completed revised-draft", "rescheduled member-comments", "rescheduled final-draft"]
    assert milestone(engine, "hlpf", "member-comments").due_at == datetime(2017, 3, 6, 22, 59, 59, tzinfo=UTC)
    assert milestone(engine, "hlpf", "final-draft").due_at == datetime(2017, 3, 20, 22, 59, 59, tzinfo=UTC)
    assert milestone(engine, "hlpf", "revised-draft").revision == 1

    again = run_sync(engine, schedules)
    assert again.plan is not None and again.plan.changes == []
    assert milestone(engine, "hlpf", "member-comments").due_at == datetime(2017, 3, 6, 22, 59, 59, tzinfo=UTC)


def test_a_done_date_in_the_file_completes_and_removing_it_reopens(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-02-24\n        done: 2017-02-22"))
    first = run_sync(engine, schedules)
    assert first.plan is not None
    assert "completed" in [c.kind for c in first.plan.changes]
    assert milestone(engine, "hlpf", "member-comments").due_at == datetime(2017, 3, 8, 22, 59, 59, tzinfo=UTC)

    write_timeline("hlpf", HLPF)
    second = run_sync(engine, schedules)

    assert second.plan is not None
    assert sorted(c.kind for c in second.plan.changes) == ["reopened", "rescheduled", "rescheduled"]
    assert milestone(engine, "hlpf", "member-comments").due_at == datetime(2017, 3, 10, 22, 59, 59, tzinfo=UTC)


def test_a_title_change_is_an_update_with_a_new_revision(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("cwg-32", MEETING)
    run_sync(engine, schedules)
    write_timeline("cwg-32", MEETING.replace("CWG-WSIS-32, Geneva", "CWG-WSIS-32, Geneva (room C)"))

    outcome = run_sync(engine, schedules)

    assert outcome.plan is not None
    assert [(c.kind, c.fields) for c in outcome.plan.changes] == [("updated", ("title",))]
    assert milestone(engine, "cwg-32", "meeting").revision == 1


def test_a_timeline_reminder_change_updates_the_effective_offsets(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    run_sync(engine, schedules)
    write_timeline("hlpf", HLPF.replace("reminders: [14d, 7d, 1d]", "reminders: [3w, 2d]"))

    run_sync(engine, schedules)

    assert milestone(engine, "hlpf", "revised-draft").reminders == ["21d", "2d"]
    assert milestone(engine, "hlpf", "submission").reminders == ["7d", "2d", "4h"]


def test_overdue_offsets_are_stored_the_milestones_over_the_timelines_and_a_change_is_an_update(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    chased = HLPF.replace("reminders: [14d, 7d, 1d]\n", "reminders: [14d, 7d, 1d]\n    overdue: [1d, 3d, 7d]\n")
    write_timeline("hlpf", chased.replace("reminders: [7d, 2d, 4h]", "reminders: [7d, 2d, 4h]\n        overdue: []"))
    write_timeline("cwg-32", MEETING)
    run_sync(engine, schedules)

    assert milestone(engine, "hlpf", "revised-draft").overdue == ["7d", "3d", "1d"]
    assert milestone(engine, "hlpf", "submission").overdue == []  # never chased
    assert milestone(engine, "cwg-32", "documents").overdue is None  # TRACKER_OVERDUE applies
    assert milestone(engine, "cwg-32", "meeting").overdue is None

    write_timeline("hlpf", chased.replace("overdue: [1d, 3d, 7d]", "overdue: [2d]"))
    outcome = run_sync(engine, schedules)

    assert outcome.plan is not None
    assert sorted((c.kind, c.milestone_key, c.fields) for c in outcome.plan.changes) == [
        ("updated", "final-draft", ("overdue",)),
        ("updated", "member-comments", ("overdue",)),
        ("updated", "revised-draft", ("overdue",)),
        ("updated", "submission", ("overdue",)),  # its own [] is gone: the timeline's now
    ]
    assert milestone(engine, "hlpf", "submission").overdue == ["2d"]
    assert milestone(engine, "hlpf", "revised-draft").revision == 1
    again = run_sync(engine, schedules)
    assert again.plan is not None and not again.plan.changes


def test_unchanged_files_are_recognised_but_a_changed_setting_or_a_completion_is_not_missed(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF.replace("    reminders: [14d, 7d, 1d]\n", ""))
    run_sync(engine, schedules)

    with_other_defaults = sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["3d"], now=NOW)
    assert with_other_defaults.plan is not None
    assert {c.kind for c in with_other_defaults.plan.changes} == {"updated"}
    assert milestone(engine, "hlpf", "revised-draft").reminders == ["3d"]

    done(engine, "hlpf/revised-draft", datetime(2017, 2, 20, tzinfo=UTC))
    # Someone edits the store behind sync's back: the next sync looks again rather than trusting its digest.
    with transaction(engine, write=True) as session:
        row = session.exec(select(Milestone).where(Milestone.key == "final-draft")).one()
        row.title = "Edited by hand"
        session.add(row)
        session.add(Event(at=NOW, kind="updated", timeline_id="hlpf", milestone_key="final-draft"))
    again = sync_folder(engine, schedules, zone="Europe/Zurich", reminders=["3d"], now=NOW)

    assert again.plan is not None
    assert [(c.kind, c.milestone_key) for c in again.plan.changes] == [("updated", "final-draft")]


def test_a_timeline_title_change_raises_every_item_revision_because_feeds_show_it(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("cwg-32", MEETING)
    run_sync(engine, schedules)
    write_timeline("cwg-32", MEETING.replace("title: 32nd meeting", "title: 32nd meeting of CWG-WSIS"))

    outcome = run_sync(engine, schedules)

    assert outcome.plan is not None
    assert sorted((c.kind, c.milestone_key, c.fields) for c in outcome.plan.changes) == [
        ("updated", "documents", ("timeline title",)),
        ("updated", "meeting", ("timeline title",)),
    ]
    assert milestone(engine, "cwg-32", "meeting").revision == 1


TRANSLATED = HLPF.replace(
    "    title: ITU Council contribution to HLPF-17\n",
    "    title:\n"
    "      en: ITU Council contribution to HLPF-17\n"
    "      fr: Contribution du Conseil de l’UIT au Forum politique de haut niveau de 2017\n",
).replace(
    "        title: Final text submitted to the UN\n",
    "        title:\n"
    "          en: Final text submitted to the UN\n"
    "          zh: 向联合国提交最终文本\n"
    "          fr: Texte final soumis à l’ONU\n",
)


def test_translated_titles_are_stored_beside_the_english_title_and_a_second_sync_changes_nothing(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", TRANSLATED)
    run_sync(engine, schedules)

    # Planned from the store, not skipped because the files are unchanged: stored translations match.
    specs, _ = load_schedules([schedules], "Europe/Zurich")
    with transaction(engine) as session:
        again, _ = sync_module.plan_sync(session, specs, DEFAULTS)

    submission = milestone(engine, "hlpf", "submission")
    assert submission.title == "Final text submitted to the UN"
    assert submission.titles == {"fr": "Texte final soumis à l’ONU", "zh": "向联合国提交最终文本"}
    assert milestone(engine, "hlpf", "revised-draft").titles is None
    with transaction(engine) as session:
        timeline = session.get(Timeline, "hlpf")
        views = {v.key: v for v in load_views(session)}
    assert timeline is not None and timeline.title == "ITU Council contribution to HLPF-17"
    assert timeline.titles == {"fr": "Contribution du Conseil de l’UIT au Forum politique de haut niveau de 2017"}
    assert views["submission"].titles == {"fr": "Texte final soumis à l’ONU", "zh": "向联合国提交最终文本"}
    assert views["revised-draft"].titles == {}
    assert views["revised-draft"].timeline_titles == timeline.titles
    assert again is not None and again.is_empty


def test_a_translation_edit_is_a_title_update_with_a_new_revision(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", TRANSLATED)
    run_sync(engine, schedules)
    write_timeline("hlpf", TRANSLATED.replace("Texte final soumis à l’ONU", "Texte final transmis à l’ONU"))

    outcome = run_sync(engine, schedules)

    assert outcome.plan is not None
    assert [(c.kind, c.milestone_key, c.fields) for c in outcome.plan.changes] == [
        ("updated", "submission", ("titles",))
    ]
    submission = milestone(engine, "hlpf", "submission")
    assert submission.revision == 1
    assert submission.titles == {"fr": "Texte final transmis à l’ONU", "zh": "向联合国提交最终文本"}
    assert [(e.kind, e.milestone_key, e.revision) for e in events(engine)[-1:]] == [("updated", "submission", 1)]


def test_removing_every_translation_clears_them_and_a_timeline_translation_raises_every_item_revision(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", TRANSLATED)
    run_sync(engine, schedules)
    untranslated = TRANSLATED.replace("          zh: 向联合国提交最终文本\n", "").replace(
        "          fr: Texte final soumis à l’ONU\n", ""
    )
    write_timeline("hlpf", untranslated.replace("de haut niveau de 2017", "de haut niveau (FPHN) de 2017"))

    outcome = run_sync(engine, schedules)

    assert outcome.plan is not None
    assert sorted((c.milestone_key, c.fields) for c in outcome.plan.changes) == [
        ("final-draft", ("timeline titles",)),
        ("member-comments", ("timeline titles",)),
        ("revised-draft", ("timeline titles",)),
        ("submission", ("titles",)),
    ]
    assert milestone(engine, "hlpf", "submission").titles is None
    assert {milestone(engine, "hlpf", key).revision for key in ("revised-draft", "final-draft", "submission")} == {1}
