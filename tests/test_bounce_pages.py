"""The preferences page of an address that bounces: why mail stopped, since when, and a way to resume it."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine
from sqlmodel import select

from tests.support.bounces import CONFIG, sample, sent_row
from tests.support.delivery import Clock
from tests.support.preferences import csrf, preferences_link
from tests.support.timelines import NOW
from tracker.bounces.intake import take_bounce
from tracker.store.engine import transaction
from tracker.store.models import Event, Subscriber


def bounce_hard(engine: Engine, email: str) -> None:
    with transaction(engine) as session:
        subscriber = session.exec(select(Subscriber).where(Subscriber.email_key == email)).one()
        assert subscriber.id is not None
    _, verp = sent_row(engine, subscriber.id, NOW)
    take_bounce(engine, CONFIG, sample("exchange_online_ndr.eml", verp), [verp], Clock(NOW))


def test_the_page_says_mail_stopped_because_it_bounced_and_resumes_it(http: httpx.Client, engine: Engine) -> None:
    link = preferences_link(engine, "left@mission.example.int", language="fr")
    bounce_hard(engine, "left@mission.example.int")

    page = http.get(link)
    assert page.status_code == 200 and 'data-state="suspended"' in page.text
    assert "s’est arrêté le" in page.text and "impossibles à distribuer" in page.text  # in the subscriber's language
    assert "550 5.1.10 RESOLVER.ADR.RecipientNotFound" in page.text
    resumed = http.post(link, data={"csrf_token": csrf(page.text), "action": "resume"})

    assert resumed.status_code == 200 and 'data-state="confirmed"' in resumed.text
    assert "L’envoi de courriels à votre adresse a repris." in resumed.text
    with transaction(engine) as session:
        kinds = [(e.kind, e.actor) for e in session.exec(select(Event).where(Event.kind == "subscriber_unsuspended"))]
    assert kinds == [("subscriber_unsuspended", "subscriber")]


def test_resume_needs_the_pages_own_form_token(http: httpx.Client, engine: Engine) -> None:
    link = preferences_link(engine, "left@mission.example.int")
    bounce_hard(engine, "left@mission.example.int")
    refused = http.post(link, data={"csrf_token": "forged", "action": "resume"})
    assert refused.status_code == 403
    assert 'data-state="suspended"' in http.get(link).text


def test_a_confirmed_address_is_offered_no_resume(http: httpx.Client, engine: Engine) -> None:
    page = http.get(preferences_link(engine, "fine@mission.example.org"))
    assert 'value="resume"' not in page.text and "stopped on" not in page.text


def suspend_from_console(engine: Engine, email: str) -> None:
    from tracker.subscribers.roster import set_suspended

    with transaction(engine, write=True) as session:
        subscriber = session.exec(select(Subscriber).where(Subscriber.email_key == email)).one()
        assert set_suspended(session, subscriber, True, "secretary@example.org", NOW)


def soft_bounce(engine: Engine, email: str) -> None:
    with transaction(engine) as session:
        subscriber = session.exec(select(Subscriber).where(Subscriber.email_key == email)).one()
        assert subscriber.id is not None
    _, verp = sent_row(engine, subscriber.id, NOW)
    assert take_bounce(engine, CONFIG, sample("postfix_delayed.eml", verp), [verp], Clock(NOW)).result == "soft"


def test_a_suspension_by_the_secretariat_cannot_be_lifted_by_the_member(http: httpx.Client, engine: Engine) -> None:
    link = preferences_link(engine, "held@mission.example.int")
    soft_bounce(engine, "held@mission.example.int")  # an earlier bounce, which suspended nothing
    suspend_from_console(engine, "held@mission.example.int")

    page = http.get(link)
    assert 'data-state="suspended"' in page.text and 'value="resume"' not in page.text
    assert "suspended by the organisers" in page.text
    assert "returned them as undeliverable" not in page.text and "4.4.1" not in page.text  # not the bounce's doing
    refused = http.post(link, data={"csrf_token": csrf(page.text), "action": "resume"})  # the form, made by hand
    assert refused.status_code == 403 and "Only the organisers can resume" in refused.text
    assert 'data-state="suspended"' in http.get(link).text


def test_a_suspension_after_refused_messages_can_be_lifted_by_the_member(http: httpx.Client, engine: Engine) -> None:
    link = preferences_link(engine, "full@mission.example.int")
    with transaction(engine, write=True) as session:
        subscriber = session.exec(select(Subscriber).where(Subscriber.email_key == "full@mission.example.int")).one()
        assert subscriber.id is not None
        subscriber.state, subscriber.changed_at = "suspended", NOW  # as suspend_if_rejected leaves it
        session.add(Event(at=NOW, kind="subscriber_suspended", subscriber_id=subscriber.id, actor="mailer",
                          detail={"email": subscriber.email, "after": 3}))  # fmt: skip
    page = http.get(link)
    assert "refused them several times" in page.text and 'value="resume"' in page.text
    resumed = http.post(link, data={"csrf_token": csrf(page.text), "action": "resume"})
    assert resumed.status_code == 200 and 'data-state="confirmed"' in resumed.text
