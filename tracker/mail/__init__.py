"""Sending mail: a pooled SMTP client (`smtp`, with `replies` for pipelined commands), or .eml files
in a folder (`directory`) when no SMTP server is configured; the optional DKIM signature (`signing`).

This package is the only one that imports aiosmtplib and dkimpy. Every failure leaves as a DeliveryError that
says whether trying again later can help (4xx and network trouble retry, 5xx is recorded).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracker.mail.smtp import Mailer


def make_mailer(smtp_url: str, outbox_dir: Path, *, connections: int, rate: float | None) -> Mailer:
    """Pick the SMTP mailer for a configured TRACKER_SMTP_URL, else one that fills TRACKER_OUTBOX_DIR."""
    # Here, not at the top: importing the package loads no aiosmtplib until a mailer is made.
    from tracker.mail.directory import DirectoryMailer
    from tracker.mail.smtp import SMTPMailer

    if not smtp_url.strip():
        return DirectoryMailer(outbox_dir)
    return SMTPMailer.from_url(smtp_url.strip(), connections=connections, rate=rate)
