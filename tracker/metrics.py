"""Prometheus metrics: what this instance did (counters, histograms) and what the store holds.

Counts by state come from the store at scrape time, so every instance reports the same
totals however many are running; latency and errors are this instance's own.

Confirmation emails are left out of every series: one is planned only when someone asks for
an address that is new or pending, so counting them would tell whoever reads the metrics
whether an address they tried was already subscribed. `tracker deliveries` shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from tracker.clock import utc_now
from tracker.mail.smtp import DeliveryError
from tracker.store.engine import transaction
from tracker.store.models import BounceReport, Delivery
from tracker.store.quarantine import count_quarantine

LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400)
PRIVATE_KINDS = ("confirm",)  # sent because one address was asked for: not counted
SEND_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """One registry per dispatcher (tests run several in one process)."""

    def __init__(self, engine: Engine | None = None, clock: Callable[[], datetime] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.sent_total = Counter(
            "tracker_sent", "Messages the SMTP server accepted, by kind", ["kind"], registry=self.registry
        )
        self.send_seconds = Histogram(
            "tracker_send_seconds", "Time the SMTP server took to accept a message", buckets=SEND_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.lateness = Histogram(
            "tracker_lateness_seconds", "sent_at - send_at: how late a message left", buckets=LATENESS_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.smtp_errors = Counter(
            "tracker_smtp_errors", "Failed sends by class and stage", ["class", "stage"], registry=self.registry
        )
        if engine is not None:
            self.registry.register(StoreCollector(engine, clock or utc_now))

    def sent(self, kind: str, seconds: float, late: float) -> None:
        if kind in PRIVATE_KINDS:
            return
        self.sent_total.labels(kind).inc()
        self.send_seconds.observe(seconds)
        self.lateness.observe(max(late, 0.0))

    def smtp_error(self, exc: DeliveryError, kind: str = "") -> None:
        if kind in PRIVATE_KINDS:
            return
        self.smtp_errors.labels("permanent" if exc.permanent else "temporary", exc.stage or "unknown").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class StoreCollector(Collector):
    """Deliveries by state and kind (not confirmations), the queue due now, and what is quarantined, at scrape time."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine, self.clock = engine, clock

    def collect(self) -> Iterator[Metric]:
        table = Delivery.__table__  # type: ignore[attr-defined]
        now = self.clock()
        counted = table.c.kind.not_in(PRIVATE_KINDS)
        with transaction(self.engine) as session:
            counts = session.execute(
                select(table.c.state, table.c.kind, func.count()).where(counted).group_by(table.c.state, table.c.kind)
            ).all()
            due = session.execute(
                select(func.count()).where(counted, table.c.state == "planned", table.c.attempt_at <= now)
            ).scalar_one()
            quarantined = count_quarantine(session)
            reports = BounceReport.__table__  # type: ignore[attr-defined]
            bounces = session.execute(select(reports.c.kind, func.count()).group_by(reports.c.kind)).all()
        by_state = GaugeMetricFamily("tracker_deliveries", "Outbox rows by state and kind", labels=["state", "kind"])
        for state, kind, count in counts:
            by_state.add_metric([state, kind], count)
        yield by_state
        yield GaugeMetricFamily("tracker_queue_depth", "Planned rows due now, not yet claimed", value=due)
        set_aside = GaugeMetricFamily(
            "tracker_quarantined",
            "Set aside because a stored value does not read (everyone else is served): subscribers, milestones, rows",
            labels=["what"],
        )
        for what, count in quarantined.items():
            set_aside.add_metric([what], count)
        yield set_aside
        # From the store, as the deliveries are: every instance reports the same totals, kept across restarts.
        returned = GaugeMetricFamily(
            "tracker_bounces", "Bounces received: hard, soft, and forged (a bad signature: ignored)", labels=["kind"]
        )
        found = dict(bounces)
        for kind in ("hard", "soft", "forged"):
            returned.add_metric([kind], found.get(kind, 0))
        yield returned
