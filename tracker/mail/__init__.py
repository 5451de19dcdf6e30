"""Sending mail: a pooled SMTP client (`smtp`, with `replies` for pipelined commands), or .eml files
in a folder (`directory`) when no SMTP server is configured.

This package is the only one that imports aiosmtplib. Every failure leaves as a DeliveryError that
says whether trying again later can help (4xx and network trouble retry, 5xx is recorded).
"""

from __future__ import annotations

from pathlib import Path

from tracker.mail.directory import DirectoryMailer
from tracker.mail.smtp import Mailer, SMTPMailer


def make_mailer(smtp_url: str, outbox_dir: Path, *, connections: int, rate: float | None) -> Mailer:
    """Pick the SMTP mailer for a configured TRACKER_SMTP_URL, else one that fills TRACKER_OUTBOX_DIR."""
    if not smtp_url.strip():
        return DirectoryMailer(outbox_dir)
    return SMTPMailer.from_url(smtp_url.strip(), connections=connections, rate=rate)
